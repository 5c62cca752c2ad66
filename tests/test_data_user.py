"""The user's own files: formats, column choice, splits, and one test per kind of bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flipkd.data import load_benchmark, load_split
from flipkd.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"
BAD = FIX / "bad"


@pytest.mark.parametrize("name", ["pairs.csv", "pairs.tsv", "pairs.jsonl"])
def test_single_file_split_80_10_10_by_text_a(name):
    bench = load_benchmark(str(FIX / name))
    sizes = {s: len(r) for s, r in bench.splits.items()}
    assert sizes == {"train": 50, "dev": 8, "test": 2}
    groups = {s: {r.text_a for r in recs} for s, recs in bench.splits.items()}
    assert not groups["train"] & groups["dev"] and not groups["train"] & groups["test"]
    assert bench.info.task == "classification"
    assert all(st.rejected == 0 and st.positives == st.pairs // 2 for st in bench.stats.values())
    rec = bench.splits["train"][0]
    assert rec.source == str(FIX / name) and rec.line == (1 if name.endswith("jsonl") else 2)


def test_tsv_keeps_quote_characters():
    texts = [r.text_b for r in load_split(str(FIX / "pairs.tsv"), "train")]
    assert '"password" change steps, the "quick" way?' in texts


def test_column_flags_pick_custom_columns():
    recs = load_split(
        str(FIX / "custom_cols.csv"), "dev", text_a="query", text_b="doc", label="match"
    )
    assert len(recs) == 8 and {r.label for r in recs} == {0, 1}


def test_score_column_makes_graded_data():
    bench = load_benchmark(str(FIX / "graded.csv"))
    assert bench.info.task == "graded"
    rec = bench.splits["train"][0]
    assert rec.label is None and rec.score == pytest.approx(4.5)
    assert bench.stats["train"].positives is None


def test_directory_of_split_files_is_used_as_given():
    bench = load_benchmark(str(FIX / "splitdir"))
    assert {s: len(r) for s, r in bench.splits.items()} == {"train": 40, "dev": 10, "test": 10}
    assert bench.splits["dev"][0].source.endswith("valid.tsv")
    assert bench.splits["test"][0].line == 1


def test_max_pairs_samples_user_data():
    recs = load_split(str(FIX / "pairs.csv"), "train", max_pairs=10, seed=1)
    assert len(recs) == 10 and sum(r.label for r in recs) == 5


def _error(path: Path, **cols) -> str:
    with pytest.raises(DataError) as info:
        load_benchmark(str(path), **cols)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_missing_file():
    msg = _error(FIX / "nope.csv")
    assert msg == f"{FIX / 'nope.csv'}: file not found"


def test_missing_default_column_lists_columns():
    msg = _error(BAD / "missing_col.csv")
    assert msg.startswith(f"{BAD / 'missing_col.csv'}: no text_b column")
    assert "'text_a', 'text_c', 'label'" in msg


def test_misnamed_column_flag_lists_columns():
    msg = _error(FIX / "pairs.csv", label="lable")
    assert msg == (
        f"{FIX / 'pairs.csv'}: no label column 'lable'; the columns are 'text_a', 'text_b', 'label'"
    )


def test_empty_text_names_line_and_column():
    msg = _error(BAD / "empty_text.csv")
    assert msg == f"{BAD / 'empty_text.csv'}:4: column 'text_b' is empty"


def test_label_not_0_1_names_line():
    msg = _error(BAD / "bad_label.csv")
    where = BAD / "bad_label.csv"
    assert msg == f"{where}:3: label '2' in column 'label' is not 0 or 1 (scores: use --score)"


def test_nan_label_names_line():
    msg = _error(BAD / "nan_label.csv")
    assert msg == f"{BAD / 'nan_label.csv'}:5: label in column 'label' is NaN"


def test_score_not_a_number_names_line():
    msg = _error(BAD / "bad_score.csv")
    assert msg == f"{BAD / 'bad_score.csv'}:3: score 'high' in column 'score' is not a number"


def test_non_utf8_bytes_name_line():
    msg = _error(BAD / "non_utf8.csv")
    assert re.fullmatch(
        re.escape(f"{BAD / 'non_utf8.csv'}:3: bytes that are not UTF-8") + ".*", msg
    )


def test_split_with_one_class():
    msg = _error(BAD / "one_class")
    assert msg.startswith(f"{BAD / 'one_class' / 'dev.csv'}: column 'label': split 'dev' has only")


def test_too_few_groups_leave_a_split_empty(tmp_path):
    path = tmp_path / "one_group.csv"
    path.write_text("text_a,text_b,label\nq,a,1\nq,b,0\nq,c,1\n")
    assert "has no pairs (too few groups" in _error(path)


def test_empty_file():
    assert _error(BAD / "empty.csv") == f"{BAD / 'empty.csv'}: file is empty"


def test_header_without_rows():
    assert _error(BAD / "header_only.csv") == f"{BAD / 'header_only.csv'}: file has no data rows"


def test_row_with_extra_field_names_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text_a,text_b,label\na,b,1\nfirst, with comma,b,0\n")
    assert _error(path) == f"{path}:3: row has 4 fields, the header has 3 (unquoted separator?)"


def test_jsonl_invalid_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text_a": "a", "text_b": "b", "label": 1}\n{"text_a": "a",\n')
    assert _error(path).startswith(f"{path}:2: invalid JSON")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "p.xlsx"
    path.write_text("x")
    assert "unknown file type" in _error(path)
