"""The A-tap: a text's representation read from LoRA's A matrices.

For each tapped LoRA layer the tap computes ``A · x`` on the layer's *input*
``x``, before LoRA dropout (so the representation is the same in train and eval
mode and equals a manual ``A @ x``), and whether or not ``B`` has been merged
into the base weights (A stays available for embedding). Per-module outputs
are pooled over the text's own tokens (mean, or the last real token; both
follow the attention mask, so padding side does not matter), combined across
modules (concat or mean) and L2-normalised.

Hooks only *store* inside :meth:`ATap.capture`, so gradient-checkpoint
recomputation (which replays forward hooks during backward) never captures
twice. With ``stop_after_last=True`` the forward pass is cut right after the
last tapped module: a representation-only pass never runs the layers above it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from flipkd.errors import ConfigError
from flipkd.models.layers import layer_and_leaf
from flipkd.student.lora import lora_a, lora_layers


class TapStop(Exception):
    """Raised inside the forward pass once every tapped module has run."""


def find_tap_modules(model: torch.nn.Module, layers: list[int], modules: list[str]) -> list[str]:
    """Qualified names of the LoRA layers to tap, in forward order; validates the request."""
    found: dict[tuple[int, str], str] = {}
    for name in lora_layers(model):
        where = layer_and_leaf(name)
        if where:
            found[where] = name
    n_layers = 1 + max((i for i, _ in found), default=-1)
    if n_layers == 0:
        raise ConfigError("student.tap: the model has no LoRA layers inside decoder layers")
    names = []
    for layer in layers:
        idx = layer + n_layers if layer < 0 else layer
        if not 0 <= idx < n_layers:
            raise ConfigError(
                f"student.tap.layers: layer {layer} out of range (model has {n_layers})"
            )
        for module in modules:
            if (idx, module) not in found:
                have = sorted({mod for i, mod in found if i == idx})
                adapted = sorted({i for i, _ in found})
                where = (
                    f"LoRA modules there: {', '.join(have)}" if have
                    else f"layer {idx} has no LoRA; adapted layers: {_ranges(adapted)}"
                )  # fmt: skip
                raise ConfigError(
                    f"student.tap.modules: {module!r} in layer {idx} has no LoRA adapter ({where})"
                )
            names.append(found[(idx, module)])
    order = list(lora_layers(model))
    return sorted(set(names), key=order.index)


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}-{v}" if v != start else f"{v}")
            start = None
    return ", ".join(parts)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool [n, t, r] over real tokens given a [n, t] mask (mean or last real token)."""
    mask = mask.to(hidden.dtype)
    if how == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = (positions * mask.long()).argmax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class ATap:
    """Forward pre-hooks on the chosen LoRA layers that compute and pool ``A · x``."""

    def __init__(
        self,
        model: torch.nn.Module,
        layers: list[int],
        modules: list[str],
        pool_how: str = "mean",
        combine: str = "concat",
        adapter: str = "default",
    ) -> None:
        self.names = find_tap_modules(model, layers, modules)
        all_layers = lora_layers(model)
        self.layers = [all_layers[n] for n in self.names]
        self.pool_how, self.combine, self.adapter = pool_how, combine, adapter
        self.always_compute = False  # set under gradient checkpointing (see module doc)
        self._active = False
        self._stop = False
        self._store: dict[int, torch.Tensor] = {}
        self.captures = 0
        self._handles = [
            layer.register_forward_pre_hook(self._make_hook(i))
            for i, layer in enumerate(self.layers)
        ]

    @property
    def dim(self) -> int:
        ranks = [lora_a(layer, self.adapter).out_features for layer in self.layers]
        return sum(ranks) if self.combine == "concat" else ranks[0]

    def _make_hook(self, index: int):
        def hook(module, args):
            if not (self._active or self.always_compute):
                return None
            a_weight = lora_a(module, self.adapter).weight
            out = F.linear(args[0].to(a_weight.dtype), a_weight)
            if self._active:
                self._store[index] = out
                self.captures += 1
                if self._stop and len(self._store) == len(self.layers):
                    raise TapStop
            return None

        return hook

    @contextlib.contextmanager
    def capture(self, stop_after_last: bool = False) -> Iterator[dict[int, torch.Tensor]]:
        """Activate the hooks for one forward pass; yields the raw per-module store."""
        self._store, self._active, self._stop = {}, True, stop_after_last
        try:
            yield self._store
        finally:
            self._active, self._stop = False, False

    def representation(self, store: dict[int, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Pool, combine and normalise what one capture stored."""
        if len(store) != len(self.layers):
            raise RuntimeError(f"tap captured {len(store)} of {len(self.layers)} modules")
        pooled = [pool(store[i], mask, self.pool_how) for i in range(len(self.layers))]
        if self.combine == "concat":
            rep = torch.cat([F.normalize(p, dim=-1) for p in pooled], dim=-1)
        else:
            rep = torch.stack(pooled).mean(0)
        return F.normalize(rep, dim=-1)

    def remove(self) -> None:
        """Detach the hooks."""
        for h in self._handles:
            h.remove()
