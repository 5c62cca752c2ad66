"""benchmarks/tap_parts.py: each tapped module's part of a concat A-tap, scored alone."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import benchmark_script


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _fake(monkeypatch, n: int = 200, widths=(4, 6)) -> None:
    """Part 0 matches the label (a positive pair's texts share a direction); part 1 is noise."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    pairs = [SimpleNamespace(text_a=f"a{i}", text_b=f"b{i}", label=int(y))
             for i, y in enumerate(labels)]  # fmt: skip
    vec: dict[str, np.ndarray] = {}
    for p in pairs:
        a0 = _unit(rng.normal(size=widths[0]))
        b0 = a0 if p.label else _unit(rng.normal(size=widths[0]))
        for text, first in ((p.text_a, a0), (p.text_b, b0)):
            vec[text] = np.concatenate([first, _unit(rng.normal(size=widths[1]))]) / np.sqrt(2)

    layers = [SimpleNamespace(width=w) for w in widths]
    tap = SimpleNamespace(names=["low.q_proj", "top.q_proj"], layers=layers, adapter="default")
    matcher = SimpleNamespace(
        student=SimpleNamespace(tap=tap),
        encode=lambda texts: np.stack([vec[t] for t in texts]).astype(np.float32),
    )
    cfg = SimpleNamespace(
        data=SimpleNamespace(benchmark="atec"),
        student=SimpleNamespace(tap=SimpleNamespace(combine="concat", pool="mean")),
    )
    monkeypatch.setattr("flipkd.config.load_config", lambda path: cfg)
    monkeypatch.setattr("flipkd.recipes.pipeline.load_splits", lambda c, s: {"dev": pairs})
    monkeypatch.setattr("flipkd.export.load.load_matcher", lambda run, **kw: matcher)
    monkeypatch.setattr(
        "flipkd.student.lora.lora_a",
        lambda layer, adapter: SimpleNamespace(out_features=layer.width),
    )
    monkeypatch.setattr(
        "flipkd.teacher.scoring.score_pairs",
        lambda run, ps, benchmark: [p.label + 0.1 * i / n for i, p in enumerate(ps)],
    )


def test_split_parts_are_unit_norm_and_refuse_a_wrong_width():
    mod = benchmark_script("tap_parts")
    reps = np.arange(1, 11, dtype=float).reshape(2, 5)
    low, top = mod.split_parts(reps, [2, 3])
    assert low.shape == (2, 2) and top.shape == (2, 3)
    assert np.allclose(np.linalg.norm(low, axis=1), 1) and np.allclose(low[0], _unit(reps[0, :2]))
    with pytest.raises(ValueError, match="not the sum"):
        mod.split_parts(reps, [2, 2])


def test_the_label_carrying_part_scores_high_and_the_noise_part_at_chance(tmp_path, monkeypatch):
    mod = benchmark_script("tap_parts")
    _fake(monkeypatch)
    for name in ("student", "teacher"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    out = tmp_path / "parts"
    mod.main([str(tmp_path / "student"), "--teacher", str(tmp_path / "teacher"),
              "--pairs", "150", "--out", str(out)])  # fmt: skip
    (row,) = json.loads(out.with_suffix(".json").read_text())["runs"]
    low, top, whole = row["parts"]
    assert row["pairs"] == 150 and [low["dims"], top["dims"], whole["dims"]] == [4, 6, 10]
    assert low["roc_auc"] == pytest.approx(1.0)
    assert abs(top["roc_auc"] - 0.5) < 0.15
    assert top["roc_auc"] < whole["roc_auc"] < low["roc_auc"]
    assert low["spearman_teacher"] > 70 and abs(top["spearman_teacher"]) < 20
    text = out.with_suffix(".md").read_text()
    assert "`low.q_proj` | 4 | 1.000 |" in text and "whole tap (served)" in text


def test_a_dev_sample_of_one_class_or_without_labels_is_named_not_a_traceback():
    mod = benchmark_script("tap_parts")
    one_class = [SimpleNamespace(label=0) for _ in range(5)]
    with pytest.raises(mod.ConfigError, match="all of one class.*raise --pairs"):
        mod.gold_labels(one_class, "runs/x")
    unlabelled = [SimpleNamespace(label=1), SimpleNamespace(label=None), SimpleNamespace(label=0)]
    with pytest.raises(mod.ConfigError, match="runs/x: 1 of the first 3 dev pairs have no label"):
        mod.gold_labels(unlabelled, "runs/x")
    both = [SimpleNamespace(label=1), SimpleNamespace(label=0)]
    assert mod.gold_labels(both, "runs/x").tolist() == [1.0, 0.0]
