"""The claims table's seed-paired interval of a difference, and fip ÷ teacher."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from flipkd.reproduce.aggregate import aggregate_rows, paired_difference_interval
from flipkd.reproduce.claims import check_claims, claims_markdown, teacher_ratios


def _run(row: str, seed: int, y: np.ndarray, scores: np.ndarray) -> dict:
    auc = float(roc_auc_score(y, scores))
    metrics = {"roc_auc": auc, "threshold": 0.5, "rep_roc_auc": auc, "rep_threshold": 0.5,
               "spearman": 10.0, "rep_spearman": 10.0}  # fmt: skip
    split = {"labels": y.tolist(), "gen": scores.tolist(), "rep": scores.tolist()}
    return {"row": row, "seed": seed, "metrics": metrics, "train_seconds": 1.0,
            "scores": {"test": split, "dev": split}}  # fmt: skip


def _ladder(gap: float) -> list[dict]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    runs = []
    for seed in range(3):
        runs.append(_run("sft", seed, y, y * 0.5 + rng.normal(0, 1, 300)))
        runs.append(_run("fip", seed, y, y * (0.5 + gap) + rng.normal(0, 1, 300)))
        runs.append(_run("teacher", seed, y, y * 3.0 + rng.normal(0, 1, 300)))
    return runs


def test_paired_interval_is_above_zero_for_a_real_gain_and_spans_it_for_none():
    runs = _ladder(gap=1.0)
    fip = [r for r in runs if r["row"] == "fip"]
    sft = [r for r in runs if r["row"] == "sft"]
    low, high = paired_difference_interval(fip, sft, "gen", "roc_auc", 400)
    point = np.mean(
        [a["metrics"]["roc_auc"] - b["metrics"]["roc_auc"] for a, b in zip(fip, sft, strict=True)]
    )
    assert 0 < low < point < high
    same = paired_difference_interval(sft, sft, "gen", "roc_auc", 400)
    assert same == (0.0, 0.0)
    runs = _ladder(gap=0.0)
    fip = [r for r in runs if r["row"] == "fip"]
    sft = [r for r in runs if r["row"] == "sft"]
    low, high = paired_difference_interval(fip, sft, "gen", "roc_auc", 400)
    assert low < 0 < high  # the same signal, only the noise draws differ


def test_claims_carry_the_interval_and_the_teacher_ratio():
    runs = _ladder(gap=1.0)
    rows = aggregate_rows(runs, ["teacher", "sft", "fip"], 200)
    claims = check_claims(rows, runs, 200)
    fip_sft = next(c for c in claims if c["claim"] == "fip > sft" and c["mode"] == "gen")
    assert fip_sft["difference_ci"][0] > 0
    assert "(above 0)" in claims_markdown(claims)
    assert "difference_ci" not in check_claims(rows)[0]  # without runs: no interval
    one_seed = [r for r in runs if r["seed"] == 0]
    rows1 = aggregate_rows(one_seed, ["teacher", "sft", "fip"], 200)
    low, high = next(c for c in check_claims(rows1, one_seed, 200) if c["claim"] == "fip > sft")[
        "difference_ci"
    ]
    assert high - low > 0.01  # resampled 200 times, not once per seed
    ratios = teacher_ratios(rows)
    fip_auc = np.mean([r["metrics"]["roc_auc"] for r in runs if r["row"] == "fip"])
    teacher_auc = np.mean([r["metrics"]["roc_auc"] for r in runs if r["row"] == "teacher"])
    assert np.isclose(ratios["roc_auc"], fip_auc / teacher_auc) and ratios["roc_auc"] < 1
