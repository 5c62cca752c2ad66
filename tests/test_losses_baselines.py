"""Baselines (CoSENT, InfoNCE, ArcCSE, KDMCSE): naive-loop agreement, minima, margins, edges."""

from __future__ import annotations

import pytest
import torch

from flipkd.losses import (
    ArcCSELoss,
    CoSENTLoss,
    InfoNCELoss,
    KDMCSELoss,
    PairMask,
    arccse_loss,
    cosent_loss,
    dual_threshold_mask,
    infonce_loss,
    kdmcse_loss,
)
from loss_refs import (
    random_batch,
    random_mask,
    ref_arccse,
    ref_cosent,
    ref_infonce,
    ref_kdmcse,
)

SEEDS = range(4)
SIZES = [2, 5, 8]


def _masks(seed, size, prob, labels):
    return [random_mask(seed, size), dual_threshold_mask(prob, labels, enabled=False)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
def test_all_match_naive_loops(seed, size):
    student, prob, _, labels = random_batch(seed, size)
    for mask in _masks(seed, size, prob, labels):
        args = (student, prob, labels, mask)
        pairs = [
            (cosent_loss(*args, scale=9.0), ref_cosent(student, labels, mask, 9.0)),
            (infonce_loss(*args, temperature=0.2), ref_infonce(student, mask, 0.2)),
            (
                arccse_loss(*args, temperature=0.2, margin=0.3),
                ref_arccse(student, mask, 0.2, 0.3),
            ),
            (
                kdmcse_loss(*args, temperature=0.2, margin=0.3, theta_neg=0.5),
                ref_kdmcse(student, prob, mask, 0.2, 0.3, 0.5),
            ),
        ]
        for got, want in pairs:
            assert got.item() == pytest.approx(want, rel=1e-9, abs=1e-12)


def _ideal_batch(size: int = 4):
    """Gold-consistent batch: labelled positives at cosine 1, everything else at -1."""
    labels = torch.tensor([1, 0] * (size // 2))
    prob = torch.full((size, size), 0.1, dtype=torch.float64)
    prob.diagonal().copy_(torch.where(labels.bool(), 0.9, 0.1))
    student = torch.full((size, size), -1.0, dtype=torch.float64)
    student.diagonal().copy_(torch.where(labels.bool(), 1.0, -1.0))
    return student, prob, labels, dual_threshold_mask(prob, labels, 0.6, 0.4)


@pytest.mark.parametrize(
    "loss",
    [
        CoSENTLoss(scale=50.0),
        InfoNCELoss(temperature=0.01),
        ArcCSELoss(temperature=0.01, margin=0.2),
        KDMCSELoss(temperature=0.01, margin=0.2, theta_neg=0.4),
    ],
    ids=lambda m: type(m).__name__,
)
def test_near_zero_at_the_ideal_batch(loss):
    student, prob, labels, mask = _ideal_batch()
    assert 0.0 <= loss(student, prob, labels, mask).item() < 1e-12
    assert loss(-student, prob, labels, mask).item() > 10.0


@pytest.mark.parametrize(
    "loss",
    [CoSENTLoss(), InfoNCELoss(), ArcCSELoss(), KDMCSELoss(theta_neg=0.5)],
    ids=lambda m: type(m).__name__,
)
def test_gradient_raises_positives_and_lowers_negatives(loss):
    student, prob, _, labels = random_batch(5, 6)
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    prob = prob * 0.4  # every in-batch pair a confident negative
    prob.diagonal().copy_(torch.where(labels.bool(), 0.9, 0.1))
    mask = dual_threshold_mask(prob, labels, 0.6, 0.4)
    student = (student * 0.5).requires_grad_(True)
    loss(student, prob, labels, mask).backward()
    grad = student.grad
    assert (grad[mask.pos] < 0).all()
    assert (grad[_used_negatives(loss, mask)] > 0).all()
    assert torch.isfinite(grad).all()


def _used_negatives(loss, mask: PairMask) -> torch.Tensor:
    """CoSENT uses labelled negatives only; the row losses use the negatives of positive rows."""
    if isinstance(loss, CoSENTLoss):
        return mask.neg & torch.eye(mask.neg.shape[0], dtype=torch.bool)
    return mask.neg & torch.diagonal(mask.pos)[:, None]


def test_cosent_ignores_dropped_pairs():
    student, prob, _, _ = random_batch(0, 4)
    labels = torch.tensor([1, 0, 1, 0])
    prob.diagonal().copy_(torch.tensor([0.9, 0.5, 0.9, 0.1]))  # (1, 1) is unsure: dropped
    mask = dual_threshold_mask(prob, labels, 0.6, 0.4)
    moved = student.clone()
    moved[1, 1] = 0.99
    assert cosent_loss(student, prob, labels, mask) == cosent_loss(moved, prob, labels, mask)


def test_infonce_excludes_masked_columns():
    student, prob, _, labels = random_batch(1, 5)
    mask = random_mask(1, 5, empty_rows=0)
    row = int(torch.diagonal(mask.pos).nonzero()[0])
    col = next(j for j in range(5) if j != row and not bool(mask.neg[row, j]))
    student.requires_grad_(True)
    infonce_loss(student, prob, labels, mask).backward()
    assert student.grad[row, col] == 0


def test_arccse_margin_raises_the_loss():
    student, prob, _, labels = random_batch(2, 6)
    mask = dual_threshold_mask(prob, labels, enabled=False)
    losses = [arccse_loss(student, prob, labels, mask, margin=m).item() for m in (0, 0.1, 0.3)]
    plain = infonce_loss(student, prob, labels, mask).item()
    assert losses[0] == pytest.approx(plain, rel=1e-6) and losses[0] < losses[1] < losses[2]


def test_kdmcse_margin_grows_with_teacher_dissimilarity_and_filters():
    student = torch.tensor([[0.6, 0.3], [0.3, 0.6]], dtype=torch.float64)
    labels = torch.tensor([1, 1])
    far = torch.tensor([[0.9, 0.0], [0.0, 0.9]], dtype=torch.float64)
    near = torch.tensor([[0.9, 0.35], [0.35, 0.9]], dtype=torch.float64)
    similar = torch.tensor([[0.9, 0.7], [0.7, 0.9]], dtype=torch.float64)
    mask = dual_threshold_mask(far, labels, enabled=False)  # keep every in-batch negative
    teachers = {"far": far, "near": near, "similar": similar}
    loss = {
        name: kdmcse_loss(student, p, labels, mask, margin=0.3, theta_neg=0.4).item()
        for name, p in teachers.items()
    }
    plain = infonce_loss(student, far, labels, mask).item()
    assert loss["far"] > loss["near"] > plain
    assert loss["similar"] == 0.0  # the only negative is teacher-similar: filtered out


@pytest.mark.parametrize("size", [1, 2])
@pytest.mark.parametrize("edge", [1.0, -1.0])
def test_finite_gradients_at_unit_cosines_and_small_batches(size, edge):
    student = torch.full((size, size), edge, dtype=torch.float64, requires_grad=True)
    labels = torch.ones(size, dtype=torch.long)
    prob = torch.full((size, size), 0.1, dtype=torch.float64)
    prob.diagonal().fill_(0.9)
    mask = dual_threshold_mask(prob, labels, 0.6, 0.4)
    for loss in (cosent_loss, infonce_loss, arccse_loss, kdmcse_loss):
        student.grad = None
        value = loss(student, prob, labels, mask)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(student.grad).all(), loss.__name__


def test_all_masked_gives_zero_with_gradient():
    student, prob, _, labels = random_batch(0, 4)
    student.requires_grad_(True)
    nothing = torch.zeros(4, 4, dtype=torch.bool)
    mask = PairMask(nothing, nothing.clone())
    for loss in (cosent_loss, infonce_loss, arccse_loss, kdmcse_loss):
        student.grad = None
        value = loss(student, prob, labels, mask)
        value.backward()
        assert value.item() == 0.0 and torch.equal(student.grad, torch.zeros_like(student))
