"""benchmarks/sample_ratio.py: one row's Spearman against another's on smaller samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_script
from flipkd.errors import ConfigError


def _script():
    module = benchmark_script("sample_ratio")
    return module


def _run(tmp_path: Path, name: str, rep, labels) -> Path:
    run = tmp_path / name
    run.mkdir()
    test = {"labels": [int(x) for x in labels], "rep": [float(x) for x in rep]}
    test["gen"] = test["rep"]
    (run / "result.json").write_text(json.dumps({"scores": {"test": test}}))
    return run


def test_ratio_over_draws(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.25).astype(int)
    ref = labels + rng.normal(0, 0.8, 400)
    weak = labels + rng.normal(0, 2.0, 400)  # a weaker student: a lower Spearman
    bench = _script()
    args = ["--reference", str(_run(tmp_path, "t", ref, labels)), "--size", "50",
            "--draws", "200", "--out", str(tmp_path / "o")]  # fmt: skip
    same = bench.run(bench.parse_args([*args, "--student", str(_run(tmp_path, "s", ref, labels))]))
    assert same["whole"]["ratio"] == pytest.approx(1.0)
    assert same["percentiles"]["ratio"] == pytest.approx([1.0, 1.0, 1.0])
    low = bench.run(
        bench.parse_args(
            [*args, "--student", str(_run(tmp_path, "w", weak, labels)), "--observed", "1.0"]
        )  # fmt: skip
    )
    lo, mid, hi = low["percentiles"]["ratio"]
    assert lo < mid < hi and mid < 1.0 and low["whole"]["ratio"] < 1.0
    assert 0.0 <= low["share_at_or_above_observed"] < 0.5
    text = bench.markdown(low)
    assert "| ratio |" in text and "at or above 1.0" in text


def test_bad_inputs_are_one_line_errors(tmp_path):
    bench = _script()
    labels = [0, 1] * 20
    a = _run(tmp_path, "a", range(40), labels)
    b = _run(tmp_path, "b", range(40), labels[::-1])
    base = ["--reference", str(a), "--out", str(tmp_path / "o")]
    with pytest.raises(ConfigError, match="labels differ"):
        bench.run(bench.parse_args([*base, "--student", str(b), "--size", "10"]))
    with pytest.raises(ConfigError, match="--size 40"):
        bench.run(bench.parse_args([*base, "--student", str(a), "--size", "40"]))
    with pytest.raises(ConfigError, match="no such file"):
        bench.run(bench.parse_args([*base, "--student", str(tmp_path), "--size", "10"]))
