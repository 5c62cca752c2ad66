"""Deterministic grouped splits and seeded sampling.

A file without its own splits is split by **group**, never by row, so one question never
lands in two splits. A group's split depends only on a SHA-256 hash of its normalised key
(not on row order, not on a seed), so the split is the same on every machine and run.

Grouping rules (a table, see :data:`GROUPERS`):

* ``text_a`` — the group is the normalised (whitespace-collapsed, case-folded) first text.
* ``component`` — the group is the connected component of the graph whose nodes are
  normalised texts and whose edges are pairs, so no text appears in two splits (for data
  such as PAWS-X, where the same sentences recur in many pairs, in either position).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

from flipkd.data.clean import RawRow
from flipkd.data.records import PairRecord


def group_norm(raw: Any) -> str:
    """Normalised text used as a group key (missing cells become the empty string)."""
    return " ".join(str(raw).split()).casefold() if raw is not None else ""


def _text_a_groups(rows: list[RawRow]) -> list[str]:
    return [group_norm(a) for _, a, _, _ in rows]


def _component_groups(rows: list[RawRow]) -> list[str]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = [(group_norm(a), group_norm(b)) for _, a, b, _ in rows]
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest text: order-free
    return [find(a) for a, _ in pairs]


GROUPERS: dict[str, Callable[[list[RawRow]], list[str]]] = {
    "text_a": _text_a_groups,
    "component": _component_groups,
}


def hash_unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (first 8 bytes of its SHA-256).

    A lone surrogate (from a JSONL ``"\\ud800"``) is hashed as its code point, not an error:
    the row is refused later, by validation, naming its file and line.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_group(
    rows: list[RawRow], fractions: dict[str, float], rule: str
) -> dict[str, list[RawRow]]:
    """Share raw rows among splits by the hash of their group key.

    Args:
        rows: Raw rows of one file.
        fractions: Split name -> share, in order, summing to 1 (e.g. train .8, dev .1, test .1).
        rule: A key of :data:`GROUPERS`.

    Returns:
        Split name -> its rows, in file order.
    """
    bounds: list[tuple[float, str]] = []
    total = 0.0
    for name, share in fractions.items():
        total += share
        bounds.append((total, name))
    out: dict[str, list[RawRow]] = {name: [] for name in fractions}
    cache: dict[str, str] = {}
    for row, key in zip(rows, GROUPERS[rule](rows), strict=True):
        if key not in cache:
            u = hash_unit(key) * total
            cache[key] = next((n for b, n in bounds if u < b), bounds[-1][1])
        out[cache[key]].append(row)
    return out


def _strata(records: list[PairRecord]) -> list[Any]:
    return [r.label if r.label is not None else round(r.score or 0.0) for r in records]


def sample(records: list[PairRecord], max_pairs: int | None, seed: int) -> list[PairRecord]:
    """A seeded sample of ``max_pairs`` records, stratified by label (scores: rounded score).

    Falls back to a plain seeded sample when stratifying is impossible (a class too small).
    The sample keeps file order. ``None`` or a size at least ``len(records)`` returns all.
    """
    if max_pairs is None or max_pairs >= len(records):
        return list(records)
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be at least 1, got {max_pairs}")
    from sklearn.model_selection import train_test_split

    index = list(range(len(records)))
    try:
        picked, _ = train_test_split(
            index, train_size=max_pairs, random_state=seed, stratify=_strata(records)
        )
    except ValueError:
        picked, _ = train_test_split(index, train_size=max_pairs, random_state=seed)
    return [records[i] for i in sorted(picked)]


def thin_positives(records: list[PairRecord], share: float, seed: int) -> list[PairRecord]:
    """Every labelled negative and a seeded sample of the positives, so that positives make
    ``share`` of the labelled pairs (to try a model on data with few positives).

    Keeps file order. Raises ValueError when the records have no labelled positive or
    negative, or already have fewer positives than ``share`` (this only removes positives).
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"the share of positives must lie strictly between 0 and 1, got {share}")
    pos = [i for i, r in enumerate(records) if r.label == 1]
    neg = [i for i, r in enumerate(records) if r.label == 0]
    if not pos or not neg:
        raise ValueError("needs labelled positives and negatives (graded data has neither)")
    keep = round(len(neg) * share / (1.0 - share))
    if keep > len(pos):
        have = len(pos) / (len(pos) + len(neg))
        raise ValueError(
            f"positives are already {have:.1%} of the labelled pairs; "
            f"a share of {share:.1%} would need more of them than there are"
        )
    picked = set(random.Random(seed).sample(pos, max(keep, 1)))
    return [r for i, r in enumerate(records) if i in picked or r.label != 1]
