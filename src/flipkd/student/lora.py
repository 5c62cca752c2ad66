"""LoRA adapters through peft. Only the student package talks to peft.

A is the encoder (in → r), B the decoder (r → out). Only LoRA parameters train.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from flipkd.errors import ConfigError


def apply_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | str,
    layers: list[int] | None = None,
) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; everything else is frozen.

    ``layers`` restricts LoRA to those decoder layers (negative = from the top); the
    backward pass then stops at the lowest adapted layer, which is much cheaper.
    """
    n_layers = model.config.num_hidden_layers
    chosen = None
    if layers is not None:
        chosen = sorted({i + n_layers if i < 0 else i for i in layers})
        if not all(0 <= i < n_layers for i in chosen):
            raise ConfigError(f"student.lora.layers {layers}: the model has {n_layers} layers")
    if chosen is not None and isinstance(target_modules, str):
        target_modules = decoder_linear_names(model)  # peft needs names with layers_to_transform
    config = LoraConfig(
        layers_to_transform=chosen,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(f"student.lora.target_modules: {err}") from None


def decoder_linear_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of every linear layer inside the decoder layers (what "all-linear" means)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and ".layers." in name
        }
    )


def load_adapter(model: torch.nn.Module, adapter_dir: str | Path, trainable: bool) -> PeftModel:
    """Attach a saved peft adapter directory to a base model."""
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def lora_layers(model: torch.nn.Module) -> dict[str, LoraLayer]:
    """Every LoRA-wrapped module by its qualified name."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, LoraLayer)}


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def expected_lora_parameters(model: torch.nn.Module, rank: int) -> int:
    """The formula: r·(in + out) summed over every LoRA-wrapped linear layer."""
    total = 0
    for layer in lora_layers(model).values():
        base = layer.get_base_layer()
        total += rank * (base.in_features + base.out_features)
    return total


def set_merged(model: PeftModel, merged: bool) -> None:
    """Merge B·A into the base weights (for fast generation) or undo it."""
    if merged:
        model.merge_adapter()
    else:
        model.unmerge_adapter()


def merged_base(model: PeftModel) -> torch.nn.Module:
    """A plain transformers model with the adapter folded in (the model is consumed)."""
    return model.merge_and_unload()


class no_lora_dropout:  # noqa: N801 - used as a context manager
    """Switch every LoRA dropout module to eval for a block, then restore it."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.modules = [
            m for layer in lora_layers(model).values() for m in layer.lora_dropout.values()
        ]

    def __enter__(self) -> None:
        self.saved = [m.training for m in self.modules]
        for m in self.modules:
            m.training = False

    def __exit__(self, *exc) -> None:
        for m, mode in zip(self.modules, self.saved, strict=True):
            m.training = mode
