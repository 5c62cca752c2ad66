"""Read and validate an FAQ file: CSV, TSV or JSONL with ``id``, ``question``, ``answer``.

The rules (the README states them too):

- ``id`` and ``question`` are required; ``answer`` is optional (a column or key
  that is absent, empty or null gives an entry without an answer).
- Column names are matched without case or surrounding spaces; other columns are ignored.
- An id is a string or, in JSONL, an integer (``7`` and ``"7"`` are the same id);
  ids are unique and not empty.
- Questions and answers are strings (never a number or object turned into one),
  valid Unicode (no lone surrogate, which JSON can spell as ``"\\ud800"``);
  a question is not empty and has at most :data:`MAX_QUESTION_CHARS` characters,
  an answer at most :data:`MAX_ANSWER_CHARS`.
- The file is UTF-8 (a BOM is allowed); a CSV/TSV row has no more fields than
  the header.

Every problem is a :class:`~flipkd.errors.DataError` whose message names the
file and line, so ``flipkd serve`` stops with one line and exit code 2.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipkd.errors import DataError
from flipkd.serve.texts import text_problem

COLUMNS = ("id", "question", "answer")
REQUIRED = ("id", "question")
MAX_QUESTION_CHARS = 2000
MAX_ANSWER_CHARS = 100_000

Rows = Iterator[tuple[int, Any]]
Columns = tuple[tuple[str, ...], tuple[str, ...]]  # (known, required)


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ record; ``answer`` is None when the file gives none."""

    id: str
    question: str
    answer: str | None = None


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError("the file is UTF-16; save it as UTF-8", where=f"{path}:1")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        msg = f"not UTF-8 text ({err.reason} at byte {err.start}); save the file as UTF-8"
        raise DataError(msg, where=f"{path}:{line}") from None


def _header(reader: csv.DictReader, path: Path, columns: Columns) -> None:
    names = [(name or "").strip().lower() for name in reader.fieldnames or []]
    for name in set(names) & set(columns[0]):
        if names.count(name) > 1:
            raise DataError(f"column {name!r} appears twice", where=f"{path}:1")
    missing = [c for c in columns[1] if c not in names]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", where=f"{path}:1")
    reader.fieldnames = names


def _delimited_rows(path: Path, text: str, columns: Columns, tsv: bool) -> Rows:
    opts: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tsv else {}
    reader = csv.DictReader(io.StringIO(text, newline=""), **opts)
    try:
        _header(reader, path, columns)
        width = len(reader.fieldnames or [])
        for row in reader:
            if None in row:  # more fields than the header: an unquoted delimiter
                hint = "" if tsv else "; quote fields that contain commas"
                msg = f"{width + len(row[None])} fields, {width} in the header{hint}"
                raise DataError(msg, where=f"{path}:{reader.line_num}")
            yield reader.line_num, row
    except csv.Error as err:  # DictReader.line_num lags: it is set after a row is read
        line = reader.reader.line_num
        raise DataError(f"malformed CSV ({err})", where=f"{path}:{line}") from None


class _DuplicateKeyError(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with keys matched like CSV headers; a key given twice is an error."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        name = key.strip().lower()
        if name in data:
            raise _DuplicateKeyError(f"key {name!r} appears twice")
        data[name] = value
    return data


def _json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line, object_pairs_hook=_object)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON ({err.msg})", where=where) from None
    except _DuplicateKeyError as err:
        raise DataError(f"invalid JSON ({err})", where=where) from None
    except ValueError:  # an integer of more than 4300 digits
        raise DataError("invalid JSON (a number has too many digits)", where=where) from None
    except RecursionError:
        raise DataError("invalid JSON (nested too deeply)", where=where) from None


def _jsonl_rows(path: Path, text: str, columns: Columns) -> Rows:
    for line_no, line in enumerate(io.StringIO(text), start=1):
        if line.strip():
            yield line_no, _json_line(line, f"{path}:{line_no}")


READERS: dict[str, Callable[[Path, str, Columns], Rows]] = {
    ".csv": lambda path, text, columns: _delimited_rows(path, text, columns, tsv=False),
    ".tsv": lambda path, text, columns: _delimited_rows(path, text, columns, tsv=True),
    ".jsonl": _jsonl_rows,
}


def read_rows(path: Path, columns: Columns, what: str) -> Rows:
    """Check and decode ``path``, then yield ``(line, row)`` with lower-cased column names.

    Args:
        path: A ``.csv``, ``.tsv`` or ``.jsonl`` file.
        columns: (known columns, required columns); a CSV/TSV header must have the
            required ones, each known one at most once (JSONL keys are checked by the caller).
        what: What the file is, for the errors ("FAQ", "queries").

    Raises:
        DataError: unknown suffix, missing, not a file, not UTF-8, empty, bad header or row.
    """
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"unsupported {what} format; use one of {', '.join(READERS)}", where=str(path)
        )
    if not path.exists():
        raise DataError("file not found", where=str(path))
    if not path.is_file():
        raise DataError("not a regular file", where=str(path))
    text = _decode(path)
    if not text.strip():
        raise DataError("file is empty", where=str(path))
    return reader(path, text, columns)


def read_id(value: Any, where: str) -> str:
    """An FAQ id: a string or an integer (``7`` and ``"7"`` are the same), not empty."""
    if value is None:
        raise DataError("missing value for id", where=where)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(f"id must be a string or an integer, not {value!r}", where=where)
    problem = text_problem(str(value))
    if problem is not None:
        raise DataError(f"id {problem}", where=where)
    return str(value).strip()


def read_text(row: dict[str, Any], name: str, where: str, max_chars: int | None) -> str | None:
    """The stripped text in ``row[name]``; None when absent or blank; DataError when invalid."""
    value = row.get(name)
    if value is None or value == "":
        return None
    problem = text_problem(value, max_chars)
    if problem == "is empty":
        return None
    if problem is not None:
        raise DataError(f"{name} {problem}", where=where)
    return value.strip()


def _entry(row: Any, where: str) -> FaqEntry:
    if not isinstance(row, dict):
        raise DataError("expected an object with id, question and optionally answer", where=where)
    entry_id = read_id(row.get("id"), where)
    if "question" not in row or row["question"] is None:
        raise DataError("missing value for question", where=where)
    question = read_text(row, "question", where, MAX_QUESTION_CHARS)
    if question is None:
        raise DataError("question is empty", where=where)
    return FaqEntry(entry_id, question, read_text(row, "answer", where, MAX_ANSWER_CHARS))


def load_faq(path: Path) -> list[FaqEntry]:
    """Read ``path`` (``.csv``, ``.tsv`` or ``.jsonl``) into FAQ entries.

    Args:
        path: The FAQ file (the rules are in this module's docstring).

    Returns:
        The entries in file order.

    Raises:
        DataError: unreadable or non-UTF-8 file, unknown suffix, missing column,
            a bad id, question or answer, duplicate id, or no entries at all.
    """
    path = Path(path)
    entries: list[FaqEntry] = []
    seen: dict[str, int] = {}
    for line_no, row in read_rows(path, (COLUMNS, REQUIRED), "FAQ"):
        entry = _entry(row, f"{path}:{line_no}")
        if entry.id in seen:
            raise DataError(
                f"duplicate id {entry.id!r} (first on line {seen[entry.id]})",
                where=f"{path}:{line_no}",
            )
        seen[entry.id] = line_no
        entries.append(entry)
    if not entries:
        raise DataError("no FAQ entries", where=str(path))
    return entries
