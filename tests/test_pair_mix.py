"""benchmarks/pair_mix.py: a sweep's dev pairs scored by the label mixed with the A-tap cosine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_script
from flipkd.errors import ConfigError


def _script():
    return benchmark_script("pair_mix")


def _sweep(tmp_path: Path) -> Path:
    """Two seeds; each scorer sees half the signal: sft's label a noisy copy of the truth, fip's
    label and cosine two independent noisy copies (so their mix beats either)."""
    rng = np.random.default_rng(0)
    runs = []

    def noisy(y: np.ndarray) -> np.ndarray:
        return 2 * y + rng.normal(0, 1.5, y.size)

    def label(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-x))

    for seed in (0, 1):
        y = rng.integers(0, 2, 1000)
        for row, gen, rep in (
            ("sft", label(noisy(y)), rng.normal(0, 1, y.size)),
            ("fip", label(noisy(y)), noisy(y)),
            ("teacher", noisy(y), None),
        ):
            dev = {"labels": y.tolist(), "gen": gen.tolist()}
            dev["rep"] = dev["gen"] if rep is None else rep.tolist()
            runs.append({"variant": "plain", "row": row, "seed": seed, "scores": {"dev": dev}})
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"runs": runs}))
    return path


def test_the_mix_is_the_label_at_1_the_cosine_at_0_and_beats_both_between(tmp_path: Path):
    mod = _script()
    file = _sweep(tmp_path)
    report = mod.run(
        mod.parse_args([str(file), "--resamples", "200", "--out", str(tmp_path / "m")])
    )
    assert {r["row"] for r in report["runs"]} == {"sft", "fip"}  # the teacher has no label
    sweep = {(r["row"], r["seed"]): r for r in json.loads(file.read_text())["runs"]}
    auc = mod.roc_auc
    for r in report["runs"]:
        dev = sweep[(r["row"], r["seed"])]["scores"]["dev"]
        y = np.array(dev["labels"])
        assert r["weights"]["1"]["roc_auc"] == pytest.approx(auc(np.array(dev["gen"]), y))
        assert r["weights"]["0"]["roc_auc"] == pytest.approx(auc(np.array(dev["rep"]), y))
        if r["row"] == "fip":
            mix = r["weights"]["0.5"]
            assert mix["roc_auc"] > max(r["weights"]["1"]["roc_auc"], r["weights"]["0"]["roc_auc"])
            # fip's label is as noisy as sft's: mixed in its cosine, it is clearly above it
            assert mix["baseline_gen"]["ci"][0] > 0
            gen = r["weights"]["1"]["baseline_gen"]
            assert gen["ci"][0] < gen["diff"] < gen["ci"][1]
    text = mod.markdown(report)
    assert "| plain | fip |" in text and "(2/2)" in text


def test_a_file_without_both_modes_is_a_one_line_error(tmp_path: Path):
    mod = _script()
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"runs": [{"row": "fip", "scores": {"dev": {"gen": [0.1]}}}]}))
    with pytest.raises(ConfigError, match="no run with dev scores in both modes"):
        mod.load_runs(bad)
    with pytest.raises(ConfigError, match="no such file"):
        mod.load_runs(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="weights must lie"):
        mod.parse_args([str(bad), "--weights", "1.5", "--out", str(tmp_path / "o")])


def test_a_ladder_folder_scores_test_pairs_on_dev_scales(tmp_path: Path):
    """A ladder's runs hold dev and test scores: the mix of a test pair takes its scales from
    dev, so scoring one test pair alone gives it the same score as among all of them."""
    mod = _script()
    runs = json.loads(_sweep(tmp_path).read_text())["runs"]
    work = tmp_path / "work"
    for i, r in enumerate(runs):
        dev = r["scores"]["dev"]
        test = {k: v[:300] for k, v in dev.items()}
        test["gen"] = [min(0.999, 1.5 * g) for g in test["gen"]]  # another scale than dev
        (work / "runs" / str(i)).mkdir(parents=True)
        result = {"row": r["row"], "seed": r["seed"], "scores": {"dev": dev, "test": test}}
        (work / "runs" / str(i) / "result.json").write_text(json.dumps(result))
    loaded = mod.load_runs(work, "test")
    assert {r["variant"] for r in loaded} == {"ladder"} and len(loaded) == 4
    fip = next(r for r in loaded if r["row"] == "fip")
    whole = mod.mixed(fip, 0.5)
    one = {**fip, "split": {k: v[:1] for k, v in fip["split"].items()}}
    assert mod.mixed(one, 0.5)[0] == pytest.approx(whole[0])
    args = ["--split", "test", "--resamples", "50", "--out", str(tmp_path / "t")]
    report = mod.run(mod.parse_args([str(work), *args]))
    assert report["split"] == "test" and "--split test" in report["command"]
    with pytest.raises(ConfigError, match="no run with test and dev scores"):
        mod.load_runs(_sweep(tmp_path), "test")  # a sweep scores dev only
