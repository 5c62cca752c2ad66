"""``flipkd data list | show | export`` on fixture files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from flipkd.cli.data_cmd import register
from flipkd.data import load_split
from flipkd.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"
ROOT = Path(__file__).resolve().parents[1]


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def _invoke(*args: str):
    result = CliRunner().invoke(_app(), ["data", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_prints_one_row_per_benchmark():
    out = _invoke("list").splitlines()
    assert out[0].split()[:4] == ["name", "lang", "domain", "task"]
    assert [line.split()[0] for line in out[1:]] == [
        "atec", "bq", "lcqmc", "pawsx-zh", "stsb-zh", "stsb-en", "mqp",
    ]  # fmt: skip


def test_show_json_has_exactly_the_documented_shape():
    out = json.loads(_invoke("show", str(FIX / "pairs.csv"), "--json"))
    assert out == {
        "name": str(FIX / "pairs.csv"),
        "splits": {
            "train": {"pairs": 50, "positives": 25, "rejected": 0, "duplicates": 0},
            "dev": {"pairs": 8, "positives": 4, "rejected": 0, "duplicates": 0},
            "test": {"pairs": 2, "positives": 1, "rejected": 0, "duplicates": 0},
        },
    }


def test_show_table_with_column_flags_and_examples():
    out = _invoke(
        "show", str(FIX / "custom_cols.csv"), "--text-a", "query", "--text-b", "doc",
        "--label", "match", "--examples", "1",
    )  # fmt: skip
    lines = out.splitlines()
    assert any(line.split() == ["dev", "8", "4", "0", "0"] for line in lines)
    assert sum(line.startswith("  [") for line in lines) == 3


def test_export_jsonl_and_csv_round_trip(tmp_path):
    want = load_split(str(FIX / "pairs.csv"), "train")
    out_jsonl, out_csv = tmp_path / "train.jsonl", tmp_path / "train.csv"
    assert "wrote 50 pairs" in _invoke(
        "export", str(FIX / "pairs.csv"), "--split", "train", "--out", str(out_jsonl)
    )
    _invoke("export", str(FIX / "pairs.csv"), "--split", "train", "--out", str(out_csv))
    rows = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert rows == [{"text_a": r.text_a, "text_b": r.text_b, "label": r.label} for r in want]
    with open(out_csv, newline="") as fh:
        got = [(r["text_a"], r["text_b"], int(r["label"])) for r in csv.DictReader(fh)]
    assert got == [(r.text_a, r.text_b, r.label) for r in want]


def test_export_graded_writes_score(tmp_path):
    out = tmp_path / "g.jsonl"
    _invoke("export", str(FIX / "graded.csv"), "--split", "dev", "--out", str(out))
    first = json.loads(out.read_text().splitlines()[0])
    assert set(first) == {"text_a", "text_b", "score"}


def test_bad_user_file_exits_2_with_one_line_and_no_traceback():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    bad = FIX / "bad" / "bad_label.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "flipkd", "data", "show", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {bad}:3: label '2' in column 'label' is not 0 or 1 (scores: use --score)"
    ]


def test_export_thins_positives_to_a_share(tmp_path):
    want = load_split(str(FIX / "pairs.csv"), "train")  # 25 positives, 25 negatives
    out = tmp_path / "few.jsonl"
    text = _invoke(
        "export", str(FIX / "pairs.csv"), "--split", "train", "--out", str(out),
        "--positive-share", "0.2", "--seed", "3",
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "left out 19 positive pairs" in text and "wrote 31 pairs" in text
    assert sum(r["label"] for r in rows) == 6  # round(25 · 0.2 / 0.8)
    negatives = [(r.text_a, r.text_b) for r in want if r.label == 0]
    assert [(r["text_a"], r["text_b"]) for r in rows if r["label"] == 0] == negatives
    order = [(r.text_a, r.text_b) for r in want]
    got = [order.index((r["text_a"], r["text_b"])) for r in rows]
    assert got == sorted(got)  # file order kept
    again = tmp_path / "again.jsonl"
    _invoke(
        "export", str(FIX / "pairs.csv"), "--split", "train", "--out", str(again),
        "--positive-share", "0.2", "--seed", "3", "--max-pairs", "10",
    )  # fmt: skip
    assert len(again.read_text().splitlines()) == 10


def test_export_positive_share_out_of_reach_is_one_line(tmp_path):
    for share, msg in (("0.8", "positives are already 50.0%"), ("1.5", "strictly between")):
        result = CliRunner().invoke(
            _app(),
            ["data", "export", str(FIX / "pairs.csv"), "--split", "train",
             "--out", str(tmp_path / "x.jsonl"), "--positive-share", share],
        )  # fmt: skip
        assert result.exit_code != 0 and isinstance(result.exception, DataError)
        assert msg in str(result.exception) and "--positive-share" in str(result.exception)
