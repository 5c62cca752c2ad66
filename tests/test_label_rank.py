"""L_rank: the generated label's log-odds ranked over a batch as the teacher ranks the pairs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.losses import label_rank_loss
from flipkd.trainer.step import batch_loss, build_losses

PROB = torch.tensor([0.9, 0.2, 0.6, 0.05, 0.5])
LOGODDS = torch.log(PROB / (1 - PROB))


def test_zero_at_the_teachers_log_odds_whatever_the_level():
    for shift in (0.0, -3.0, 5.0):  # a prior common to every pair is not the term's business
        assert float(label_rank_loss(LOGODDS + shift, PROB)) == pytest.approx(0.0, abs=1e-6)
    assert float(label_rank_loss(LOGODDS.flip(0), PROB)) > 0.5
    assert float(label_rank_loss(LOGODDS * 0.5, PROB)) > 0  # the same order, too flat


def test_gradient_raises_the_pairs_the_teacher_ranks_higher():
    margins = torch.zeros(5, requires_grad=True)
    label_rank_loss(margins, PROB).backward()
    order = torch.argsort(margins.grad)  # most negative gradient: raised most by a step
    assert order.tolist() == torch.argsort(PROB, descending=True).tolist()
    assert float(margins.grad.sum()) == pytest.approx(0.0, abs=1e-6)  # no shift of the level


def test_fewer_than_two_pairs_give_zero_in_the_graph_and_shapes_are_checked():
    one = torch.ones(1, requires_grad=True)
    loss = label_rank_loss(one, torch.tensor([0.7]))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="two \\[n\\] vectors"):
        label_rank_loss(torch.zeros(3, 2), torch.zeros(3))


def test_batch_loss_adds_it_to_the_label_part():
    cfg = FlipkdConfig.model_validate(
        {"loss": {"label_rank": 0.5, "contrastive": "none", "dist": "none"}}
    )
    losses = build_losses(cfg.loss)
    gen = torch.tensor(0.7, requires_grad=True)
    logits = torch.stack([LOGODDS.flip(0), torch.zeros(5)], dim=1).requires_grad_(True)
    eye = torch.eye(5)
    parts: dict = {}
    total, log = batch_loss(
        losses, gen, None, None, eye, eye, torch.ones(5), parts_out=parts,
        label_logits=logits, label_prob=PROB,
    )  # fmt: skip
    rank = float(label_rank_loss(LOGODDS.flip(0), PROB))
    assert log["label_rank"] == pytest.approx(rank)
    assert float(total.detach()) == pytest.approx(0.7 + 0.5 * rank)
    assert float(parts["gen"].detach()) == pytest.approx(float(total.detach()))
    assert parts["rep"] is None
    off = build_losses(FlipkdConfig().loss)
    assert off.weights["label_rank"] == 0.0
    _, log_off = batch_loss(
        dataclasses.replace(off, contrastive=None, dist=None), gen, None, None, eye, eye,
        torch.ones(5), label_logits=logits, label_prob=PROB,
    )  # fmt: skip
    assert "label_rank" not in log_off


def test_option_is_validated_and_hash_neutral_at_zero():
    base = FlipkdConfig()
    assert config_hash(FlipkdConfig.model_validate({"loss": {"label_rank": 0.0}})) == (
        config_hash(base)
    )
    assert config_hash(FlipkdConfig.model_validate({"loss": {"label_rank": 1.0}})) != (
        config_hash(base)
    )
    with pytest.raises(ValueError, match="label_rank needs the generated label"):
        FlipkdConfig.model_validate({"loss": {"label_rank": 1.0, "gen": False}})


def test_the_cpu_and_gpu_profiles_train_fip_with_it_and_the_demo_without():
    """The dev-chosen default (results/dev/atec/atec-label-rank-seeds/): weight 3 for fip and
    its ablations in the cpu and gpu profiles, sft without it, the demo untouched."""
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    for name in ("cpu", "gpu"):
        for bench in ("mqp", "atec"):
            assert build_config(PROFILES[name], bench, "fip", 0, []).loss.label_rank == 3.0
            assert build_config(PROFILES[name], bench, "fip-no-mcl", 0, []).loss.label_rank == 3.0
            assert build_config(PROFILES[name], bench, "sft", 0, []).loss.label_rank == 0.0
    assert build_config(PROFILES["demo"], "mqp", "fip", 0, []).loss.label_rank == 0.0


def test_rows_that_train_nothing_keep_their_run_keys_when_the_fip_recipe_changes():
    """teacher and zero-shot compute nothing with the loss options: the cpu profile's L_rank
    leaves their config hash (the key their finished runs are found by) as it was."""
    from flipkd.config import config_hash
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    cpu = PROFILES["cpu"]
    before = dataclasses.replace(
        cpu, overrides={k: v for k, v in cpu.overrides.items() if k != "loss.label_rank"}
    )
    for row in ("teacher", "zero-shot", "sft"):
        now, then = (build_config(p, "atec", row, 0, []) for p in (cpu, before))
        assert config_hash(now) == config_hash(then)
    fip_now, fip_then = (build_config(p, "atec", "fip", 0, []) for p in (cpu, before))
    assert config_hash(fip_now) != config_hash(fip_then)
