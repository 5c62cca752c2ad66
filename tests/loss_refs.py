"""Naive reference implementations of the losses (plain Python loops) and batch factories.

Used by the ``test_losses_*.py`` files: every vectorised loss must match these loops.
"""

from __future__ import annotations

import math

import torch

from flipkd.losses import PairMask


def random_batch(seed: int, size: int, ties: bool = False):
    """Random float64 ``(S, P, T, labels)``; ``ties`` rounds P to 0.1 so equal values occur."""
    gen = torch.Generator().manual_seed(seed)
    student = torch.rand(size, size, generator=gen, dtype=torch.float64) * 2 - 1
    prob = torch.rand(size, size, generator=gen, dtype=torch.float64)
    if ties:
        prob = (prob * 10).round() / 10
    teacher_cos = torch.rand(size, size, generator=gen, dtype=torch.float64) * 2 - 1
    labels = torch.randint(0, 2, (size,), generator=gen)
    return student, prob, teacher_cos, labels


def random_mask(seed: int, size: int, empty_rows: int = 1) -> PairMask:
    """A random mask: positives on the diagonal, negatives elsewhere, some rows all False."""
    gen = torch.Generator().manual_seed(seed + 1000)
    diag_pos = torch.rand(size, generator=gen) < 0.5
    pos = torch.diag_embed(diag_pos)
    neg = (torch.rand(size, size, generator=gen) < 0.6) & ~pos
    for row in torch.randperm(size, generator=gen)[:empty_rows].tolist():
        pos[row] = False
        neg[row] = False
    return PairMask(pos=pos, neg=neg, stats={})


def cells(mask: torch.Tensor) -> list[tuple[int, int]]:
    """The ``(i, j)`` positions where ``mask`` is True."""
    size = mask.shape[0]
    return [(i, j) for i in range(size) for j in range(size) if bool(mask[i, j])]


def ref_mcl(s, p, mask, scale, margin, gamma) -> float:
    pos, neg = cells(mask.pos), cells(mask.neg)
    zone1 = sum(math.exp(scale * (float(s[n]) - float(s[q]) + margin)) for n in neg for q in pos)
    zone2 = 0.0
    for group in (pos, neg):
        for u in group:
            for v in group:
                if float(p[u]) > float(p[v]):
                    gap = gamma * (float(p[u]) - float(p[v])) - (float(s[u]) - float(s[v]))
                    zone2 += math.exp(scale * gap)
    return math.log1p(zone1) + math.log1p(zone2)


def ref_cosent(s, labels, mask, scale) -> float:
    kept = [i for i in range(s.shape[0]) if bool(mask.pos[i, i] | mask.neg[i, i])]
    total = sum(
        math.exp(scale * (float(s[j, j]) - float(s[i, i])))
        for i in kept
        for j in kept
        if int(labels[i]) > int(labels[j])
    )
    return math.log1p(total)


def ref_row_ce(logit, rows, allowed) -> float:
    """Mean over ``rows`` of ``-log softmax`` of the diagonal among the ``allowed`` columns."""
    losses = []
    for i in rows:
        denom = sum(math.exp(logit(i, j)) for j in allowed(i))
        losses.append(-(logit(i, i) - math.log(denom)))
    return sum(losses) / len(losses) if losses else 0.0


def pos_rows(mask) -> list[int]:
    return [i for i in range(mask.pos.shape[0]) if bool(mask.pos[i, i])]


def ref_infonce(s, mask, tau) -> float:
    size = s.shape[0]

    def allowed(i):
        return [j for j in range(size) if j == i or bool(mask.neg[i, j])]

    return ref_row_ce(lambda i, j: float(s[i, j]) / tau, pos_rows(mask), allowed)


def ref_arccse(s, mask, tau, margin) -> float:
    size = s.shape[0]

    def logit(i, j):
        if i != j:
            return float(s[i, j]) / tau
        angle = math.acos(min(max(float(s[i, i]), -1 + 1e-6), 1 - 1e-6))
        return math.cos(min(angle + margin, math.pi)) / tau

    def allowed(i):
        return [j for j in range(size) if j == i or bool(mask.neg[i, j])]

    return ref_row_ce(logit, pos_rows(mask), allowed)


def ref_kdmcse(s, p, mask, tau, margin, theta_neg) -> float:
    size = s.shape[0]

    def logit(i, j):
        if i == j:
            return float(s[i, i]) / tau
        angle = math.acos(min(max(float(s[i, j]), -1 + 1e-6), 1 - 1e-6))
        return math.cos(max(angle - margin * (1 - float(p[i, j])), 0.0)) / tau

    def allowed(i):
        return [
            j
            for j in range(size)
            if j == i or (bool(mask.neg[i, j]) and float(p[i, j]) <= theta_neg)
        ]

    return ref_row_ce(logit, pos_rows(mask), allowed)


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def ref_kl(s, t, t_teacher, t_student) -> float:
    size = s.shape[0]
    total = 0.0
    for i in range(size):
        target = _softmax([float(t[i, j]) / t_teacher for j in range(size)])
        pred = _softmax([float(s[i, j]) / t_student for j in range(size)])
        total += sum(a * math.log(a / b) for a, b in zip(target, pred, strict=True) if a > 0)
    return total / size


def ref_mse(s, p, mask) -> float:
    kept = cells(mask.pos | mask.neg)
    if not kept:
        return 0.0
    return sum(((float(s[c]) + 1) / 2 - float(p[c])) ** 2 for c in kept) / len(kept)
