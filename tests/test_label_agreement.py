"""benchmarks/label_agreement.py: does a label rank pairs as the teacher does, and where not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import benchmark_script
from flipkd.errors import ConfigError


def _script():
    return benchmark_script("label_agreement")


def _ladder(tmp_path: Path) -> Path:
    """Two seeds. The teacher's cosine is a noisy copy of the truth; `fip`'s label follows the
    teacher (a noisy copy of its cosine), `sft`'s is an independent noisy copy of the truth."""
    rng = np.random.default_rng(0)
    work = tmp_path / "work"
    for seed in (0, 1):
        y = rng.integers(0, 2, 600)
        teacher = 2 * y + rng.normal(0, 1.0, y.size)
        gens = {
            "sft": 2 * y + rng.normal(0, 1.0, y.size),
            "fip": teacher + rng.normal(0, 0.3, y.size),
        }
        rows = {"teacher": (teacher, teacher)}
        rows.update({r: (1 / (1 + np.exp(-g)), rng.normal(0, 1, y.size)) for r, g in gens.items()})
        for row, (gen, rep) in rows.items():
            split = {"labels": y.tolist(), "gen": gen.tolist(), "rep": rep.tolist()}
            folder = work / "runs" / f"{row}-s{seed}"
            folder.mkdir(parents=True)
            result = {"row": row, "seed": seed, "scores": {"dev": split, "test": split}}
            (folder / "result.json").write_text(json.dumps(result))
    return work


def test_shares_average_to_the_roc_auc_and_thirds_are_even():
    mod = _script()
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 301)
    score = np.round(rng.normal(0, 1, y.size) + y, 1)  # ties across the classes
    pos, neg = mod.ranked_share(score, y)
    assert pos.mean() == pytest.approx(roc_auc_score(y, score))
    assert neg.mean() == pytest.approx(roc_auc_score(y, score))
    counts = np.bincount(mod.thirds(rng.normal(0, 1, 300)))
    assert counts.tolist() == [100, 100, 100]


def test_a_label_that_follows_the_teacher_agrees_with_it_and_gains_where_it_is_right(tmp_path):
    mod = _script()
    out = tmp_path / "agreement"
    report = mod.run(mod.parse_args([str(_ladder(tmp_path)), "--split", "test", "--out", str(out)]))
    runs = {(r["row"], r["seed"]): r for r in report["runs"]}
    assert set(runs) == {("sft", 0), ("sft", 1), ("fip", 0), ("fip", 1)}  # teacher: the reference
    for seed in (0, 1):
        fip, sft = runs[("fip", seed)], runs[("sft", seed)]
        assert fip["rho_gen_teacher"] > 0.8 > sft["rho_gen_teacher"]
        assert "by_teacher_third" not in sft and 0 < fip["rho_gen_baseline_gen"] < 0.8
        pos = fip["by_teacher_third"]["positives"]
        neg = fip["by_teacher_third"]["negatives"]
        # following the teacher pays where it is right, costs where it is wrong
        assert pos["high"]["difference"] > 0 > pos["low"]["difference"]
        assert neg["low"]["difference"] > 0 > neg["high"]["difference"]
        assert sum(t["pairs"] for t in pos.values()) == fip["pairs"] - sum(
            t["pairs"] for t in neg.values()
        )
    text = mod.markdown(report)
    assert "| fip | positives |" in text and "ρ(gen, `sft` gen)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--variant", "v"], "for a sweep's results.json"),
        (["--baseline-variant", "v"], "for a sweep's results.json"),
        (["--teacher", "zero=run"], "expected SEED=RUN_DIR"),
    ],
)
def test_options_that_do_not_fit_the_input_are_one_line_errors(tmp_path, argv, message):
    mod = _script()
    work = _ladder(tmp_path)
    with pytest.raises(ConfigError, match=message):
        mod.parse_args([str(work), *argv, "--out", str(tmp_path / "o")])
    sweep = tmp_path / "results.json"
    sweep.write_text(json.dumps({"runs": []}))
    with pytest.raises(ConfigError, match="a sweep needs --variant and --teacher"):
        mod.parse_args([str(sweep), "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="no 'nope' row to compare with"):
        mod.run(mod.parse_args([str(work), "--baseline", "nope", "--out", str(tmp_path / "o")]))
    with pytest.raises(ConfigError, match="no runs/\\*/result.json"):
        mod.run(mod.parse_args([str(tmp_path), "--out", str(tmp_path / "o")]))


def test_a_sweep_variant_without_the_baseline_row_takes_it_from_another(tmp_path, monkeypatch):
    """A sweep variant that trains only fip (variant_rows) is compared with the plain
    variant's sft, named by --baseline-variant; without it, the error says so."""
    mod = _script()
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    teacher = 2 * y + rng.normal(0, 1.0, y.size)
    gens = {("plain", "sft"): 2 * y + rng.normal(0, 1.0, y.size),
            ("plain", "fip"): 2 * y + rng.normal(0, 1.0, y.size),
            ("rank", "fip"): teacher + rng.normal(0, 0.3, y.size)}  # fmt: skip
    runs = [
        {"variant": v, "row": row, "seed": 0, "run_dir": str(tmp_path / v / row),
         "scores": {"dev": {"labels": y.tolist(), "gen": (1 / (1 + np.exp(-g))).tolist(),
                            "rep": rng.normal(0, 1, y.size).tolist()}}}
        for (v, row), g in gens.items()
    ]  # fmt: skip
    sweep = tmp_path / "results.json"
    sweep.write_text(json.dumps({"runs": runs}))
    monkeypatch.setattr(mod, "_teacher_cosines", lambda run_dir, teacher_run, labels: teacher)
    argv = [str(sweep), "--variant", "rank", "--teacher", "0=t", "--out", str(tmp_path / "o")]
    with pytest.raises(ConfigError, match=r"no 'sft' row .*--baseline-variant names a variant"):
        mod.run(mod.parse_args(argv))
    report = mod.run(mod.parse_args([*argv, "--baseline-variant", "plain"]))
    assert [(r["row"], r["seed"]) for r in report["runs"]] == [("sft", 0), ("fip", 0)]
    fip = report["runs"][1]
    assert fip["rho_gen_teacher"] > 0.8 and "by_teacher_third" in fip
    assert "--baseline-variant plain" in report["command"]
    assert "(`sft` from variant `plain`)" in mod.markdown(report)
