"""Row validation, cleaning counts, grouped splits and sampling (no files needed)."""

from __future__ import annotations

import collections

import pytest

from flipkd.data import PairRecord, unique_texts
from flipkd.data.clean import SplitBuilder, norm_key
from flipkd.data.splits import sample as sample_records
from flipkd.data.splits import split_by_group
from flipkd.errors import DataError


def _lenient(rows, task="classification", exclude=None):
    builder = SplitBuilder("mem.tsv", task, exclude=exclude).add_rows(rows)
    return builder.finish("train", "mem")


def test_lenient_builder_counts_every_problem(caplog):
    rows = [
        (1, "a", "b", 1),
        (2, "\x08a2", "b2", 0),  # control char stripped, counted
        (3, "a", "b", "1"),  # exact duplicate of line 1 (kept, counted)
        (4, "a4", "   ", 1),  # empty text
        (5, None, "b5", 0),  # missing text
        (6, "a6", "b6", 2),  # label not 0/1
        (7, "a7", "b7", float("nan")),  # NaN label
        (8, "a8", "b8", "yes"),  # not a number
        (9, "a9", "b9", ""),  # empty label
    ]
    with caplog.at_level("WARNING"):
        records, stats = _lenient(rows)
    assert [r.line for r in records] == [1, 2, 3]
    assert records[1].text_a == "a2" and records[2].label == 1
    assert (stats.pairs, stats.positives, stats.duplicates, stats.rejected) == (3, 2, 1, 6)
    assert stats.reasons == {
        "empty_text": 1,
        "missing_text": 1,
        "label_not_0_1": 2,
        "label_nan": 1,
        "label_missing": 1,
    }
    assert stats.cleaned == {"control_chars": 1}
    assert "skipped 6 bad rows" in caplog.text


def test_graded_rows_keep_scores():
    rows = [(1, "a", "b", 4.5), (2, "c", "d", "3"), (3, "e", "f", "inf"), (4, "g", "h", "x")]
    records, stats = _lenient(rows, task="graded")
    assert [(r.label, r.score) for r in records] == [(None, 4.5), (None, 3.0)]
    assert stats.positives is None
    assert stats.reasons == {"score_not_number": 2}


def test_held_out_pairs_are_dropped_in_either_order_ignoring_whitespace():
    exclude = {(norm_key("花呗 怎么 还"), norm_key("如何还花呗"))}
    rows = [
        (1, "花呗怎么还", "如何还花呗", 1),
        (2, "如何 还花呗", "花呗怎么还", 1),
        (3, "x", "y", 0),
    ]
    records, stats = _lenient(rows, exclude=exclude)
    assert [r.line for r in records] == [3]
    assert stats.held_out == 2 and stats.pairs == 1


def test_strict_builder_raises_with_file_and_line():
    builder = SplitBuilder("user.csv", "classification", strict=True, columns=("q", "d", "y"))
    builder.add(2, "a", "b", 1)
    want = r"^user\.csv:3: label '7' in column 'y' is not 0 or 1 \(scores: use --score\)$"
    with pytest.raises(DataError, match=want):
        builder.add(3, "a", "b", "7")


def test_unique_texts_is_order_stable():
    recs = [
        PairRecord("b", "a", 1, None, "s", 1),
        PairRecord("a", "c", 0, None, "s", 2),
        PairRecord("c", "b", 1, None, "s", 3),
    ]
    assert unique_texts(recs) == ["b", "a", "c"]


def _rows(n_groups: int, per_group: int = 2):
    return [
        (i * per_group + j + 1, f"Question {i}", f"rewrite {i}.{j}", j % 2)
        for i in range(n_groups)
        for j in range(per_group)
    ]


def test_split_by_text_a_keeps_groups_whole_and_ignores_row_order():
    rows = _rows(200)
    parts = split_by_group(rows, {"train": 0.7, "dev": 0.1, "test": 0.2}, "text_a")
    owner = {}
    for split, part in parts.items():
        for _, a, _, _ in part:
            assert owner.setdefault(a, split) == split
    assert sum(len(p) for p in parts.values()) == len(rows)
    assert 0.6 < len(parts["train"]) / len(rows) < 0.8
    again = split_by_group(list(reversed(rows)), {"train": 0.7, "dev": 0.1, "test": 0.2}, "text_a")
    assert {s: sorted(p) for s, p in again.items()} == {s: sorted(p) for s, p in parts.items()}


def test_component_split_never_shares_a_text():
    # Chains a-b, b-c put a, b, c in one component even though text_a differs.
    rows = [(i + 1, f"s{i}", f"s{i + 1}", 1) for i in range(0, 300, 3)]
    rows += [(i + 2, f"s{i + 1}", f"s{i + 2}", 0) for i in range(0, 300, 3)]
    parts = split_by_group(rows, {"train": 0.8, "dev": 0.1, "test": 0.1}, "component")
    texts = {s: {t for _, a, b, _ in p for t in (a, b)} for s, p in parts.items()}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]


def _records(n_pos: int, n_neg: int) -> list[PairRecord]:
    labels = [1] * n_pos + [0] * n_neg
    return [PairRecord(f"a{i}", f"b{i}", y, None, "s", i + 1) for i, y in enumerate(labels)]


def test_sample_is_seeded_stratified_and_in_file_order():
    recs = _records(200, 800)
    first = sample_records(recs, 100, seed=3)
    assert first == sample_records(recs, 100, seed=3)
    assert first != sample_records(recs, 100, seed=4)
    assert len(first) == 100 and collections.Counter(r.label for r in first)[1] == 20
    assert [r.line for r in first] == sorted(r.line for r in first)
    assert sample_records(recs, None, seed=0) == recs
    assert sample_records(recs, 5000, seed=0) == recs


def test_sample_falls_back_when_a_class_is_too_small():
    recs = _records(1, 50)
    picked = sample_records(recs, 10, seed=0)
    assert len(picked) == 10
