"""The teacher probability at an even prior (``loss.rep_prior: balanced``).

On a set with few positives the calibrated P(match | cosine) carries the data's prior, so the
dual-threshold filter keeps almost no gold positive; the balanced probability takes that prior
out.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from flipkd.config import FlipkdConfig, config_hash
from flipkd.errors import CacheError
from flipkd.losses import dual_threshold_mask
from flipkd.teacher import fit_calibration
from flipkd.teacher.cache import TeacherCache
from flipkd.teacher.calibration import Calibration
from flipkd.trainer import train_student
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def _imbalanced(seed: int = 0, n: int = 4000, rate: float = 0.15):
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=n) < rate).astype(int)
    sims = np.where(labels == 1, rng.normal(0.80, 0.08, n), rng.normal(0.70, 0.08, n))
    return sims, labels


def test_balanced_probability_is_the_class_weighted_fit():
    sims, labels = _imbalanced()
    cal = fit_calibration(sims, labels)
    assert cal.pos_rate == pytest.approx(labels.mean())
    grid = torch.linspace(0.4, 1.0, 61, dtype=torch.float64)
    ref = LogisticRegression(C=1e4, max_iter=1000, class_weight="balanced")
    ref.fit(sims.reshape(-1, 1), labels)
    want = ref.predict_proba(grid.numpy().reshape(-1, 1))[:, 1]
    np.testing.assert_allclose(cal.apply(grid, "balanced").numpy(), want, atol=0.02)
    # exactly the data-prior map with its log-odds shifted by logit(pos_rate)
    shift = np.log(cal.pos_rate / (1 - cal.pos_rate))
    exact = 1 / (1 + np.exp(-(cal.coef * grid.numpy() + cal.intercept - shift)))
    np.testing.assert_allclose(cal.apply(grid, "balanced").numpy(), exact, atol=1e-9)
    assert torch.all(cal.apply(grid, "balanced") > cal.apply(grid))  # positives are rare


def test_the_filter_keeps_positives_only_at_the_balanced_prior():
    sims, labels = _imbalanced()
    cal = fit_calibration(sims, labels)
    cos = torch.as_tensor(sims[:64]).diag_embed() + 0.5 * (1 - torch.eye(64, dtype=torch.float64))
    y = torch.as_tensor(labels[:64])
    kept = {}
    for prior in ("data", "balanced"):
        stats = dual_threshold_mask(cal.apply(cos, prior), y, 0.6, 0.4).stats
        kept[prior] = stats["kept_pos"] / max(int(y.sum()), 1)
    assert kept["data"] < 0.2 and kept["balanced"] > 0.4


def test_priors_agree_on_an_even_set_and_edge_maps():
    sims, labels = _imbalanced(rate=0.5)
    cal = dataclasses.replace(fit_calibration(sims, labels), pos_rate=0.5)
    grid = torch.linspace(-1, 1, 21, dtype=torch.float64)
    torch.testing.assert_close(cal.apply(grid, "balanced"), cal.apply(grid))
    ident = Calibration("identity", n=0)
    torch.testing.assert_close(ident.apply(grid, "balanced"), ident.apply(grid))
    iso = Calibration("isotonic", x=[0.0, 0.5, 1.0], y=[0.0, 0.2, 1.0], pos_rate=0.2)
    got = iso.apply(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), "balanced")
    assert got[0] == 0.0 and got[2] == 1.0 and got[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="prior must be one of"):
        cal.apply(grid, "even")
    old = dataclasses.replace(cal, pos_rate=None)  # fitted before the rate was kept
    with pytest.raises(ValueError, match="rebuild the teacher cache"):
        old.apply(grid, "balanced")
    torch.testing.assert_close(old.apply(grid), cal.apply(grid))
    cache = TeacherCache(Path("c"), {"calibration": old.to_dict()}, ["x"], torch.ones(1, 2))
    with pytest.raises(CacheError, match="c: this calibration was fitted before"):
        cache.prob(grid, "balanced")


def test_option_is_hash_neutral_and_leaves_one_term_rows_alone():
    base = FlipkdConfig()
    data = FlipkdConfig.model_validate({"loss": {"rep_prior": "data"}})
    bal = FlipkdConfig.model_validate({"loss": {"rep_prior": "balanced"}})
    assert config_hash(data) == config_hash(base) != config_hash(bal)
    sft = {"contrastive": "none", "dist": "none"}
    assert config_hash(FlipkdConfig.model_validate({"loss": sft})) == config_hash(
        FlipkdConfig.model_validate({"loss": {**sft, "rep_prior": "balanced"}})
    )
    with pytest.raises(ValueError, match="rep_prior"):
        FlipkdConfig.model_validate({"loss": {"rep_prior": "even"}})


def _mask_log(tmp_path, name, prior, pairs, cache):
    cfg = tiny_config(steps=2, dropout=0.0, save_every=0)
    # this synthetic teacher is sure of itself: P of its positives is 0.73-0.86 at the
    # data's prior (22% positives) and 0.90-0.96 at an even one
    cfg.loss.rep_prior, cfg.loss.theta_pos, cfg.loss.theta_neg = prior, 0.9, 0.1
    run = tmp_path / name
    train_student(
        cfg, run, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
    )
    rows = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("kind") == "train"]


def test_training_reads_the_chosen_prior(tmp_path):
    # few positives: keep every 4th gold positive of the tiny pairs
    pairs = [p for i, p in enumerate(make_pairs(96)) if p.label == 0 or i % 4 == 0]
    cache = make_cache(tmp_path / "cache", pairs)
    assert 0 < cache.calibration.pos_rate < 0.3
    logs = {p: _mask_log(tmp_path, p, p, pairs, cache) for p in ("data", "balanced")}
    kept = {p: sum(r["mask/kept_pos"] for r in rows) for p, rows in logs.items()}
    dropped = {p: sum(r["mask/dropped_pos"] for r in rows) for p, rows in logs.items()}
    assert kept["data"] == 0 and kept["balanced"] > 0
    assert kept["balanced"] + dropped["balanced"] == kept["data"] + dropped["data"]


def test_filter_coverage_is_reported_and_warns_when_positives_vanish(tmp_path, caplog):
    from flipkd.trainer.diagnose import filter_coverage, filter_message
    from flipkd.trainer.step import build_losses

    pairs = [p for i, p in enumerate(make_pairs(96)) if p.label == 0 or i % 4 == 0]
    cache = make_cache(tmp_path / "cache", pairs)
    cfg = tiny_config()
    cfg.loss.theta_pos, cfg.loss.theta_neg = 0.9, 0.1
    cov = filter_coverage(build_losses(cfg.loss), pairs, cache)
    assert cov["kept_pos"] == 0 and cov["pos_rate"] == pytest.approx(16 / 73)
    text, few = filter_message(build_losses(cfg.loss), cov)
    assert few and "keeps 0% of the training pairs' gold positives" in text
    assert "loss.rep_prior=balanced" in text
    cfg.loss.rep_prior = "balanced"
    cov_bal = filter_coverage(build_losses(cfg.loss), pairs, cache)
    assert cov_bal["kept_pos"] == 1.0 and not filter_message(build_losses(cfg.loss), cov_bal)[1]
    cfg.loss.filter = False
    assert filter_coverage(build_losses(cfg.loss), pairs, cache) is None
    # a training run logs it and records it in its summary
    cfg = tiny_config(steps=1, dropout=0.0, save_every=0)
    cfg.loss.theta_pos, cfg.loss.theta_neg = 0.9, 0.1
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="flipkd.trainer.loop"):
        train_student(
            cfg, run, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
        )
    warned = [r for r in caplog.records if "dual-threshold filter" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelname == "WARNING"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["filter"]["kept_pos"] == 0
