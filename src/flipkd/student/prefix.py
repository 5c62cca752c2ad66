"""Frozen-prefix activation cache: skip the layers below the lowest adapted one.

When LoRA (and the tap) sit only in the top layers, the layers below them are frozen,
so the hidden state that enters the lowest adapted layer depends on a text's tokens
alone. The cache keeps that hidden state per token sequence (computed with the text
alone, positions from 0, exactly as packing and padding present it), and a later
forward of the same sequence injects it and runs only the top layers. With causal,
per-text attention the result equals the uncached forward up to float rounding
(tested). A ladder reuses the cache across rows and seeds: the same prompts and texts
recur in every run, so after the first run the bottom layers are never run again.

The cache is keyed by token ids and is valid only for one set of frozen weights:
:func:`shared_cache` hands out one cache per base model, depth and precision within a
process.

Precision: with ``dtype`` ``"bfloat16"`` the frozen layers run under bf16 autocast when
they fill the cache (the stored states keep the model's dtype). They run once per text and
are frozen, so no gradient ever sees the rounding; on a CPU with bf16 instructions
(AVX-512 BF16, AMX) the fill is 1.65x faster for the demo's SmolLM2-135M, its states
within 1% of float32 in norm (``results/perf/precision.md``). Every state in one cache is
computed the same way, whatever autocast the caller runs under: train and eval agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from flipkd.models.layers import layer_index
from flipkd.student.lora import lora_layers


@dataclass
class PrefixCache:
    """Hidden states [tokens, d] at the input of layer ``depth``, per token sequence."""

    depth: int
    max_bytes: int
    dtype: str = "float32"  # precision the frozen layers run in to fill the cache
    store: dict[tuple[int, ...], torch.Tensor] = field(default_factory=dict)
    bytes: int = 0
    hits: int = 0
    misses: int = 0

    def lookup(
        self, seqs: list[tuple[int, ...]], compute: Callable[[list[tuple[int, ...]]], list]
    ) -> list[torch.Tensor]:
        """The cached states of ``seqs``; ``compute`` fills the misses (kept while room)."""
        found = {s: self.store[s] for s in dict.fromkeys(seqs) if s in self.store}
        missing = [s for s in dict.fromkeys(seqs) if s not in found]
        self.hits += sum(s in found for s in seqs)  # before the misses join ``found``
        self.misses += len(missing)
        if missing:
            for s, h in zip(missing, compute(missing), strict=True):
                found[s] = h
                size = h.numel() * h.element_size()
                if self.bytes + size <= self.max_bytes:
                    self.store[s] = h
                    self.bytes += size
        return [found[s] for s in seqs]

    def stats(self) -> dict[str, float | str]:
        return {
            "entries": len(self.store),
            "gb": self.bytes / 1e9,
            "hits": self.hits,
            "misses": self.misses,
            "dtype": self.dtype,
        }


_SHARED: dict[tuple[str, int, str], PrefixCache] = {}
PREFIX_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}  # None: autocast off


def shared_cache(model_key: str, depth: int, max_gb: float, dtype: str = "float32") -> PrefixCache:
    """One cache per (base model, depth, precision) in this process, shared by its students."""
    key = (model_key, depth, dtype)
    if key not in _SHARED:
        _SHARED[key] = PrefixCache(depth, int(max_gb * 1e9), dtype)
    return _SHARED[key]


def prefix_precision(dtype: str, device: torch.device):
    """The autocast context the frozen layers fill a ``dtype`` cache under."""
    if dtype not in PREFIX_DTYPES:
        raise ValueError(f"prefix dtype {dtype!r}; expected one of {', '.join(PREFIX_DTYPES)}")
    low = PREFIX_DTYPES[dtype]
    return torch.autocast(device.type, dtype=low or torch.float32, enabled=low is not None)


def frozen_depth(peft_model: torch.nn.Module, tap_names: list[str]) -> int:
    """How many bottom decoder layers are frozen and untapped (0: the cache cannot apply).

    Any adapted module outside the decoder layers (embeddings, say) makes it 0; so does
    attention or hidden dropout in the base model, which would make the prefix random.
    """
    config = peft_model.get_base_model().config
    if any(float(getattr(config, k, 0) or 0) > 0 for k in ("attention_dropout", "hidden_dropout")):
        return 0
    lowest = None
    for name in lora_layers(peft_model):
        idx = layer_index(name)
        if idx is None:
            if name.endswith("lm_head"):  # after the body: irrelevant to the prefix
                continue
            return 0
        lowest = idx if lowest is None else min(lowest, idx)
    for name in tap_names:
        idx = layer_index(name) or 0
        lowest = idx if lowest is None else min(lowest, idx)
    return lowest or 0


class _Skip(torch.nn.Module):
    """Stands in for a frozen bottom layer whose output is injected later."""

    def forward(self, hidden_states=None, *args, **kwargs):
        return hidden_states


class _StopAt(Exception):
    def __init__(self, hidden: torch.Tensor) -> None:
        self.hidden = hidden


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def prefix_states(body: torch.nn.Module, depth: int, run: Callable[[], object]) -> torch.Tensor:
    """Run ``run()`` (a forward of ``body``) up to the input of layer ``depth``; return it."""

    def stop(module, args, kwargs):
        raise _StopAt(_hidden_arg(args, kwargs).detach())

    handle = body.layers[depth].register_forward_pre_hook(stop, with_kwargs=True)
    try:
        with torch.no_grad():
            run()
    except _StopAt as reached:
        return reached.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"the forward never reached decoder layer {depth}")


def with_injected(body: torch.nn.Module, depth: int, hidden: torch.Tensor, run: Callable):
    """Run ``run()`` with layers below ``depth`` skipped and ``hidden`` entering layer ``depth``."""

    def inject(module, args, kwargs):
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    layers = body.layers
    saved = [layers[i] for i in range(depth)]
    handle = layers[depth].register_forward_pre_hook(inject, with_kwargs=True)
    try:
        for i in range(depth):
            layers[i] = _Skip()
        return run()
    finally:
        handle.remove()
        for i, layer in enumerate(saved):
            layers[i] = layer
