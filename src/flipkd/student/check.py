"""Check a student config against its model before any work starts, without loading weights.

The model is built on the meta device from its ``config.json`` (no memory, about a second),
wrapped with LoRA exactly as training will wrap it, and the tap is looked up on it; the
tokenizer (a small file) checks the prompt and label words. So a tap on a layer or module
without LoRA, label words that share their first token, or a template with an unknown slot
is refused before the teacher trains, not after.
"""

from __future__ import annotations

import logging

from flipkd.config.schema import StudentConfig
from flipkd.errors import ConfigError, ModelError
from flipkd.student.prompt import (
    PromptSpec,
    label_prefix,
    label_token_ids,
    render,
    resolve_prompt,
)

log = logging.getLogger(__name__)


def _load_config_and_tokenizer(name: str, path: str):
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        first = " ".join(str(err).split())[:200]
        raise ModelError(
            f"student.model {name!r}: cannot load its config or tokenizer ({first})"
        ) from None
    return config, tokenizer


def check_tap_layers(cfg: StudentConfig, n_layers: int) -> None:
    """Every tapped layer exists and carries LoRA (``student.lora.layers``)."""
    lora = cfg.lora.layers
    adapted = set(range(n_layers))
    if lora is not None:
        adapted = {i + n_layers if i < 0 else i for i in lora}
        if not all(0 <= i < n_layers for i in adapted):
            raise ConfigError(f"student.lora.layers {lora}: the model has {n_layers} layers")
    for layer in cfg.tap.layers:
        idx = layer + n_layers if layer < 0 else layer
        if not 0 <= idx < n_layers:
            raise ConfigError(
                f"student.tap.layers: layer {layer} is out of range (the model has {n_layers})"
            )
        if idx not in adapted:
            raise ConfigError(
                f"student.tap.layers: layer {layer} (index {idx}) has no LoRA; "
                f"student.lora.layers adapts {sorted(adapted)}: tap one of those, "
                f"or add {layer} to student.lora.layers"
            )


def check_prompt(tokenizer, spec: PromptSpec, use_chat_template: bool) -> tuple[int, int]:
    """The prompt renders and the label words have distinct first tokens; their ids."""
    chat = use_chat_template and bool(getattr(tokenizer, "chat_template", None))
    try:
        render(tokenizer, spec, "a", "b", chat)
    except ConfigError:
        raise
    except Exception as err:  # a chat template is a program (jinja): any error means unusable
        raise ConfigError(
            f"student.prompt.use_chat_template: the tokenizer's chat template fails ({err}); "
            "set student.prompt.use_chat_template=false"
        ) from None
    return label_token_ids(tokenizer, spec.label_words, label_prefix(spec, chat))


def check_student(cfg: StudentConfig, *, benchmark: str | None = None) -> None:
    """Raise :class:`ConfigError` or :class:`ModelError` for a student that cannot train.

    Resolves ``cfg.model`` (a registered model is converted once, as training would), builds
    it on the meta device with LoRA, finds the tap and checks the prompt with the tokenizer.
    """
    spec = resolve_prompt(cfg.prompt, benchmark)
    from flipkd.models import resolve_student  # imports torch: after the checks that need none

    resolved = resolve_student(cfg.model)
    config, tokenizer = _load_config_and_tokenizer(cfg.model, resolved.path)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    check_tap_layers(cfg, int(text_config.num_hidden_layers))
    check_prompt(tokenizer, spec, cfg.prompt.use_chat_template)
    _check_on_meta(cfg, config)
    log.debug("student %s checked on the meta device", cfg.model)


def _check_on_meta(cfg: StudentConfig, config) -> None:
    """Build the model on the meta device, wrap it with LoRA and find the tap modules."""
    import torch
    from transformers import AutoModelForCausalLM

    from flipkd.student.lora import apply_lora
    from flipkd.student.tap import find_tap_modules

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as err:
        raise ModelError(f"student.model {cfg.model!r} is not a causal LM ({err})") from None
    lc = cfg.lora
    peft_model = apply_lora(model, lc.rank, lc.alpha, lc.dropout, lc.target_modules, lc.layers)
    find_tap_modules(peft_model, cfg.tap.layers, cfg.tap.modules)
