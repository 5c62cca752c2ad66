"""Validated text pairs and fixed splits: built-in benchmarks and the user's own files.

Public API::

    list_benchmarks() -> list[BenchmarkInfo]
    load_split(name_or_path, split, *, text_a=None, text_b=None, label=None, score=None,
               max_pairs=None, seed=0) -> list[PairRecord]
    load_benchmark(name_or_path, *, text_a=None, text_b=None, label=None, score=None)
        -> Benchmark
    unique_texts(records) -> list[str]

See ``docs/data.md`` for each benchmark's source, split rule and cleaning.
"""

from __future__ import annotations

from flipkd.data.loading import load_benchmark, load_split
from flipkd.data.records import Benchmark, BenchmarkInfo, PairRecord, SplitStats, unique_texts
from flipkd.data.registry import BENCHMARKS, list_benchmarks

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkInfo",
    "PairRecord",
    "SplitStats",
    "list_benchmarks",
    "load_benchmark",
    "load_split",
    "unique_texts",
]
