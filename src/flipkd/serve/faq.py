"""Read and validate an FAQ file (CSV or JSONL with columns id, question, answer).

Every problem is a :class:`~flipkd.errors.DataError` whose message names the
file and line, so ``flipkd serve`` can stop with one line and exit code 2.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipkd.errors import DataError

COLUMNS = ("id", "question", "answer")


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ record."""

    id: str
    question: str
    answer: str


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}", where=f"{path}:1")
        for row in reader:
            yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON ({err.msg})", where=f"{path}:{line_no}") from err


READERS: dict[str, Callable[[Path], Iterator[tuple[int, Any]]]] = {
    ".csv": _csv_rows,
    ".jsonl": _jsonl_rows,
}


def _entry(row: Any, where: str) -> FaqEntry:
    if not isinstance(row, dict):
        raise DataError("expected an object with id, question, answer", where=where)
    missing = [c for c in COLUMNS if row.get(c) is None]
    if missing:
        raise DataError(f"missing value for {', '.join(missing)}", where=where)
    entry = FaqEntry(*(str(row[c]).strip() for c in COLUMNS))
    if not entry.id:
        raise DataError("empty id", where=where)
    if not entry.question:
        raise DataError("empty question", where=where)
    return entry


def load_faq(path: Path) -> list[FaqEntry]:
    """Read ``path`` (``.csv`` or ``.jsonl``) into FAQ entries.

    Args:
        path: The FAQ file. Ids must be unique; questions must be non-empty.

    Returns:
        The entries in file order.

    Raises:
        DataError: unreadable file, unknown suffix, missing column, empty
            question or id, duplicate id, or no entries at all.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"unsupported FAQ format; use one of {', '.join(READERS)}", where=str(path))
    if not path.is_file():
        raise DataError("file not found", where=str(path))
    entries: list[FaqEntry] = []
    seen: dict[str, int] = {}
    try:
        for line_no, row in reader(path):
            entry = _entry(row, f"{path}:{line_no}")
            if entry.id in seen:
                raise DataError(
                    f"duplicate id {entry.id!r} (first on line {seen[entry.id]})",
                    where=f"{path}:{line_no}",
                )
            seen[entry.id] = line_no
            entries.append(entry)
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason})", where=str(path)) from err
    except csv.Error as err:
        raise DataError(f"malformed CSV ({err})", where=str(path)) from err
    if not entries:
        raise DataError("no FAQ entries", where=str(path))
    return entries
