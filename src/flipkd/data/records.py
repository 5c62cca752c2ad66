"""The data types every later step sees: pair records, split statistics, benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Task = Literal["classification", "graded"]


@dataclass(frozen=True)
class PairRecord:
    """One validated text pair.

    Attributes:
        text_a: First text (cleaned: control characters removed).
        text_b: Second text (cleaned the same way).
        label: 0/1 for classification data, ``None`` for graded data.
        score: The graded similarity (e.g. 0–5 for STS-B), ``None`` for classification data.
        source: The file the pair came from, or ``"pkg:<package>/<file>"`` for packaged data.
        line: 1-based line (text files) or row (Feather files) number in ``source``.
    """

    text_a: str
    text_b: str
    label: int | None
    score: float | None
    source: str
    line: int


@dataclass
class SplitStats:
    """What happened while one split was read.

    Attributes:
        pairs: Records kept (duplicates included).
        positives: Records with label 1; ``None`` for graded data.
        rejected: Rows skipped as invalid (built-in benchmarks only; user files fail instead).
        duplicates: Kept records whose exact (text_a, text_b) occurred earlier in the split.
        reasons: Rejected rows counted by reason (``empty_text``, ``label_not_0_1``, ...).
        cleaned: Kept records changed by cleaning, counted by kind (``control_chars``, ``bom``).
        held_out: Training rows dropped because the pair (either order) is in dev or test.
    """

    pairs: int = 0
    positives: int | None = 0
    rejected: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, int] = field(default_factory=dict)
    held_out: int = 0

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        """Add ``n`` to ``table[key]`` (``table`` is ``reasons`` or ``cleaned``)."""
        table[key] = table.get(key, 0) + n

    def summary(self) -> dict[str, int | None]:
        """The four headline numbers, as ``flipkd data show --json`` prints them."""
        return {
            "pairs": self.pairs,
            "positives": self.positives,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True)
class BenchmarkInfo:
    """Description of a benchmark (registered or a user's file).

    Attributes:
        name: Registry name, or the path the user gave.
        language: ``"zh"``, ``"en"`` or ``"unknown"``.
        domain: ``"financial"``, ``"medical"``, ``"general"`` or ``"user"``.
        task: ``"classification"`` (labels 0/1) or ``"graded"`` (scores).
        description: One line for tables.
        splits: Split names in order, e.g. ``("train", "dev", "test")``.
        source: Where the data comes from and how it is split (one line).
    """

    name: str
    language: str
    domain: str
    task: Task
    description: str
    splits: tuple[str, ...] = ("train", "dev", "test")
    source: str = ""


@dataclass
class Benchmark:
    """A loaded benchmark: every split with its statistics."""

    info: BenchmarkInfo
    splits: dict[str, list[PairRecord]]
    stats: dict[str, SplitStats]


def unique_texts(records: Iterable[PairRecord]) -> list[str]:
    """Every distinct text of ``records`` (text_a then text_b, row by row), first seen first.

    Args:
        records: Pair records, e.g. one or more splits chained.

    Returns:
        The texts in order of first appearance, each once.
    """
    seen: dict[str, None] = {}
    for rec in records:
        seen.setdefault(rec.text_a)
        seen.setdefault(rec.text_b)
    return list(seen)
