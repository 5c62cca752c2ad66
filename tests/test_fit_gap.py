"""benchmarks/fit_gap.py: the A-tap's agreement with its teacher on training pairs vs dev."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]


def _fake(monkeypatch, n_train: int = 300, n_dev: int = 200) -> None:
    """Splits of indexed pairs; the teacher's cosine is a noisy copy of the label; the student
    copies the teacher exactly on training pairs and is noise on dev."""
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, 2, n) for s, n in (("train", n_train), ("dev", n_dev))}
    teacher = {s: y + rng.normal(0, 0.5, y.size) for s, y in labels.items()}
    noise = rng.normal(0, 1, n_dev)

    def pair(split, i):
        return SimpleNamespace(split=split, i=i, label=int(labels[split][i]))

    def load_splits(cfg, splits):
        return {s: [pair(s, i) for i in range(len(labels[s]))] for s in splits}

    def student(run, pairs, benchmark, mode):
        assert mode == "rep" and benchmark == "atec"
        return [teacher["train"][p.i] if p.split == "train" else noise[p.i] for p in pairs]

    def teacher_scores(run, pairs, benchmark):
        return [teacher[p.split][p.i] for p in pairs]

    cfg = SimpleNamespace(
        data=SimpleNamespace(benchmark="atec", max_train_pairs=4000),
        train=SimpleNamespace(steps=300),
    )
    monkeypatch.setattr("flipkd.config.load_config", lambda path: cfg)
    monkeypatch.setattr("flipkd.recipes.pipeline.load_splits", load_splits)
    monkeypatch.setattr("flipkd.export.scoring.score_run_pairs", student)
    monkeypatch.setattr("flipkd.teacher.scoring.score_pairs", teacher_scores)


def _runs(tmp_path: Path) -> tuple[Path, Path]:
    for name in ("student", "teacher"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text("{}")
    return tmp_path / "student", tmp_path / "teacher"


def test_a_student_that_fits_only_its_training_pairs_shows_the_gap(tmp_path, monkeypatch):
    mod = benchmark_script("fit_gap")
    _fake(monkeypatch)
    student, teacher = _runs(tmp_path)
    out = tmp_path / "gap"
    mod.main([str(student), "--teacher", str(teacher), "--pairs", "150", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    (row,) = report["runs"]
    assert row["train"]["pairs"] == row["dev"]["pairs"] == 150  # the first --pairs of each
    assert row["train"]["rep_teacher"] == pytest.approx(1.0)
    assert abs(row["dev"]["rep_teacher"]) < 0.25
    assert row["train"]["teacher_label"] > 0.5 and row["dev"]["teacher_label"] > 0.5
    assert row["steps"] == 300 and row["train_max"] == 4000
    assert report["command"].startswith("python benchmarks/fit_gap.py ")
    text = out.with_suffix(".md").read_text()
    assert "| 300 | 4000 | 100.0 / " in text


def test_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    student, _ = _runs(tmp_path)
    args = [str(student), "--teacher", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fit_gap.py"), *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "nothing") in lines[0]
