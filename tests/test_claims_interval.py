"""The claims table's seed-paired interval of a difference, and fip ÷ teacher."""

from __future__ import annotations

import numpy as np
import pytest
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


def _mixed_run(row: str, seed: int, y: np.ndarray, gen: np.ndarray, mix: np.ndarray) -> dict:
    metrics = {"roc_auc": float(roc_auc_score(y, gen)), "threshold": 0.5,
               "mix_roc_auc": float(roc_auc_score(y, mix)), "mix_threshold": 0.5}  # fmt: skip
    split = {"labels": y.tolist(), "gen": gen.tolist(), "rep": gen.tolist(), "mix": mix.tolist()}
    return {"row": row, "seed": seed, "metrics": metrics, "train_seconds": 1.0,
            "scores": {"test": split, "dev": split}}  # fmt: skip


def test_cross_mode_claim_scores_each_row_in_its_own_mode():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    runs = []
    for seed in range(3):
        noise = lambda: rng.normal(0, 1, 400)  # noqa: E731
        # fip: a weak label, a strong mix; sft: a middling label, a useless mix
        runs.append(_mixed_run("fip", seed, y, y * 0.2 + noise(), y * 2.0 + noise()))
        runs.append(_mixed_run("sft", seed, y, y * 1.0 + noise(), noise()))
    rows = aggregate_rows(runs, ["sft", "fip"], 200)
    claims = {(c["claim"], c["mode"]): c for c in check_claims(rows, runs, 200)}
    cross = claims[("fip's mix > sft's label", "mix vs gen")]
    fip_mix = np.mean([r["metrics"]["mix_roc_auc"] for r in runs if r["row"] == "fip"])
    sft_gen = np.mean([r["metrics"]["roc_auc"] for r in runs if r["row"] == "sft"])
    assert cross["metric"] == "roc_auc" and cross["verdict"] == "held"
    assert cross["values"] == {"fip (mix)": fip_mix, "sft (gen)": sft_gen}
    assert cross["mean_difference"] == pytest.approx(fip_mix - sft_gen)
    low, high = cross["difference_ci"]
    assert 0 < low < cross["mean_difference"] < high
    # the same rows in one mode each: fip's label loses, its mix wins by more than across
    assert claims[("fip > sft", "gen")]["verdict"] == "not held"
    assert claims[("fip > sft", "mix")]["mean_difference"] > cross["mean_difference"]
    assert claims[("fip > sft", "gen")]["difference_ci"][1] < 0
    text = claims_markdown(list(claims.values()))
    assert "| fip's mix > sft's label | mix vs gen (roc_auc) | fip (mix) " in text
    # rows without a mix metric (reports from before the mode) give no mix claim at all
    no_mix = [{**r, "metrics": {"roc_auc": r["metrics"]["roc_auc"], "threshold": 0.5}}
              for r in runs]  # fmt: skip
    modes = {c["mode"] for c in check_claims(aggregate_rows(no_mix, ["sft", "fip"], 0))}
    assert modes == {"gen"}
