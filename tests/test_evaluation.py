"""Metrics match scikit-learn/scipy; threshold search agrees with a brute-force scan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from flipkd.errors import FlipkdError
from flipkd.evaluation import (
    PairEvaluator,
    best_threshold,
    bootstrap_ci,
    evaluate_run,
    graded_metrics,
    metrics_table,
    pair_metrics,
    register_run_kind,
)


def _random_case(seed: int, n: int = 200, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 0.8, 1.0)
    if ties:
        scores = np.round(scores, 1)
    return scores, labels


def _brute_force(scores: np.ndarray, labels: np.ndarray, metric: str) -> float:
    fn = {"f1": lambda y, p: skm.f1_score(y, p, zero_division=0), "accuracy": skm.accuracy_score}
    candidates = list(np.unique(scores)) + [np.inf]
    return max(fn[metric](labels, (scores >= t).astype(int)) for t in candidates)


def test_pair_metrics_match_sklearn_on_random_arrays() -> None:
    for seed in range(5):
        scores, labels = _random_case(seed)
        thr = float(np.median(scores))
        pred = (scores >= thr).astype(int)
        got = pair_metrics(scores, labels, thr)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
        assert got["f1"] == pytest.approx(skm.f1_score(labels, pred))
        assert got["precision"] == pytest.approx(skm.precision_score(labels, pred))
        assert got["recall"] == pytest.approx(skm.recall_score(labels, pred))
        assert got["ap"] == pytest.approx(skm.average_precision_score(labels, scores))
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
        assert got["spearman"] == pytest.approx(100 * stats.spearmanr(scores, labels).statistic)
        assert got["n"] == 200 and got["positives"] == int(labels.sum())


def test_pair_metrics_hand_made_case() -> None:
    # Scores 0.9 0.8 0.3 0.2 / labels 1 0 1 0, threshold 0.5 → TP=1 FP=1 FN=1 TN=1.
    got = pair_metrics([0.9, 0.8, 0.3, 0.2], [1, 0, 1, 0], 0.5)
    assert got["accuracy"] == 0.5
    assert got["precision"] == 0.5 and got["recall"] == 0.5 and got["f1"] == 0.5
    # Ranking: positives at ranks 1 and 3 → AP = (1/1 + 2/3) / 2; AUC = 3 of 4 pairs ordered.
    assert got["ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert got["roc_auc"] == pytest.approx(0.75)


def test_undefined_metrics_are_nan_not_errors() -> None:
    got = pair_metrics([0.1, 0.2, 0.3], [1, 1, 1], 0.15)
    assert math.isnan(got["roc_auc"])
    assert got["recall"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="0/1"):
        pair_metrics([0.1, 0.2], [0, 2], 0.5)


@pytest.mark.parametrize("metric", ["f1", "accuracy"])
@pytest.mark.parametrize("ties", [False, True])
def test_threshold_search_agrees_with_brute_force(metric: str, ties: bool) -> None:
    for seed in range(6):
        scores, labels = _random_case(seed, n=120, ties=ties)
        thr = best_threshold(scores, labels, metric)
        assert pair_metrics(scores, labels, thr)[metric] == pytest.approx(
            _brute_force(scores, labels, metric)
        )


def test_best_threshold_hand_made_and_errors() -> None:
    # Perfectly separable: any threshold in (0.4, 0.6] is perfect; ties go to the highest.
    assert best_threshold([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1], "accuracy") == 0.6
    assert best_threshold([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1], "f1") == 0.6
    with pytest.raises(ValueError, match="both"):
        best_threshold([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="unknown"):
        best_threshold([0.1, 0.2], [0, 1], "mcc")  # type: ignore[arg-type]


def test_graded_metrics_are_scipy_times_100() -> None:
    rng = np.random.default_rng(3)
    gold = rng.uniform(0, 5, 50)
    scores = gold + rng.normal(0, 1, 50)
    got = graded_metrics(scores, gold)
    assert got["spearman"] == pytest.approx(100 * stats.spearmanr(scores, gold).statistic)
    assert got["pearson"] == pytest.approx(100 * stats.pearsonr(scores, gold).statistic)


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_data() -> None:
    auc = skm.roc_auc_score
    small = _random_case(0, n=100)
    large = _random_case(0, n=1600)
    lo_s, hi_s = bootstrap_ci(*small, lambda s, y: auc(y, s), n=300, seed=0)
    lo_l, hi_l = bootstrap_ci(*large, lambda s, y: auc(y, s), n=300, seed=0)
    assert lo_s < auc(small[1], small[0]) < hi_s
    assert lo_l < auc(large[1], large[0]) < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2
    assert bootstrap_ci(*small, lambda s, y: auc(y, s), n=300, seed=0) == (lo_s, hi_s)


def test_pair_evaluator_uses_the_dev_threshold() -> None:
    dev_s, dev_y = _random_case(1)
    test_s, test_y = _random_case(2)
    ev = PairEvaluator(dev_s, dev_y, metric="accuracy", name="dev", ci=200)
    out = ev(test_s, test_y)
    assert ev.primary_metric == "dev_accuracy"
    thr = best_threshold(dev_s, dev_y, "accuracy")
    assert out["dev_threshold"] == thr
    assert out["dev_accuracy"] == pytest.approx(skm.accuracy_score(test_y, test_s >= thr))
    assert out["dev_accuracy_ci_low"] < out["dev_accuracy"] < out["dev_accuracy_ci_high"]


def test_metrics_table_formats() -> None:
    table = metrics_table({"a": {"f1": 0.5, "spearman": 51.234, "n": 3}})
    assert "| a | 0.5000 | 51.23 | 3 |" in table


class _Pair:
    def __init__(self, a: str, b: str, label: int) -> None:
        self.text_a, self.text_b, self.label = a, b, label


def test_evaluate_run_dispatches_by_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores, labels = _random_case(4, n=60)
    pairs = {
        split: [_Pair(f"{split}{i}", "x", int(y)) for i, y in enumerate(labels)]
        for split in ("dev", "test")
    }
    lookup = {p.text_a: s for split in pairs for p, s in zip(pairs[split], scores, strict=True)}
    import flipkd.data

    monkeypatch.setattr(flipkd.data, "load_split", lambda b, s, **kw: pairs[s], raising=False)
    register_run_kind(
        "fake", lambda run, ps, *, benchmark: np.array([lookup[p.text_a] for p in ps])
    )
    (tmp_path / "run.json").write_text(json.dumps({"kind": "fake"}))
    out = evaluate_run(tmp_path, "bench", "test")
    assert out["metrics"]["f1"] == pytest.approx(_brute_force(scores, labels, "f1"))
    (tmp_path / "run.json").write_text(json.dumps({"kind": "nope"}))
    with pytest.raises(FlipkdError, match="known kinds"):
        evaluate_run(tmp_path, "bench", "test")


@pytest.mark.parametrize("name", ["accuracy", "f1", "roc_auc", "ap", "spearman", "precision"])
@pytest.mark.parametrize("n", [6, 120])
def test_resampled_metrics_equal_one_call_per_resample(name, n) -> None:
    """The all-at-once bootstrap metrics equal sklearn/scipy per resample, ties and one-class
    resamples (n=6) included; ``precision`` takes the per-resample fallback."""
    from flipkd.evaluation import pair_metric, resampled_pair_metric

    scores, labels = _random_case(3, n=n, ties=True)
    index = np.random.default_rng(4).integers(0, n, (300, n))
    got = resampled_pair_metric(name, 0.3, scores, labels, index)
    fn = pair_metric(name, 0.3)
    expected = np.array([fn(scores[i], labels[i]) for i in index])
    assert got.shape == (300,)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    if n == 6 and name in {"roc_auc", "spearman"}:
        assert np.isnan(got).any()  # some resamples hold one class: undefined, as in sklearn


def test_the_mix_mode_scores_each_split_in_both_modes_on_dev_scales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    gen = 1 / (1 + np.exp(-(labels + rng.normal(0, 1.2, 300))))  # two noisy views of the label
    rep = 0.4 * labels + rng.normal(0, 0.3, 300)
    pairs = {
        split: [_Pair(f"{split}{i}", "x", int(y)) for i, y in enumerate(labels[part])]
        for split, part in (("dev", slice(0, 150)), ("test", slice(150, 300)))
    }
    index = {p.text_a: i for split in ("dev", "test") for i, p in enumerate(pairs[split])}
    offset = {"dev": 0, "test": 150}
    calls: list[str] = []

    def student(run, ps, *, benchmark, mode=None):
        calls.append(mode)
        rows = [offset[p.text_a.rstrip("0123456789")] + index[p.text_a] for p in ps]
        return (gen if mode == "gen" else rep)[rows]

    import flipkd.data

    monkeypatch.setattr(flipkd.data, "load_split", lambda b, s, **kw: pairs[s], raising=False)
    register_run_kind("fake-student", student)
    (tmp_path / "run.json").write_text(json.dumps({"kind": "fake-student"}))
    by = {m: evaluate_run(tmp_path, "bench", "test", mode=m)["metrics"] for m in ("gen", "rep")}
    calls.clear()
    out = evaluate_run(tmp_path, "bench", "test", mode="mix")
    assert sorted(calls) == ["gen", "gen", "rep", "rep"] and out["mix_weight"] == 0.5
    # the dev scales, for an export to serve the mode with (flipkd.json's "mix")
    logits = np.log(gen[:150]) - np.log1p(-gen[:150])
    assert out["mix_scales"]["label_mean"] == pytest.approx(logits.mean())
    assert out["mix_scales"]["cosine_std"] == pytest.approx(rep[:150].std())
    mix = out["metrics"]["roc_auc"]
    assert mix > max(by["gen"]["roc_auc"], by["rep"]["roc_auc"])
    # w = 1 is the label, w = 0 orders by the cosine
    one = evaluate_run(tmp_path, "bench", "test", mode="mix", mix_weight=1.0)["metrics"]
    zero = evaluate_run(tmp_path, "bench", "test", mode="mix", mix_weight=0.0)["metrics"]
    assert one["roc_auc"] == pytest.approx(by["gen"]["roc_auc"])
    assert zero["roc_auc"] == pytest.approx(by["rep"]["roc_auc"])
    # a teacher has one score: its mix is that score
    register_run_kind("fake-teacher", lambda run, ps, *, benchmark, mode=None: student(
        run, ps, benchmark=benchmark, mode="rep"))  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps({"kind": "fake-teacher"}))
    teacher = evaluate_run(tmp_path, "bench", "test", mode="mix")
    assert teacher["metrics"]["roc_auc"] == pytest.approx(by["rep"]["roc_auc"])
    assert "mix_scales" not in teacher
    # the command line names the modes on a wrong one
    import sys

    from flipkd.cli import main as cli_main

    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["flipkd.cli.eval_cmd"])
    monkeypatch.setattr(sys, "argv", ["flipkd", "eval", str(tmp_path), "--benchmark", "b",
                                      "--mode", "both"])  # fmt: skip
    with pytest.raises(SystemExit) as code:
        cli_main.run()
    assert code.value.code == 2 and "--mode must be one of gen, rep, mix" in capsys.readouterr().err
