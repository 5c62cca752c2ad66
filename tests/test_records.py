"""Ladder records: seeds run in different places (sessions, machines) reported as one ladder."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from flipkd.errors import ConfigError
from flipkd.reproduce import ladder as ladder_mod
from flipkd.reproduce import run_ladder
from flipkd.reproduce.records import check_export_path, export_records, import_records
from flipkd.reproduce.report import _logged_runs, write_report
from tiny_run import write_benchmark

ROWS = ["teacher", "sft"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp("bench"), 96, 64, 16)


def _explode(*args, **kwargs):
    raise AssertionError("ran again: a finished run or a teacher no row needs")


def test_a_seed_run_elsewhere_joins_the_ladder_through_its_records(
    bench, tiny_llama_dir, tmp_path, monkeypatch, caplog
):
    root, teacher = bench
    kw = {
        "overrides": [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"],
        "progress": False, "rows": ROWS, "seeds": 2,
    }  # fmt: skip
    there, here = tmp_path / "there", tmp_path / "here"
    elsewhere = run_ladder(str(root), "tiny", out_dir=there, only_seeds=[1], **kw)
    records = tmp_path / "seed1.json.gz"
    assert export_records(elsewhere, there, records) == {"runs": 2, "teachers": 1}
    mine = run_ladder(str(root), "tiny", out_dir=here, only_seeds=[0], **kw)

    done = import_records([records], here)
    assert sorted(done.runs) == sorted(f"{r['row']}-s1-{r['config_hash']}" for r in elsewhere)
    assert len(done.teachers) == 1 and not done.present
    # the whole ladder now runs nothing: every row is finished, and a seed whose rows all
    # finished loads neither its data nor its teacher (seed 1's has no weights here)
    monkeypatch.setattr(ladder_mod, "ROW_RUNNERS", {k: _explode for k in ladder_mod.ROW_RUNNERS})
    monkeypatch.setattr("flipkd.recipes.pipeline.ensure_teacher", _explode)
    both = run_ladder(str(root), "tiny", out_dir=here, **kw)
    assert [(r["row"], r["seed"]) for r in both] == [
        ("teacher", 0), ("sft", 0), ("teacher", 1), ("sft", 1)
    ]  # fmt: skip
    assert [r["metrics"] for r in both] == [r["metrics"] for r in mine + elsewhere]
    doc = write_report(both, benchmark=str(root), profile="tiny", out_dir=here / "report",
                       seeds=2, overrides=kw["overrides"], work_dir=here)  # fmt: skip
    assert set(doc["teacher_runs"]) == {"0", "1"}
    assert doc["teacher_runs"]["1"]["kept"] == "zero-shot"
    assert "**Partial**" not in (here / "report" / "table.md").read_text()
    assert "plots/training_curves.png" in doc["plots"]  # seed 0's logs (seed 1's: records)
    for log_dir in (here / "runs").glob("*-s0-*/logs"):
        shutil.rmtree(log_dir)
    doc = write_report(both, benchmark=str(root), profile="tiny", out_dir=here / "report",
                       seeds=2, overrides=kw["overrides"], work_dir=here)  # fmt: skip
    assert "plots/training_curves.png" not in doc["plots"]  # no run has a log now,
    assert not (here / "report" / "plots" / "training_curves.png").exists()  # nor a stale plot
    # importing again changes nothing: what is there is kept
    again = import_records([records], here)
    assert not again.runs and not again.teachers and len(again.present) == 3
    monkeypatch.undo()

    # a zero-shot row of seed 1, not in the records, reads no teacher: none is trained
    monkeypatch.setattr("flipkd.recipes.pipeline.ensure_teacher", _explode)
    more = run_ladder(str(root), "tiny", out_dir=here, only_seeds=[1],
                      **{**kw, "rows": ["teacher", "sft", "zero-shot"]})  # fmt: skip
    assert [r.get("read_back", False) for r in more] == [True, True, False]
    assert (next((here / "teachers").glob("s1-*")) / "imported.json").is_file()
    monkeypatch.undo()
    # a row that reads the teacher needs it: trained again, said so
    with caplog.at_level(logging.WARNING, logger="flipkd.reproduce.ladder"):
        more = run_ladder(str(root), "tiny", out_dir=here, only_seeds=[1],
                          **{**kw, "rows": ["teacher", "sft", "fip"]})  # fmt: skip
    assert "imported as records, without weights; training it again for rows fip" in (caplog.text)
    assert [r.get("read_back", False) for r in more] == [True, True, False]
    teacher_dir = next((here / "teachers").glob("s1-*"))
    assert (teacher_dir / "run.json").is_file() and not (teacher_dir / "imported.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip", "not a gzipped ladder records file"),
        (gzip.compress(b"[1, 2]"), "format 'list'"),
        (gzip.compress(json.dumps({"format": "other"}).encode()), "format 'other'"),
        (gzip.compress(json.dumps({"format": "flipkd-ladder-records/1", "runs": [],
                                   "teachers": {}}).encode()), "field 'runs' is not a mapping"),
        (gzip.compress(json.dumps({"format": "flipkd-ladder-records/1", "teachers": {},
                                   "runs": {"../../etc-s0-ab": {"scores": {}}}}).encode()),
         "'../../etc-s0-ab' is not a run record"),
        (gzip.compress(json.dumps({"format": "flipkd-ladder-records/1", "teachers": {},
                                   "runs": {"sft-s0-ab": {"metrics": {}}}}).encode()),
         "'sft-s0-ab' has no field 'scores'"),
        (gzip.compress(json.dumps({"format": "flipkd-ladder-records/1", "runs": {},
                                   "teachers": {"s0-ab": {"model.bin": {}}}}).encode()),
         "holds files other than"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_records_is_named_and_nothing_is_written(tmp_path, content, message):
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as err:
        import_records([bad], tmp_path / "work")
    assert str(bad) in str(err.value)
    assert not (tmp_path / "work").exists()


def test_the_command_line_names_a_missing_records_file_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flipkd", "reproduce", "--profile", "tiny", "--work",
         str(tmp_path / "w"), "--import-records", str(tmp_path / "nope.json.gz")],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nope.json.gz: no such records file" in (
        out.stderr
    )
    assert "Traceback" not in out.stderr


def test_an_export_path_that_cannot_be_written_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="names a folder"):
        check_export_path(tmp_path)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_export_path(tmp_path / "a-file" / "records.json.gz")
    check_export_path(tmp_path / "new" / "deeper" / "records.json.gz")  # made when written
    assert not (tmp_path / "new").exists()


def test_the_command_line_refuses_a_folder_as_export_path_before_the_ladder(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flipkd", "reproduce", "--profile", "tiny", "--work",
         str(tmp_path / "w"), "--export-records", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "names a folder" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w").exists()  # nothing ran


def test_training_curves_come_from_the_lowest_seed_with_a_training_log(tmp_path):
    results = [{"row": row, "seed": seed, "config_hash": "ab"}
               for seed in (0, 1, 2) for row in ("teacher", "sft", "fip")]  # fmt: skip
    for name in ("sft-s1-ab", "sft-s2-ab", "fip-s0-ab", "teacher-s0-ab"):
        (tmp_path / "runs" / name / "logs").mkdir(parents=True)
        (tmp_path / "runs" / name / "logs" / "train.jsonl").write_text("")
    assert _logged_runs(results, tmp_path) == {
        "fip": tmp_path / "runs" / "fip-s0-ab",
        "sft (seed 1)": tmp_path / "runs" / "sft-s1-ab",
    }
