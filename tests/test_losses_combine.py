"""Builders (name -> loss module) and the weighted total used by the ablation rows."""

from __future__ import annotations

import pytest
import torch

from flipkd.config.schema import LossConfig
from flipkd.losses import (
    CONTRASTIVE_LOSSES,
    DIST_LOSSES,
    KDMCSELoss,
    MCLLoss,
    build_contrastive,
    build_dist,
    dual_threshold_mask,
    total_loss,
)


def test_tables_cover_every_config_choice():
    fields = LossConfig.model_fields
    assert set(CONTRASTIVE_LOSSES) == set(fields["contrastive"].annotation.__args__)
    assert set(DIST_LOSSES) == set(fields["dist"].annotation.__args__)


def test_builders_pass_hyperparameters():
    mcl = build_contrastive("mcl", scale=5.0, margin=0.2, gamma=0.5)
    assert isinstance(mcl, MCLLoss) and (mcl.scale, mcl.margin, mcl.gamma) == (5.0, 0.2, 0.5)
    kd = build_contrastive("kdmcse", theta_neg=0.3)
    assert isinstance(kd, KDMCSELoss) and kd.theta_neg == 0.3
    assert build_dist("kl", t_teacher=0.1).t_teacher == 0.1
    assert build_dist("mse").teacher_input == "prob"
    assert build_contrastive("none") is None and build_dist("none") is None


@pytest.mark.parametrize("name", sorted(set(CONTRASTIVE_LOSSES) - {"none"}))
def test_every_built_loss_runs(name):
    gen = torch.Generator().manual_seed(0)
    student = (torch.rand(4, 4, generator=gen) * 2 - 1).requires_grad_(True)
    prob, labels = torch.rand(4, 4, generator=gen), torch.tensor([1, 0, 1, 0])
    loss = build_contrastive(name)(student, prob, labels, dual_threshold_mask(prob, labels))
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(student.grad).all()


def test_builders_reject_unknown_names_and_keywords():
    with pytest.raises(ValueError, match="unknown contrastive loss 'triplet'"):
        build_contrastive("triplet")
    with pytest.raises(ValueError, match="unknown dist loss"):
        build_dist("l1")
    with pytest.raises(ValueError, match="not \\['lam'\\]"):
        build_contrastive("mcl", lam=20.0)


def test_total_loss_weights_skips_and_logs():
    gen_term = torch.tensor(0.7, requires_grad=True)
    contrast = torch.tensor(12.0, requires_grad=True)
    dist = torch.tensor(3.0, requires_grad=True)
    terms = {"gen": gen_term, "contrast": contrast, "dist": dist, "extra": None}
    weights = {"gen": 1.0, "contrast": 0.1, "dist": 0.0, "extra": 1.0}
    total, log = total_loss(terms, weights)
    assert total.item() == pytest.approx(0.7 + 1.2)
    assert log == pytest.approx({"gen": 0.7, "contrast": 12.0, "loss": 1.9})
    total.backward()
    assert gen_term.grad.item() == 1.0 and contrast.grad.item() == pytest.approx(0.1)
    assert dist.grad is None  # weight 0: not even on the graph


def test_total_loss_errors():
    term = {"gen": torch.tensor(1.0)}
    with pytest.raises(ValueError, match="no weight"):
        total_loss(term, {})
    with pytest.raises(ValueError, match=">= 0"):
        total_loss(term, {"gen": -1.0})
    with pytest.raises(ValueError, match="switched off"):
        total_loss({"gen": torch.tensor(1.0), "dist": None}, {"gen": 0.0, "dist": 1.0})
