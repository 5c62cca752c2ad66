"""The rules for a user's data file (issue 15): what a text is, what a label is, size limits,
encodings and file-system cases, in-process (the CLI corpus is ``test_cli_bad_inputs.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flipkd.data import load_benchmark, load_split
from flipkd.data.clean import MAX_FIELD_CHARS, SplitBuilder
from flipkd.data.splits import hash_unit
from flipkd.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"


def _rows(n: int = 60) -> list[dict]:
    return [
        {"text_a": f"question number {i // 2}", "text_b": f"another question {i}", "label": i % 2}
        for i in range(n)  # each text_a group has both labels: every split has both classes
    ]


def _jsonl(path: Path, rows: list[dict], bad: str | None = None, at: int = 1) -> Path:
    lines = [json.dumps(r) for r in rows]
    if bad is not None:
        lines.insert(at, bad)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_benchmark(str(path))
    return str(info.value)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ('{"x": 1}', "column 'text_b' holds an object ({'x': 1}), not a string"),
        ("12345", "column 'text_b' holds a number (12345), not a string"),
        ("1.5", "column 'text_b' holds a number (1.5)"),
        ("false", "column 'text_b' holds a boolean (false)"),
        ('["a"]', "column 'text_b' holds an array (['a'])"),
        ('"a\\udfffb"', "column 'text_b' holds a lone surrogate (\\udfff), which is not text"),
    ],
)
def test_a_text_must_be_a_string(tmp_path, cell, message):
    bad = f'{{"text_a": "a question", "text_b": {cell}, "label": 1}}'
    path = _jsonl(tmp_path / "p.jsonl", _rows(), bad, at=1)
    msg = _error(path)
    assert msg.startswith(f"{path}:2: ") and message in msg, msg


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("true", "label true in column 'label' is a boolean; write 0 or 1"),
        ("false", "label false in column 'label' is a boolean; write 0 or 1"),
        ("2", "label 2 in column 'label' is not 0 or 1"),
        ('"yes"', "label 'yes' in column 'label' is not 0 or 1"),
        ("1e400", "label inf in column 'label' is not 0 or 1"),
    ],
)
def test_a_label_is_0_or_1_never_a_boolean(tmp_path, cell, message):
    bad = f'{{"text_a": "a question", "text_b": "b", "label": {cell}}}'
    path = _jsonl(tmp_path / "p.jsonl", _rows(), bad, at=0)
    assert message in _error(path)
    assert _error(path).startswith(f"{path}:1: ")


def test_labels_written_as_numbers_or_numeric_strings_are_accepted(tmp_path):
    rows = _rows()
    for i, row in enumerate(rows):
        row["label"] = ["0", "1", 0.0, 1.0][i % 4]
    recs = load_split(str(_jsonl(tmp_path / "p.jsonl", rows)), "train")
    assert {r.label for r in recs} == {0, 1}


def test_built_in_data_counts_the_same_problems_instead_of_failing():
    b = SplitBuilder("pkg:x", "classification")
    b.add(1, {"n": 1}, "b", 1)
    b.add(2, "a", "b\ud800", 1)
    b.add(3, "a", "b", True)
    b.add(4, "a" * (MAX_FIELD_CHARS + 1), "b", 0)
    b.add(5, "a", "b", 1)
    assert b.stats.pairs == 1 and b.stats.rejected == 4
    assert b.stats.reasons == {
        "text_not_string": 1, "lone_surrogate": 1, "label_bool": 1, "text_too_long": 1,
    }  # fmt: skip


def test_long_fields_up_to_the_limit_are_read(tmp_path):
    """The csv module's default limit (131,072) is not ours: 200,000 characters load."""
    long_text = "word " * 40_000
    path = tmp_path / "p.csv"
    rows = [f"q{i},a{i},{i % 2}" for i in range(30)]
    rows[0] = f'"{long_text}",a0,0'
    path.write_text("text_a,text_b,label\n" + "\n".join(rows) + "\n")
    bench = load_benchmark(str(path))
    assert long_text in {r.text_a for recs in bench.splits.values() for r in recs}


def test_a_field_over_the_limit_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    rows = [f"q{i},a{i},{i % 2}" for i in range(30)]
    rows[3] = "q3," + "x" * (MAX_FIELD_CHARS + 5) + ",1"
    path.write_text("text_a,text_b,label\n" + "\n".join(rows) + "\n")
    assert _error(path) == (
        f"{path}:5: a field is longer than 1,000,000 characters (the limit per field)"
    )


def test_a_huge_header_cell_is_not_echoed_in_the_message(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x" * 200_000 + ",b\n1,2\n")
    msg = _error(path)
    assert "no text_a column" in msg and len(msg) < 400


def test_line_separators_inside_jsonl_texts_keep_line_numbers(tmp_path):
    rows = _rows()
    rows[2]["text_a"] = "first part\u2028second part\x85third"
    path = _jsonl(tmp_path / "p.jsonl", rows, '{"text_a": "x", "text_b": 5, "label": 1}', at=4)
    assert _error(path).startswith(f"{path}:5: column 'text_b' holds a number")
    path = _jsonl(tmp_path / "q.jsonl", rows)
    texts = {r.text_a for recs in load_benchmark(str(path)).splits.values() for r in recs}
    assert "first part\u2028second part" in " ".join(texts)


def test_duplicate_jsonl_keys_are_an_error(tmp_path):
    bad = '{"text_a": "a", "text_b": "b", "label": 1, "label": 0}'
    path = _jsonl(tmp_path / "p.jsonl", _rows(), bad, at=3)
    assert _error(path) == f"{path}:4: invalid JSONL row: key 'label' appears twice in one object"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_files_are_named(tmp_path, encoding):
    path = tmp_path / "p.csv"
    path.write_bytes((FIX / "pairs.csv").read_text().encode(encoding))
    assert _error(path) == (
        f"{path}: the file is {encoding.upper()} (it starts with a {encoding.upper()} "
        "byte-order mark); save it as UTF-8"
    )


def test_a_bom_of_one_file_is_counted_once_not_per_split(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (FIX / "pairs.csv").read_bytes())
    bench = load_benchmark(str(path))
    assert sum(st.cleaned.get("bom", 0) for st in bench.stats.values()) == 1


def test_a_directory_with_only_train_says_which_splits_exist(tmp_path):
    (tmp_path / "train.csv").write_bytes((FIX / "pairs.csv").read_bytes())
    (tmp_path / "test").mkdir()  # a folder named like a split is not a split file
    bench = load_benchmark(str(tmp_path))
    assert list(bench.splits) == ["train"]
    assert bench.info.source == "split files as given: train=train.csv; no dev or test file"
    with pytest.raises(DataError, match="has no split 'dev'; its splits are: train"):
        load_split(str(tmp_path), "dev")


def test_directory_and_unreadable_files_are_one_line_errors(tmp_path, monkeypatch):
    folder = tmp_path / "dir.csv"
    (folder / "sub").mkdir(parents=True)
    (folder / "train.csv").mkdir()  # a directory named like a split file
    assert _error(folder) == f"{folder / 'train.csv'}: is a directory, not a file"
    path = tmp_path / "p.csv"
    path.write_bytes((FIX / "pairs.csv").read_bytes())

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr("builtins.open", refuse)
    assert _error(path) == f"{path}: cannot read the file (Permission denied)"


def test_tiny_files(tmp_path):
    only_bom = tmp_path / "bom.jsonl"
    only_bom.write_bytes(b"\xef\xbb\xbf\n \n")
    assert _error(only_bom) == f"{only_bom}: file is empty"
    one = tmp_path / "one.jsonl"
    one.write_text('{"text_a": "a", "text_b": "b", "label": 1}')  # no newline at the end
    assert "split 'train' has only label 1 (1 pairs); every split needs both" in _error(one)


def test_split_hash_of_a_lone_surrogate_does_not_crash():
    assert 0 <= hash_unit("a\ud800b") < 1
    assert hash_unit("ab") == hash_unit("ab")
