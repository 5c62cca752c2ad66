"""The ablation ladder on the tiny profile: every row, resumable, table + results.json + plots."""

from __future__ import annotations

import json

import pytest

from flipkd.errors import ConfigError
from flipkd.reproduce import ROWS, run_ladder
from flipkd.reproduce import ladder as ladder_mod
from flipkd.reproduce.report import write_report
from flipkd.teacher import build_tiny_teacher
from tiny_run import make_pairs


def _write(path, pairs):
    with open(path, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps({"text_a": p.text_a, "text_b": p.text_b, "label": p.label}) + "\n")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    pairs = make_pairs(96)
    _write(root / "train.jsonl", pairs[:64])
    _write(root / "dev.jsonl", pairs[64:80])
    _write(root / "test.jsonl", pairs[80:])
    teacher = build_tiny_teacher(root / "teacher", [t for p in pairs for t in (p.text_a, p.text_b)])
    return root, teacher


def test_tiny_ladder_runs_every_row_and_resumes(bench, tiny_llama_dir, tmp_path, monkeypatch):
    root, teacher = bench
    overrides = [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"]
    out = tmp_path / "ladder"  # runs and report in one folder here
    results = run_ladder(
        str(root), "tiny", seeds=1, out_dir=out, overrides=overrides, progress=False
    )
    assert [r["row"] for r in results] == list(ROWS)
    doc = write_report(results, benchmark=str(root), profile="tiny", out_dir=out, seeds=1,
                       overrides=overrides, command=["flipkd", "reproduce"])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in saved["rows"]] == list(ROWS)
    f1 = saved["rows"][0]["metrics"]["f1"]
    assert {"mean", "ci_low", "ci_high", "seeds"} <= set(f1)
    assert f1["ci_low"] <= f1["mean"] <= f1["ci_high"]
    assert {"command", "git_commit", "versions"} <= set(saved)
    assert "| fip |" in (out / "table.md").read_text()
    assert len(doc["plots"]) == 3 and all((out / p).is_file() for p in doc["plots"])
    weak = next(r for r in saved["rows"] if r["name"] == "fip-weak-teacher")
    assert "teacher_metrics" in weak
    # a second call reads every finished run back instead of running it again
    monkeypatch.setattr(ladder_mod, "ROW_RUNNERS", {k: _explode for k in ladder_mod.ROW_RUNNERS})
    again = run_ladder(str(root), "tiny", seeds=1, out_dir=out, overrides=overrides, progress=False)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in results]
    assert all(r["read_back"] for r in again) and not any(r.get("read_back") for r in results)
    redone = write_report(again, benchmark=str(root), profile="tiny", out_dir=out, seeds=1,
                          overrides=overrides, wall_seconds=1.5)  # fmt: skip
    assert redone["timing"]["runs_read_back"] == len(ROWS)
    assert redone["timing"]["runs_computed"] == 0
    assert "runs read back" in (out / "table.md").read_text()
    sft = next(r for r in redone["rows"] if r["name"] == "sft")
    assert len(sft["train_seconds_seeds"]) == 1 and sft["train_seconds_seeds"][0] > 0
    assert set(sft["dev_metrics"]) >= {"roc_auc", "rep_roc_auc"}


def _explode(*args, **kwargs):
    raise AssertionError("a finished row ran again")


def test_unknown_profile_and_row_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile"):
        run_ladder("mqp", "huge", seeds=1, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="rows are"):
        run_ladder("mqp", "tiny", seeds=1, out_dir=tmp_path, rows=["nope"])
