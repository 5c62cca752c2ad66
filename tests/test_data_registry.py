"""The registry and its loader kinds, on tiny fixture data (the real files: test_data_real.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest

from flipkd.data import BENCHMARKS, BenchmarkInfo, list_benchmarks, load_benchmark, load_split
from flipkd.data.readers import package_file
from flipkd.data.registry import BenchmarkSpec
from flipkd.data.sources import Source, read_source, shared_csv, shared_tsv
from flipkd.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"
EXPECTED = ["atec", "bq", "lcqmc", "pawsx-zh", "stsb-zh", "stsb-en", "mqp"]


def test_list_benchmarks_describes_every_registered_benchmark():
    infos = {i.name: i for i in list_benchmarks()}
    assert list(infos) == EXPECTED
    assert {n for n, i in infos.items() if i.task == "graded"} == {"stsb-zh", "stsb-en"}
    assert infos["mqp"].domain == "medical" and infos["atec"].domain == "financial"
    assert all(i.splits == ("train", "dev", "test") and i.description for i in infos.values())


def test_unknown_benchmark_names_the_registered_ones():
    with pytest.raises(DataError, match=r"unknown benchmark 'atex'; registered: atec, bq, lcqmc"):
        load_split("atex", "train")


def test_unknown_split_names_the_existing_ones():
    with pytest.raises(DataError, match=r"has no split 'valid'; its splits are: train, dev, test"):
        load_split(str(FIX / "pairs.csv"), "valid")


@pytest.fixture
def tiny_merged(monkeypatch):
    """A benchmark of kind ``merged`` built like ATEC/BQ, from fixture files."""
    monkeypatch.setenv("FLIPKD_SHARED_DATA", str(FIX / "shared"))
    info = BenchmarkInfo("tiny", "zh", "financial", "classification", "fixture")
    sources = {
        "all": Source("file", str(FIX / "merged_all.tsv"), "tsv", ("s1", "s2", "label")),
        "dev": shared_csv("tiny/dev.csv", ("sentence1", "sentence2", "label")),
        "test": shared_tsv("tiny/test.tsv"),
    }
    monkeypatch.setitem(BENCHMARKS, "tiny", BenchmarkSpec(info, "merged", sources))
    return "tiny"


def test_merged_train_is_the_merged_file_minus_dev_and_test(tiny_merged):
    bench = load_benchmark(tiny_merged)
    train = bench.stats["train"]
    assert [r.line for r in bench.splits["train"]] == [2, 3, 4, 7, 10]
    assert bench.splits["train"][1].text_a == "信用卡还款"  # leading \x08\x08 removed
    assert (train.pairs, train.positives, train.duplicates, train.rejected) == (5, 3, 1, 2)
    assert train.held_out == 7  # incl. a swapped pair and two whitespace variants
    assert train.reasons == {"empty_text": 1, "label_not_0_1": 1}
    assert train.cleaned == {"control_chars": 1}
    assert bench.stats["dev"].cleaned == {"bom": 1}
    assert bench.splits["dev"][0].line == 2 and bench.splits["test"][0].line == 1
    assert bench.splits["dev"][0].text_a == "花呗怎么还款"


def test_load_split_of_dev_does_not_need_the_merged_file(tiny_merged, monkeypatch):
    spec = BENCHMARKS[tiny_merged]
    broken = {**spec.sources, "all": Source("file", "/nonexistent.tsv", "tsv", ("s1", "s2", "y"))}
    monkeypatch.setitem(BENCHMARKS, "tiny", BenchmarkSpec(spec.info, "merged", broken))
    assert len(load_split("tiny", "dev")) == 3
    with pytest.raises(DataError, match="/nonexistent.tsv: file not found"):
        load_split("tiny", "train")


def test_feather_source_counts_nulls_and_numbers_rows(tmp_path, monkeypatch):
    path = tmp_path / "x.ft"
    n = 40
    table = pa.table(
        {
            "label": [i % 2 for i in range(n)],
            "s1": [None if i == 5 else f"q{i // 2}" for i in range(n)],
            "s2": [f"r{i}" for i in range(n)],
        }
    )
    feather.write_feather(table, path)
    rows = read_source(Source("file", str(path), "feather", ("s1", "s2", "label")))
    assert rows.rows[0] == (1, "q0", "r0", 0) and len(rows.rows) == n
    info = BenchmarkInfo("ft", "en", "general", "classification", "fixture")
    spec = BenchmarkSpec(
        info,
        "grouped",
        {"all": Source("file", str(path), "feather", ("s1", "s2", "label"))},
        {"train": 0.8, "dev": 0.1, "test": 0.1},
        "text_a",
    )
    monkeypatch.setitem(BENCHMARKS, "ft", spec)
    bench = load_benchmark("ft")
    assert sum(st.pairs for st in bench.stats.values()) == n - 1
    assert sum(st.reasons.get("missing_text", 0) for st in bench.stats.values()) == 1


def test_feather_missing_column_lists_columns(tmp_path):
    path = tmp_path / "x.ft"
    feather.write_feather(pa.table({"a": ["x"], "b": ["y"]}), path)
    with pytest.raises(DataError, match=r"no column 's1'; the columns are 'a', 'b'"):
        read_source(Source("file", str(path), "feather", ("s1", "s2", "label")))


def test_package_file_finds_data_without_importing(monkeypatch):
    assert package_file("flipkd", "py.typed").is_file()
    with pytest.raises(DataError, match="package 'no_such_pkg_xyz' is not installed"):
        package_file("no_such_pkg_xyz", "data.ft")


def test_missing_shared_file_says_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("FLIPKD_SHARED_DATA", str(tmp_path))
    with pytest.raises(DataError, match="FLIPKD_SHARED_DATA"):
        load_split("mqp", "test")
