"""Public loading functions: a registered name or a user's path in, validated splits out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from flipkd.data.clean import RawRow, SplitBuilder, norm_key
from flipkd.data.records import Benchmark, PairRecord, SplitStats
from flipkd.data.registry import BENCHMARKS, BenchmarkSpec
from flipkd.data.sources import SourceRows, read_source
from flipkd.data.splits import sample, split_by_group
from flipkd.data.user import user_spec
from flipkd.errors import DataError

log = logging.getLogger(__name__)

Loaded = dict[str, tuple[list[PairRecord], SplitStats]]


def _build(
    spec: BenchmarkSpec,
    split: str,
    read: SourceRows,
    rows: list[RawRow] | None = None,
    exclude: set[tuple[str, str]] | None = None,
    file_cleaning: bool = True,
) -> tuple[list[PairRecord], SplitStats]:
    """One split's records; ``file_cleaning`` adds the file's own counts (its BOM) to it."""
    builder = SplitBuilder(
        read.source, spec.info.task, strict=spec.strict, columns=read.columns, exclude=exclude
    )
    builder.add_rows(read.rows if rows is None else rows)
    for key, n in read.cleaned.items() if file_cleaning else ():
        builder.stats.count(builder.stats.cleaned, key, n)
    return builder.finish(split, spec.info.name)


def _load_per_split(spec: BenchmarkSpec, wanted: list[str]) -> Loaded:
    return {s: _build(spec, s, read_source(spec.sources[s], strict=spec.strict)) for s in wanted}


def _load_grouped(spec: BenchmarkSpec, wanted: list[str]) -> Loaded:
    read = read_source(spec.sources["all"], strict=spec.strict)
    parts = split_by_group(read.rows, spec.fractions or {}, spec.group or "text_a")
    # one file, several splits: its BOM is counted once, with the first split asked for
    return {s: _build(spec, s, read, rows=parts[s], file_cleaning=s == wanted[0]) for s in wanted}


def _load_merged(spec: BenchmarkSpec, wanted: list[str]) -> Loaded:
    needed = ["dev", "test"] if "train" in wanted else [s for s in wanted if s != "train"]
    held = {s: _build(spec, s, read_source(spec.sources[s], strict=spec.strict)) for s in needed}
    out: Loaded = {s: held[s] for s in wanted if s in held}
    if "train" in wanted:
        exclude = {
            (norm_key(r.text_a), norm_key(r.text_b)) for recs, _ in held.values() for r in recs
        }
        out["train"] = _build(
            spec, "train", read_source(spec.sources["all"], strict=spec.strict), exclude=exclude
        )
    return {s: out[s] for s in wanted}


KIND_LOADERS: dict[str, Callable[[BenchmarkSpec, list[str]], Loaded]] = {
    "per_split": _load_per_split,
    "grouped": _load_grouped,
    "merged": _load_merged,
}


def resolve(
    name_or_path: str,
    *,
    text_a: str | None = None,
    text_b: str | None = None,
    label: str | None = None,
    score: str | None = None,
) -> BenchmarkSpec:
    """The spec of a registered benchmark, or of a user's file or directory.

    Raises:
        DataError: the name is not registered and no such path exists.
    """
    if name_or_path in BENCHMARKS:
        if any(c is not None for c in (text_a, text_b, label, score)):
            log.warning("column options are ignored for the built-in benchmark %s", name_or_path)
        return BENCHMARKS[name_or_path]
    path = Path(name_or_path)
    if path.exists() or path.suffix or "/" in name_or_path:
        return user_spec(path, text_a=text_a, text_b=text_b, label=label, score=score)
    known = ", ".join(BENCHMARKS)
    raise DataError(f"unknown benchmark {name_or_path!r}; registered: {known} (or give a path)")


def _load(spec: BenchmarkSpec, wanted: list[str]) -> Loaded:
    return KIND_LOADERS[spec.kind](spec, wanted)


def load_split(
    name_or_path: str,
    split: str,
    *,
    text_a: str | None = None,
    text_b: str | None = None,
    label: str | None = None,
    score: str | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
) -> list[PairRecord]:
    """Load one split of a benchmark or a user's data.

    Args:
        name_or_path: A registered name (see :func:`list_benchmarks`) or a CSV/TSV/JSONL
            file, or a directory holding ``train``/``dev``/``test`` files.
        split: ``"train"``, ``"dev"`` or ``"test"`` (whatever the benchmark has).
        text_a: Column of the first text (user data; default ``text_a``, ``sentence1``, ...).
        text_b: Column of the second text.
        label: Column of the 0/1 label (user data; default ``label``).
        score: Column of a graded score instead of a label (user data; default ``score``
            when there is no label column).
        max_pairs: Keep a seeded sample of this many pairs, stratified by label.
        seed: Seed of that sample (the splits themselves never depend on it).

    Returns:
        The validated records, in file order.

    Raises:
        DataError: unknown benchmark or split, or invalid user data.
    """
    spec = resolve(name_or_path, text_a=text_a, text_b=text_b, label=label, score=score)
    if split not in spec.info.splits:
        have = ", ".join(spec.info.splits)
        raise DataError(f"{spec.info.name} has no split {split!r}; its splits are: {have}")
    records, _ = _load(spec, [split])[split]
    return sample(records, max_pairs, seed)


def load_benchmark(
    name_or_path: str,
    *,
    text_a: str | None = None,
    text_b: str | None = None,
    label: str | None = None,
    score: str | None = None,
) -> Benchmark:
    """Load every split of a benchmark or a user's data, with statistics.

    Args:
        name_or_path: As for :func:`load_split`.
        text_a: As for :func:`load_split`.
        text_b: As for :func:`load_split`.
        label: As for :func:`load_split`.
        score: As for :func:`load_split`.

    Returns:
        The benchmark: ``.splits`` (name -> records), ``.stats`` (name -> counts), ``.info``.
    """
    spec = resolve(name_or_path, text_a=text_a, text_b=text_b, label=label, score=score)
    loaded = _load(spec, list(spec.info.splits))
    return Benchmark(
        info=spec.info,
        splits={s: recs for s, (recs, _) in loaded.items()},
        stats={s: stats for s, (_, stats) in loaded.items()},
    )
