"""Builders: from config (or plain arguments) to a ready :class:`Student`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from flipkd.config.schema import StudentConfig
from flipkd.student.lora import (
    apply_lora,
    count_parameters,
    dropout_replay_context,
    freeze_b_at_zero,
    load_adapter,
)
from flipkd.student.model import Student
from flipkd.student.prompt import resolve_prompt
from flipkd.student.tap import ATap

log = logging.getLogger(__name__)


def load_base(path: str, dtype: torch.dtype = torch.float32):
    """Load a causal LM and its tokenizer (pad token defaults to EOS)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.config.use_cache = False
    return model, tokenizer


def assemble_student(
    model,
    tokenizer,
    cfg: StudentConfig,
    *,
    benchmark: str | None = None,
    adapter_dir: str | Path | None = None,
    trainable: bool = True,
    gradient_checkpointing: bool = False,
    init_seed: int | None = None,
) -> Student:
    """Wrap an already-loaded base model with LoRA (fresh or loaded), tap and prompt."""
    lc = cfg.lora
    if adapter_dir is not None:
        peft_model = load_adapter(model, adapter_dir, trainable=trainable)
    else:
        peft_model = apply_lora(
            model, lc.rank, lc.alpha, lc.dropout, lc.target_modules, lc.layers, seed=init_seed
        )
    if gradient_checkpointing:
        peft_model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={
                "use_reentrant": False,
                "context_fn": dropout_replay_context(peft_model),
            }
        )
        peft_model.enable_input_require_grads()
    tap = ATap(peft_model, cfg.tap.layers, cfg.tap.modules, cfg.tap.pool, cfg.tap.combine)
    tap.always_compute = gradient_checkpointing
    if not cfg.tap.shared and trainable:
        freeze_b_at_zero(dict(zip(tap.names, tap.layers, strict=True)))
    prompt = resolve_prompt(cfg.prompt, benchmark)
    student = Student(
        peft_model,
        tokenizer,
        tap,
        prompt,
        max_length=cfg.max_length,
        max_text_length=cfg.max_text_length,
        use_chat_template=cfg.prompt.use_chat_template,
        pack_tokens=cfg.pack_tokens,  # rows of no-grad packs; the trainer packs every pass
    )
    trainable_n, total = count_parameters(peft_model)
    log.info(
        "student: %.1fM trainable of %.1fM (%.2f%%); tap %s -> dim %d",
        trainable_n / 1e6, total / 1e6, 100 * trainable_n / total, tap.names, tap.dim,
    )  # fmt: skip
    return student


def build_student(
    cfg: StudentConfig,
    *,
    benchmark: str | None = None,
    adapter_dir: str | Path | None = None,
    trainable: bool = True,
    gradient_checkpointing: bool = False,
    init_seed: int | None = None,
) -> Student:
    """Resolve the model name through the registry, load it, and assemble the student."""
    from flipkd.models import resolve_student

    resolved = resolve_student(cfg.model)
    model, tokenizer = load_base(resolved.path)
    return assemble_student(
        model,
        tokenizer,
        cfg,
        benchmark=benchmark,
        adapter_dir=adapter_dir,
        trainable=trainable,
        gradient_checkpointing=gradient_checkpointing,
        init_seed=init_seed,
    )
