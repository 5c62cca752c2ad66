"""L_dist: row KL and MSE match naive loops, vanish at agreement, and push the right way."""

from __future__ import annotations

import pytest
import torch

from flipkd.losses import KLDistLoss, MSEDistLoss, PairMask, kl_dist_loss, mse_dist_loss
from loss_refs import random_batch, random_mask, ref_kl, ref_mse


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size", [2, 5, 8])
def test_kl_matches_naive_loop(seed, size):
    student, _, teacher_cos, labels = random_batch(seed, size)
    mask = random_mask(seed, size)
    got = kl_dist_loss(student, teacher_cos, labels, mask, t_teacher=0.1, t_student=0.3)
    assert got.item() == pytest.approx(ref_kl(student, teacher_cos, 0.1, 0.3), rel=1e-10)


def test_kl_is_zero_for_identical_distributions():
    student, _, teacher_cos, labels = random_batch(0, 6)
    assert kl_dist_loss(teacher_cos, teacher_cos, labels).item() == pytest.approx(0.0, abs=1e-12)
    # Same distribution reached through different temperatures: S/τ_s == T/τ_t.
    scaled = kl_dist_loss(teacher_cos / 2, teacher_cos, labels, t_teacher=0.1, t_student=0.05)
    assert scaled.item() == pytest.approx(0.0, abs=1e-12)
    assert kl_dist_loss(student, teacher_cos, labels).item() > 0.1


def test_kl_gradient_moves_student_towards_teacher():
    _, _, teacher_cos, labels = random_batch(1, 5)
    student = torch.zeros(5, 5, dtype=torch.float64, requires_grad=True)
    kl_dist_loss(student, teacher_cos, labels, t_teacher=0.1, t_student=0.1).backward()
    # From a flat student, descent raises each row's teacher-preferred entry the most.
    rows = torch.arange(5)
    assert torch.equal((-student.grad).argmax(dim=1), teacher_cos.argmax(dim=1))
    assert torch.isfinite(student.grad).all()
    assert student.grad.sum(dim=1).abs().max() < 1e-12  # softmax is shift invariant
    assert (student.grad[rows, teacher_cos.argmax(dim=1)] < 0).all()


def test_kl_needs_two_candidates():
    student, _, teacher_cos, labels = random_batch(0, 1)
    with pytest.raises(ValueError, match="at least 2"):
        kl_dist_loss(student, teacher_cos, labels)


def test_kl_module_and_no_teacher_gradient():
    student, _, teacher_cos, labels = random_batch(2, 4)
    teacher_cos.requires_grad_(True)
    module = KLDistLoss(t_teacher=0.2, t_student=0.07)
    loss = module(student.requires_grad_(True), teacher_cos, labels, random_mask(2, 4))
    loss.backward()
    assert teacher_cos.grad is None
    want = kl_dist_loss(student, teacher_cos, labels, t_teacher=0.2, t_student=0.07)
    assert loss.item() == want.item() and module.teacher_input == "cosine"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("size", [2, 5])
def test_mse_matches_naive_loop(seed, size):
    student, prob, _, labels = random_batch(seed, size)
    mask = random_mask(seed, size)
    got = mse_dist_loss(student, prob, labels, mask)
    assert got.item() == pytest.approx(ref_mse(student, prob, mask), rel=1e-12, abs=1e-15)


def test_mse_zero_at_agreement_and_gradient_direction():
    _, prob, _, labels = random_batch(3, 4)
    mask = random_mask(3, 4, empty_rows=0)
    assert mse_dist_loss(2 * prob - 1, prob, labels, mask).item() == pytest.approx(0.0, abs=1e-15)
    student = (2 * prob - 1 + 0.2).requires_grad_(True)  # every student score too high
    MSEDistLoss()(student, prob, labels, mask).backward()
    assert (student.grad[mask.kept] > 0).all() and (student.grad[~mask.kept] == 0).all()


def test_mse_all_masked_is_zero_with_finite_gradient():
    student, prob, _, labels = random_batch(0, 3)
    student.requires_grad_(True)
    nothing = torch.zeros(3, 3, dtype=torch.bool)
    loss = mse_dist_loss(student, prob, labels, PairMask(nothing, nothing.clone()))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(student.grad).all()
