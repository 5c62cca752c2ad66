"""The bad-input corpus: every case in ``tests/bad_inputs/cli/cases.tsv`` through the CLI.

Each case must exit with code 2 and print exactly one line on stderr (``error: ...``) holding
the expected fragment, with no traceback and nothing on stdout; a ``train`` case must stop
before any work (no teacher, no checkpoint under its output folder). Cases marked ``gen:`` are
made here (a 5 MB line, a FIFO, a directory where a file belongs); the rest are files.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "bad_inputs" / "cli"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": str(ROOT / "src"),
    "OMP_NUM_THREADS": "1",
}
GOOD_ROW = {"text_a": "How do I reset my password?", "text_b": "Password reset steps", "label": 1}


def _long_text(path: Path) -> None:
    rows = [{**GOOD_ROW, "text_b": f"{GOOD_ROW['text_b']} {i}", "label": i % 2} for i in range(4)]
    rows.insert(2, {**GOOD_ROW, "text_a": "y" * 1_200_000})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


GENERATORS: dict[str, Callable[[Path], None]] = {
    "long_line.csv": lambda p: p.write_text("x" * 5_000_000),  # one 5 MB line, no newline
    "long_text.jsonl": _long_text,
    "fifo.csv": os.mkfifo,
    "fifo.yaml": os.mkfifo,
    "dir.yaml": Path.mkdir,
    "existing_file": lambda p: p.write_text("not a directory\n"),
    "split_entry_is_dir": lambda p: (p / "train.csv").mkdir(parents=True),
    "deeply_nested.yaml": lambda p: p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n"),
}


def _name_too_long(tmp: Path) -> Path:
    return tmp / ("a" * 300 + ".csv")  # longer than a file name may be (255 bytes)


def _cases() -> list[tuple[str, str, str]]:
    lines = (CORPUS / "cases.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line and not line.startswith("#")]


CASES = _cases()


def _case_file(case: str, tmp: Path) -> str:
    if case == "-":
        return ""
    if case == "gen:name_too_long":
        return str(_name_too_long(tmp))
    if case.startswith("gen:"):
        path = tmp / case.removeprefix("gen:")
        GENERATORS[path.name](path)
        return str(path)
    return str((CORPUS / case).relative_to(ROOT))


def _argv(args: str, file: str, tmp: Path, tiny: Path) -> list[str]:
    ok = f"output_dir={tmp}/runs student.model={tiny} teacher.model={tiny}"
    for key, value in {
        "{ok}": ok, "{file}": file, "{tmp}": str(tmp), "{tiny}": str(tiny),
        "{pairs}": "tests/fixtures/data/pairs.csv",
    }.items():  # fmt: skip
        args = args.replace(key, value)
    return shlex.split(args)


def test_every_corpus_file_is_a_case():
    named = {case.split("/")[0] for case, _, _ in CASES}
    files = {p.name for p in CORPUS.iterdir()} - {"cases.tsv", "ok.yaml", "only_train"}
    assert files <= named, f"corpus files without a case: {sorted(files - named)}"
    made = {*GENERATORS, "name_too_long"}
    assert all(not c.startswith("gen:") or c[4:] in made for c in named)


@pytest.mark.parametrize(
    ("case", "args", "expect"), CASES, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)]
)
def test_bad_input_gives_one_line_and_exit_2(case, args, expect, tmp_path, tiny_llama_dir):
    argv = _argv(args, _case_file(case, tmp_path), tmp_path, tiny_llama_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "flipkd", *argv],
        cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=180,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ") and expect in lines[0], lines[0]
    assert proc.stdout == ""
    started = [p for name in ("teacher", "checkpoints", "adapter") for p in tmp_path.rglob(name)]
    assert not started, f"work started before the error: {started}"
