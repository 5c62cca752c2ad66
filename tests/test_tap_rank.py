"""L_tap-rank: the A-tap's cosines of the labelled pairs ranked as the teacher ranks them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.losses import kl_dist_loss, tap_rank_loss
from flipkd.trainer.step import batch_loss, build_losses

TEACHER = torch.tensor(
    [[0.95, 0.70, 0.72], [0.71, 0.80, 0.69], [0.70, 0.73, 0.88]]
)  # diagonal: the labelled pairs, ranked 0 > 2 > 1
LABELS = torch.tensor([1.0, 0.0, 1.0])


def _diag_shifted(base: torch.Tensor, shifts: list[float]) -> torch.Tensor:
    """``base`` with each row shifted by its own constant (what a row softmax ignores)."""
    return base + torch.tensor(shifts).unsqueeze(1)


def test_zero_at_the_teachers_order_and_scale_whatever_the_common_level():
    assert float(tap_rank_loss(TEACHER, TEACHER, LABELS)) == pytest.approx(0.0, abs=1e-6)
    assert float(tap_rank_loss(TEACHER - 0.3, TEACHER, LABELS)) == pytest.approx(0.0, abs=1e-6)
    flipped = TEACHER.clone()
    flipped.diagonal().copy_(TEACHER.diagonal().flip(0))
    assert float(tap_rank_loss(flipped, TEACHER, LABELS)) > 0.5


def test_it_sees_what_the_row_wise_kl_cannot():
    # per-row shifts leave every row's softmax (L_dist) as it was, but reorder the labelled
    # pairs: pair 1, the teacher's lowest, is now the student's highest
    student = _diag_shifted(TEACHER, [0.0, 0.3, 0.0])
    assert float(kl_dist_loss(student, TEACHER, LABELS)) == pytest.approx(0.0, abs=1e-5)
    assert float(tap_rank_loss(student, TEACHER, LABELS)) > 1.0


def test_gradient_raises_the_pairs_the_teacher_ranks_higher():
    student = torch.full((3, 3), 0.5, requires_grad=True)
    tap_rank_loss(student, TEACHER, LABELS).backward()
    diag = student.grad.diagonal()
    raised_most_first = torch.argsort(diag).tolist()
    assert raised_most_first == torch.argsort(TEACHER.diagonal(), descending=True).tolist()
    assert float(diag.sum()) == pytest.approx(0.0, abs=1e-5)  # no shift of the level
    off_diagonal = student.grad - torch.diag(diag)
    assert float(off_diagonal.abs().sum()) == 0.0  # only the labelled pairs


def test_one_pair_gives_zero_in_the_graph_and_shapes_are_checked():
    one = torch.ones(1, 1, requires_grad=True)
    loss = tap_rank_loss(one, torch.ones(1, 1), torch.ones(1))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="teacher_sim"):
        tap_rank_loss(TEACHER, torch.zeros(2, 2), LABELS)


def test_batch_loss_adds_it_to_the_representation_part_at_l_dists_temperatures():
    cfg = FlipkdConfig.model_validate(
        {"loss": {"tap_rank": 0.5, "contrastive": "none", "dist": "none",
                  "dist_t_student": 0.1}}
    )  # fmt: skip
    losses = build_losses(cfg.loss)
    assert losses.needs_rep  # the term alone asks for the A-tap's pass
    draw = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    rep = torch.nn.functional.normalize(draw, dim=1)
    rep_b = rep.flip(0).clone().requires_grad_(True)
    gen = torch.tensor(0.7, requires_grad=True)
    parts: dict = {}
    total, log = batch_loss(
        losses, gen, rep, rep_b, TEACHER, TEACHER, LABELS, parts_out=parts
    )  # fmt: skip
    want = float(tap_rank_loss(rep @ rep_b.detach().T, TEACHER, LABELS, t_student=0.1))
    assert log["tap_rank"] == pytest.approx(want, rel=1e-5)
    assert float(total.detach()) == pytest.approx(0.7 + 0.5 * want, rel=1e-5)
    assert float(parts["rep"].detach()) == pytest.approx(0.5 * want, rel=1e-5)
    assert float(parts["gen"].detach()) == pytest.approx(0.7)
    off = build_losses(FlipkdConfig().loss)
    assert off.weights["tap_rank"] == 0.0
    _, log_off = batch_loss(off, gen, rep, rep_b, TEACHER, TEACHER, LABELS)
    assert "tap_rank" not in log_off
    none = dataclasses.replace(off, contrastive=None, dist=None)
    assert not none.needs_rep


def test_option_is_validated_and_hash_neutral_at_zero():
    base = FlipkdConfig()
    assert config_hash(FlipkdConfig.model_validate({"loss": {"tap_rank": 0.0}})) == (
        config_hash(base)
    )
    assert config_hash(FlipkdConfig.model_validate({"loss": {"tap_rank": 1.0}})) != (
        config_hash(base)
    )
    with pytest.raises(ValueError):
        FlipkdConfig.model_validate({"loss": {"tap_rank": -1.0}})
