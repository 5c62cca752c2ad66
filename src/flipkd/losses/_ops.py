"""Small numerically stable building blocks shared by the losses (tensors only).

"Empty" sums are represented by ``None`` so that a loss over an empty set becomes an exact
zero that is still attached to the graph (``backward()`` works and gives zero gradients),
instead of ``log(0) = -inf`` whose gradient is NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Cosines are clamped this far inside [-1, 1] before arccos (whose slope is infinite at ±1).
ACOS_EPS = 1e-6


def graph_zero(ref: Tensor) -> Tensor:
    """A scalar 0 connected to ``ref``'s graph, so ``backward()`` still runs."""
    return ref.sum() * 0.0


def lse(x: Tensor) -> Tensor | None:
    """``log Σ exp(x)`` over all entries, or ``None`` when ``x`` is empty."""
    return torch.logsumexp(x.reshape(-1), 0) if x.numel() else None


def lse_of(parts: list[Tensor | None]) -> Tensor | None:
    """``log Σ_k exp(parts_k)`` over the non-empty parts, or ``None`` when all are empty."""
    present = [p for p in parts if p is not None]
    return torch.logsumexp(torch.stack(present), 0) if present else None


def log1p_exp(x: Tensor | None, ref: Tensor) -> Tensor:
    """``log(1 + exp(x))`` computed as ``logaddexp(0, x)``; 0 (on ``ref``'s graph) if empty."""
    if x is None:
        return graph_zero(ref)
    return torch.logaddexp(x, torch.zeros_like(x))


def cross_pair_lse(first: Tensor, second: Tensor) -> Tensor | None:
    """``log Σ_{u, v} exp(first_u + second_v)`` over all cross pairs, in ``O(len)``.

    The double sum factorises: ``Σ_u exp(first_u) · Σ_v exp(second_v)``.
    """
    a, b = lse(first), lse(second)
    return None if a is None or b is None else a + b


def ordered_pair_lse(a: Tensor, key: Tensor) -> Tensor | None:
    """``log Σ_{u, v: key_u > key_v} exp(a_u - a_v)`` in ``O(K log K)`` time, ``O(K)`` memory.

    Sorting by ``key`` turns the inner sum over ``v`` into a prefix sum:
    ``Σ_u exp(a_u) · Σ_{v: key_v < key_u} exp(-a_v)``, computed with ``logcumsumexp``. Ties
    (``key_u == key_v``) are not pairs. Returns ``None`` when no pair exists.
    """
    order = torch.argsort(key.reshape(-1))
    key_sorted, a_sorted = key.reshape(-1)[order].contiguous(), a.reshape(-1)[order]
    n_less = torch.searchsorted(key_sorted, key_sorted, right=False)
    has_lower = n_less > 0
    if not bool(has_lower.any()):
        return None
    prefix = torch.logcumsumexp(-a_sorted, 0)
    return torch.logsumexp(a_sorted[has_lower] + prefix[n_less[has_lower] - 1], 0)


def listwise_kl(student_logits: Tensor, target_logits: Tensor) -> Tensor:
    """``KL(softmax(target) || softmax(student))`` over one list of scores (``[n]`` each).

    A softmax ignores a shift common to the whole list, so this compares rankings and their
    spread, not levels. The target carries no gradient.
    """
    target = torch.log_softmax(target_logits.detach(), dim=0)
    log_q = torch.log_softmax(student_logits, dim=0)
    return torch.nn.functional.kl_div(log_q, target, reduction="sum", log_target=True)


def safe_angle(cosine: Tensor) -> Tensor:
    """``arccos`` of a cosine clamped to ``[-1 + eps, 1 - eps]`` (finite gradient)."""
    return torch.arccos(cosine.clamp(-1.0 + ACOS_EPS, 1.0 - ACOS_EPS))
