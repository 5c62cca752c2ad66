"""MCL: matches the naive double loop, vanishes when margins are met, honours both zones."""

from __future__ import annotations

import pytest
import torch

from flipkd.losses import MCLLoss, PairMask, dual_threshold_mask, mcl_loss
from loss_refs import random_batch, random_mask, ref_mcl


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size", [2, 5, 8])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_naive_loop(seed, size, ties):
    student, prob, _, labels = random_batch(seed, size, ties=ties)
    for mask in (random_mask(seed, size), dual_threshold_mask(prob, labels, 0.6, 0.4)):
        got = mcl_loss(student, prob, labels, mask, scale=7.0, margin=0.2, gamma=0.8)
        want = ref_mcl(student, prob, mask, 7.0, 0.2, 0.8)
        assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_module_matches_function():
    student, prob, _, labels = random_batch(0, 6)
    mask = random_mask(0, 6)
    module = MCLLoss(scale=5.0, margin=0.3, gamma=2.0)
    want = mcl_loss(student, prob, labels, mask, scale=5.0, margin=0.3, gamma=2.0)
    assert torch.equal(module(student, prob, labels, mask), want)


def _separable_batch():
    """P with well-spaced distinct values: positives on a diagonal >= 0.7, the rest <= 0.4."""
    size = 4
    labels = torch.tensor([1, 0, 1, 0])
    low = torch.linspace(0.0, 0.4, size * size - 2, dtype=torch.float64)
    prob = torch.empty(size, size, dtype=torch.float64)
    prob[~torch.diag_embed(labels.bool())] = low
    prob[0, 0], prob[2, 2] = 0.95, 0.7
    return prob, labels


def test_near_zero_when_student_ranks_like_teacher_with_margin():
    prob, labels = _separable_batch()
    mask = dual_threshold_mask(prob, labels, 0.6, 0.4)
    assert mask.stats["kept_pos"] == 2 and mask.stats["inbatch_neg"] == 12
    student = 2 * prob - 1  # gaps are 2ΔP >= γΔP + 1.5ΔP; classes 0.6 apart >= m
    loss = mcl_loss(student, prob, labels, mask, scale=2000.0, margin=0.1, gamma=0.5)
    assert 0.0 <= loss.item() < 1e-9
    reversed_loss = mcl_loss(-student, prob, labels, mask, scale=20.0, margin=0.1, gamma=0.5)
    assert reversed_loss.item() > 10.0


def _two_pairs(s_pos: float, s_neg: float):
    """One kept positive (0, 0) and one kept negative (1, 1); in-batch pairs ignored."""
    student = torch.tensor([[s_pos, 0.0], [0.0, s_neg]], dtype=torch.float64, requires_grad=True)
    prob = torch.tensor([[0.9, 0.8], [0.8, 0.1]], dtype=torch.float64)
    labels = torch.tensor([1, 0])
    return student, prob, labels, dual_threshold_mask(prob, labels, 0.6, 0.4)


def test_zone1_margin_is_honoured_and_gradient_separates():
    violating = mcl_loss(*_two_pairs(0.5, 0.45), margin=0.1)
    satisfying = mcl_loss(*_two_pairs(0.5, 0.2), margin=0.1)
    assert violating.item() > 0.5 > 10 * satisfying.item()
    student, prob, labels, mask = _two_pairs(0.5, 0.45)
    mcl_loss(student, prob, labels, mask).backward()
    assert student.grad[0, 0] < 0 < student.grad[1, 1]  # descent: S_pos up, S_neg down
    assert student.grad[0, 1] == 0 == student.grad[1, 0]  # ignored pairs get no gradient


def _two_positives(gap: float):
    """Two kept positives the teacher ranks 0.9 > 0.7; no negatives, so only zone 2 acts."""
    student = torch.tensor([[0.5 + gap, 0.0], [0.0, 0.5]], dtype=torch.float64)
    student.requires_grad_(True)
    prob = torch.tensor([[0.9, 0.5], [0.5, 0.7]], dtype=torch.float64)
    labels = torch.tensor([1, 1])
    return student, prob, labels, dual_threshold_mask(prob, labels, 0.6, 0.4)


def test_zone2_keeps_teacher_order_inside_a_class():
    # γ = 1 asks for a cosine gap >= 0.2 between the two positives.
    violating = mcl_loss(*_two_positives(0.05), gamma=1.0)
    inverted = mcl_loss(*_two_positives(-0.1), gamma=1.0)
    satisfying = mcl_loss(*_two_positives(0.5), gamma=1.0)
    assert inverted.item() > violating.item() > 1.0 > 100 * satisfying.item()
    student, prob, labels, mask = _two_positives(0.05)
    mcl_loss(student, prob, labels, mask).backward()
    assert student.grad[0, 0] < 0 < student.grad[1, 1]


def test_zone2_ignores_ties():
    student, prob, labels, mask = _two_positives(-0.5)
    prob = torch.tensor([[0.8, 0.5], [0.5, 0.8]], dtype=torch.float64)
    assert mcl_loss(student, prob, labels, mask).item() == 0.0


def test_empty_and_all_masked_give_zero_with_finite_gradient():
    student, prob, _, labels = random_batch(3, 5)
    student.requires_grad_(True)
    nothing = torch.zeros(5, 5, dtype=torch.bool)
    loss = mcl_loss(student, prob, labels, PairMask(nothing, nothing.clone()))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(student.grad, torch.zeros(5, 5, dtype=torch.float64))


@pytest.mark.parametrize("size", [1, 2])
def test_small_batches_have_finite_gradients(size):
    student, prob, _, labels = random_batch(1, size)
    student.requires_grad_(True)
    mask = dual_threshold_mask(prob, labels, enabled=False)
    mcl_loss(student, prob, labels, mask).backward()
    assert torch.isfinite(student.grad).all()


def test_large_scale_in_float32_is_finite():
    student, prob, _, labels = random_batch(2, 16)
    student = student.float().requires_grad_(True)
    mask = dual_threshold_mask(prob.float(), labels, enabled=False)
    loss = mcl_loss(student, prob.float(), labels, mask, scale=5000.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert loss.item() > 1000.0  # λ·(max violation): large but representable


def test_no_gradient_into_teacher():
    student, prob, _, labels = random_batch(0, 4)
    prob.requires_grad_(True)
    mcl_loss(student, prob, labels, dual_threshold_mask(prob.detach(), labels, enabled=False))
    assert prob.grad is None


def test_batch_of_64_runs_without_quadratic_memory():
    student, prob, _, labels = random_batch(4, 64)
    student = student.float().requires_grad_(True)
    mask = dual_threshold_mask(prob.float(), labels, enabled=False)  # K = 4096 kept pairs
    loss = mcl_loss(student, prob.float(), labels, mask)
    loss.backward()
    assert torch.isfinite(student.grad).all()


def test_shape_mismatch_raises():
    student, prob, _, labels = random_batch(0, 4)
    with pytest.raises(ValueError, match="teacher_sim"):
        mcl_loss(student, prob[:3, :3], labels, random_mask(0, 4))
