"""Write pair records as JSONL or CSV (chosen by the file extension), atomically.

Columns are ``text_a, text_b, label`` for classification data and ``text_a, text_b, score``
for graded data, so an exported file loads back as user data with the default columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flipkd.data.records import PairRecord
from flipkd.errors import DataError
from flipkd.paths import atomic_file


def _row(rec: PairRecord, target: str) -> dict[str, Any]:
    value = rec.label if target == "label" else rec.score
    return {"text_a": rec.text_a, "text_b": rec.text_b, target: value}


def _write_jsonl(fh: Any, records: list[PairRecord], target: str) -> None:
    for rec in records:
        fh.write(json.dumps(_row(rec, target), ensure_ascii=False) + "\n")


def _write_csv(fh: Any, records: list[PairRecord], target: str) -> None:
    writer = csv.DictWriter(fh, fieldnames=["text_a", "text_b", target], lineterminator="\n")
    writer.writeheader()
    writer.writerows(_row(rec, target) for rec in records)


WRITERS: dict[str, Callable[[Any, list[PairRecord], str], None]] = {
    ".jsonl": _write_jsonl,
    ".csv": _write_csv,
}


def write_pairs(records: list[PairRecord], out: Path) -> Path:
    """Write ``records`` to ``out`` (``.jsonl`` or ``.csv``) and return the path.

    Raises:
        DataError: the extension is neither ``.jsonl`` nor ``.csv``.
    """
    out = Path(out)
    writer = WRITERS.get(out.suffix.lower())
    if writer is None:
        raise DataError(
            f"cannot write this file type; use one of {', '.join(WRITERS)}", where=str(out)
        )
    graded = any(rec.label is None for rec in records)
    with atomic_file(out) as fh:
        writer(fh, records, "score" if graded else "label")
    return out
