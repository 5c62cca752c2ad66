"""Read a file of user queries, each with the id of the FAQ entry that answers it.

For ``flipkd faq eval``. The file follows the FAQ file's rules
(:mod:`flipkd.serve.faq`: CSV, TSV or JSONL, UTF-8, column names matched without
case or surrounding spaces, other columns ignored), with two required columns:

- ``query``: a non-empty string of valid Unicode, at most
  :data:`~flipkd.serve.faq.MAX_QUESTION_CHARS` characters;
- ``id``: a string or (JSONL) an integer naming an entry of the FAQ.

Every problem (an empty query, a missing column or key, an id that is not in the
FAQ, bad UTF-8, no queries at all) is a :class:`~flipkd.errors.DataError` naming
the file and line; nothing is skipped. The same query may appear more than once
(real query logs repeat).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipkd.errors import DataError
from flipkd.serve.faq import MAX_QUESTION_CHARS, read_id, read_rows, read_text

COLUMNS = ("query", "id")


@dataclass(frozen=True)
class LabelledQuery:
    """A user query and the id of its right FAQ entry; ``line`` is where the file has it."""

    query: str
    id: str
    line: int


def _query(row: Any, where: str, known: set[str], faq: str) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise DataError("expected an object with query and id", where=where)
    if row.get("query") is None:
        raise DataError("missing value for query", where=where)
    query = read_text(row, "query", where, MAX_QUESTION_CHARS)
    if query is None:
        raise DataError("query is empty", where=where)
    entry_id = read_id(row.get("id"), where)
    if entry_id not in known:
        raise DataError(f"id {entry_id!r} is not in the FAQ {faq}", where=where)
    return query, entry_id


def load_queries(path: Path, faq_ids: Iterable[str], faq_name: str = "") -> list[LabelledQuery]:
    """Read ``path`` into labelled queries, checking every id against the FAQ's.

    Args:
        path: The queries file (``.csv``, ``.tsv`` or ``.jsonl``).
        faq_ids: The ids of the FAQ the queries are for.
        faq_name: How to name the FAQ in the error for an unknown id (its path).

    Raises:
        DataError: as the module docstring lists, naming the file and line.
    """
    path = Path(path)
    known = set(faq_ids)
    queries = []
    for line_no, row in read_rows(path, (COLUMNS, COLUMNS), "queries"):
        query, entry_id = _query(row, f"{path}:{line_no}", known, faq_name)
        queries.append(LabelledQuery(query, entry_id, line_no))
    if not queries:
        raise DataError("no queries", where=str(path))
    return queries
