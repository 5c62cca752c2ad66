"""Training diagnostics: anisotropy, collapse values, label margins, per-term gradient norms."""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F

from flipkd.losses import build_contrastive, build_dist, dual_threshold_mask
from flipkd.student.lora import lora_matrix_role
from flipkd.trainer import train_student
from flipkd.trainer.diagnose import (
    collapse_values,
    effective_rank,
    label_prior_entropy,
    margin_stats,
    rep_stats,
    term_grad_norms,
)
from flipkd.trainer.step import _spearman, build_losses
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def test_effective_rank_of_identity_and_of_a_line():
    assert math.isclose(effective_rank(torch.eye(8)), 8.0, rel_tol=1e-5)
    line = torch.ones(6, 1) @ torch.randn(1, 5)
    assert effective_rank(line) < 1.01


def test_rep_stats_tell_collapse_from_spread():
    same = F.normalize(torch.ones(8, 4) + 1e-4 * torch.randn(8, 4), dim=-1)
    collapsed = rep_stats(same[:4], same[4:])
    assert collapsed["rep/mean_cos"] > 0.999 and collapsed["rep/eff_rank"] < 1.1
    eye = torch.eye(8)
    spread = rep_stats(eye[:4], eye[4:])
    assert spread["rep/mean_cos"] == 0.0 and spread["rep/eff_rank"] > 7.9


def test_collapse_values_are_the_losses_at_a_constant_similarity():
    cfg = tiny_config().loss
    cfg.theta_pos, cfg.theta_neg = 0.6, 0.4
    losses = build_losses(cfg)
    gen = torch.Generator().manual_seed(0)
    prob = torch.rand(6, 6, generator=gen)
    cos = prob * 2 - 1
    labels = torch.tensor([1, 0, 1, 0, 1, 1])
    prob.diagonal().copy_(torch.tensor([0.9, 0.1, 0.8, 0.2, 0.95, 0.7]))
    sim = torch.rand(6, 6, generator=gen)
    got = collapse_values(losses, sim, cos, prob, labels)
    flat = torch.full((6, 6), float(sim.mean()))
    mask = dual_threshold_mask(prob, labels, 0.6, 0.4)
    mcl = build_contrastive("mcl", scale=cfg.mcl_lambda, margin=cfg.mcl_margin, gamma=cfg.mcl_gamma)
    kl = build_dist("kl", t_teacher=cfg.dist_t_teacher, t_student=cfg.dist_t_student)
    assert math.isclose(
        got["collapse/contrast"], float(mcl(flat, prob, labels, mask)), rel_tol=1e-6
    )
    assert math.isclose(got["collapse/dist"], float(kl(flat, cos, labels, mask)), rel_tol=1e-6)


def test_label_prior_entropy_and_margins():
    assert math.isclose(label_prior_entropy(torch.tensor([1, 0, 1, 0])), math.log(2))
    assert label_prior_entropy(torch.tensor([1, 1])) == 0.0
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.0]])
    stats = margin_stats(logits, torch.tensor([1, 0, 1, 0]))
    assert math.isclose(stats["gen/margin_gap"], 2.5 - (-0.5))
    assert math.isclose(stats["gen/margin_mean"], 1.0)


def test_term_grad_norms_match_a_manual_backward():
    a = torch.nn.Parameter(torch.randn(3, 4))
    b = torch.nn.Parameter(torch.randn(4, 3))
    x = torch.randn(5, 4)
    out = (x @ a.T) @ b.T
    terms = {"gen": out.pow(2).mean(), "contrast": out.sum(), "dist": None}
    named = [("l.lora_A.default.weight", a), ("l.lora_B.default.weight", b)]
    got = term_grad_norms(terms, {"gen": 2.0, "contrast": 0.5, "dist": 1.0}, named)
    assert set(got) == {"grad/gen_A", "grad/gen_B", "grad/contrast_A", "grad/contrast_B"}
    ga, gb = torch.autograd.grad(0.5 * out.sum(), [a, b], retain_graph=True)
    assert math.isclose(got["grad/contrast_A"], float(ga.norm()), rel_tol=1e-5)
    assert math.isclose(got["grad/contrast_B"], float(gb.norm()), rel_tol=1e-5)
    wrapped = "module.peft.base_model.model.model.layers.0.mlp.down_proj.lora_A.default.weight"
    names = (wrapped, "x.lora_B.default.weight", "x.weight")
    assert [lora_matrix_role(n) for n in names] == ["A", "B", None]


def test_rep_spearman_is_scipys_and_the_old_argsort_one_without_ties():
    def argsort_spearman(x, y):  # what the trainer logged before: ranks by argsort
        rx, ry = x.argsort().argsort().float(), y.argsort().argsort().float()
        rx, ry = rx - rx.mean(), ry - ry.mean()
        return float((rx * ry).sum() / (rx.norm() * ry.norm()))

    gen = torch.Generator().manual_seed(0)
    for n in (2, 5, 64):
        x, y = torch.randn(n, generator=gen), torch.rand(n, generator=gen)
        assert math.isclose(_spearman(x, y), argsort_spearman(x, y), abs_tol=1e-6)
    ties = torch.tensor([0.1, 0.1, 0.5, 0.9])  # tied scores share their average rank now
    ranked = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert math.isclose(_spearman(ties, ranked), 4.5 / math.sqrt(4.5 * 5.0), rel_tol=1e-9)
    assert _spearman(torch.ones(4), torch.rand(4)) == 0.0  # undefined: constant scores
    assert _spearman(torch.ones(1), torch.ones(1)) == 0.0


def test_training_logs_diagnostics_every_n_steps_and_keeps_the_same_weights(tmp_path):
    pairs = make_pairs()
    runs = {}
    for every in (0, 3):
        cfg = tiny_config(steps=6, dropout=0.0, save_every=0, diagnose_every=every)
        run = tmp_path / f"d{every}"
        train_student(
            cfg, run, cache=make_cache(tmp_path / f"c{every}", pairs), train_pairs=pairs,
            student=tiny_student(cfg), progress=False,
        )  # fmt: skip
        runs[every] = [
            json.loads(x) for x in (run / "logs" / "train.jsonl").read_text().splitlines()
        ]
    diag = [r for r in runs[3] if "grad/gen_B" in r]
    assert [r["step"] for r in diag] == [1, 4, 6]  # steps 0, 3 and the last (1-based in logs)
    for key in ("grad/contrast_A", "rep/mean_cos", "rep/eff_rank", "collapse/contrast",
                "collapse/gen", "gen/margin_gap"):  # fmt: skip
        assert key in diag[0], key
    assert not any("grad/gen_B" in r for r in runs[0])
    # diagnostics only read: the losses are those of the run without them
    assert [r["loss"] for r in runs[0]] == [r["loss"] for r in runs[3]]
