"""Useful-FLOP accounting for the student's passes.

A pass over ``T`` non-padding tokens in ``S`` sequences costs, forward::

    2·T·(N_fwd + L_fwd) + 2·S·H_fwd

and, when it is trained, backward::

    2·T·N_bwd + 2·T·L_bwd + 2·S·H_bwd

``N_fwd`` counts the non-embedding base parameters of the modules the pass actually
ran (a representation pass cut at the A-tap stops inside the tap layer). The frozen
base needs input gradients only, and only where its input depends on a LoRA output,
so ``N_bwd`` counts the base modules whose input requires grad: nothing below the
lowest LoRA layer. ``L_fwd`` is ``r·(in+out)`` of each LoRA layer that ran (plus the
tap's own ``A·x``); ``L_bwd`` counts each LoRA matrix once for its weight gradient
and once more where its input needs a gradient. ``H`` is the LM head, run on one
position per sequence (the answer). Padding counts zero; attention's score and value
products are not counted (the usual ``2·N`` convention).

Which modules ran, and whether their input required grad, is read from a trace
(forward pre-hooks on every module holding parameters, one tiny input, grad on), so
cut passes and any architecture are counted from what actually executed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from flipkd.student.lora import lora_matrices


@dataclass(frozen=True)
class TracedModule:
    """One parameter-holding module as it ran."""

    name: str
    params: int
    kind: str  # "base", "lora", "embed" or "head"
    grad_input: bool


@dataclass(frozen=True)
class PassCost:
    """Per-token and per-sequence parameter counts of one pass (see the module doc)."""

    n_fwd: int
    n_bwd: int
    lora_fwd: int
    lora_bwd: int
    head_fwd: int = 0
    head_bwd: int = 0

    def flops(self, tokens: int, sequences: int, backward: bool) -> float:
        """Useful FLOPs of the pass over ``tokens`` real tokens in ``sequences`` rows."""
        total = 2 * tokens * (self.n_fwd + self.lora_fwd) + 2 * sequences * self.head_fwd
        if backward:
            total += 2 * tokens * (self.n_bwd + self.lora_bwd) + 2 * sequences * self.head_bwd
        return float(total)

    def as_dict(self) -> dict[str, int]:
        """Plain values for the JSON report."""
        return asdict(self)


def _kind(module: torch.nn.Module, head: torch.nn.Module | None, lora: set) -> str:
    if head is not None and module is head:
        return "head"
    if module in lora:
        return "lora"
    return "embed" if isinstance(module, torch.nn.Embedding) else "base"


def trace_modules(
    model: torch.nn.Module, run: Callable[[], object], head: torch.nn.Module | None = None
) -> list[TracedModule]:
    """Modules holding parameters that ``run()`` executed (grad on), in execution order."""
    seen: dict[str, TracedModule] = {}
    handles = []
    lora = lora_matrices(model)
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if not own:
            continue
        kind = _kind(module, head, lora)

        def hook(mod, args, name=name, own=own, kind=kind):
            grad = bool(args) and isinstance(args[0], torch.Tensor) and args[0].requires_grad
            seen.setdefault(name, TracedModule(name, own, kind, grad))

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.enable_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return list(seen.values())


def pass_cost(trace: Sequence[TracedModule], tap_a: int = 0) -> PassCost:
    """Sum a trace into a :class:`PassCost`.

    Args:
        trace: What the pass ran (:func:`trace_modules`).
        tap_a: Parameters of A matrices the A-tap applies outside module calls; counted
            as LoRA forward, and twice backward (weight and input gradients).
    """

    def total(kind: str, grad_only: bool = False) -> int:
        return sum(t.params for t in trace if t.kind == kind and (t.grad_input or not grad_only))

    return PassCost(
        n_fwd=total("base"),
        n_bwd=total("base", grad_only=True),
        lora_fwd=total("lora") + tap_a,
        lora_bwd=total("lora") + total("lora", grad_only=True) + 2 * tap_a,
        head_fwd=total("head"),
        head_bwd=total("head", grad_only=True),
    )
