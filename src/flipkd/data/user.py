"""The user's own data: a CSV/TSV/JSONL file, or a directory of train/dev/test files.

Validation is strict: the first bad row raises :class:`DataError` naming the file and line.
A single file is split 80/10/10 by hashed ``text_a`` group; a directory's files are used as
given. Columns come from the options, or from the first default name present in the header.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from flipkd.data.clean import MAX_FIELD_CHARS, clip_repr, columns_list
from flipkd.data.readers import FORMATS, csv_reader, decode_utf8, parse_json_line, regular_file
from flipkd.data.records import BenchmarkInfo, Task
from flipkd.data.registry import SPLITS_80_10_10, BenchmarkSpec
from flipkd.data.sources import Source
from flipkd.errors import DataError

# Role -> column names tried in order when the user names none.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "text_a": ("text_a", "sentence1", "s1", "question_1", "question1", "text1", "query"),
    "text_b": ("text_b", "sentence2", "s2", "question_2", "question2", "text2"),
    "label": ("label", "is_duplicate"),
    "score": ("score", "similarity"),
}

# File stem -> split name, for a directory of split files.
SPLIT_STEMS: dict[str, str] = {
    "train": "train",
    "dev": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
}
USER_FORMATS = ("csv", "tsv", "jsonl")
BOM = b"\xef\xbb\xbf"


def _first_line(path: Path, where: str) -> tuple[int, bytes]:
    """The number and bytes of the first non-blank line (reads no further than that line)."""
    regular_file(path, where)
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if raw.strip() and raw.strip() != BOM:
                    return number, raw
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", where=where) from None
    raise DataError("file is empty", where=where)


def peek_columns(path: Path, fmt: str) -> list[str]:
    """Column names from the first line of a CSV/TSV header or of the first JSONL object."""
    where = str(path)
    line, raw = _first_line(path, where)
    first = decode_utf8(raw, where, line).removeprefix("\ufeff").rstrip("\r\n")
    if fmt == "jsonl":
        return list(parse_json_line(first, f"{where}:{line}"))
    try:
        columns = next(csv_reader(io.StringIO(first, newline=""), fmt), [])
    except csv.Error as err:
        msg = f"cannot parse the {fmt.upper()} header: {err}"
        if "field larger than field limit" in str(err):
            msg = f"a header cell is longer than {MAX_FIELD_CHARS:,} characters (the limit)"
        raise DataError(msg, where=f"{where}:{line}") from None
    return [c.strip() for c in columns]


def _pick(role: str, given: str | None, columns: list[str], where: str) -> str | None:
    if given is not None:
        if given not in columns:
            have = columns_list(columns)
            raise DataError(
                f"no {role} column {clip_repr(given)}; the columns are {have}", where=where
            )
        return given
    return next((c for c in DEFAULT_COLUMNS[role] if c in columns), None)


def resolve_columns(
    path: Path, fmt: str, cols: dict[str, str | None]
) -> tuple[tuple[str, str, str], Task]:
    """Choose the text_a, text_b and target columns of one file, and the task.

    A ``score`` option (or, without a ``label`` column, a default score column) makes the
    data graded; otherwise it is classification with a 0/1 label.
    """
    where = str(path)
    columns = peek_columns(path, fmt)
    have = columns_list(columns)
    picked = {role: _pick(role, cols.get(role), columns, where) for role in DEFAULT_COLUMNS}
    for role in ("text_a", "text_b"):
        if picked[role] is None:
            raise DataError(
                f"no {role} column (tried {', '.join(DEFAULT_COLUMNS[role])}; pass "
                f"--{role.replace('_', '-')}); the columns are {have}",
                where=where,
            )
    graded = cols.get("score") is not None or (picked["label"] is None and picked["score"])
    target = picked["score"] if graded else picked["label"]
    if target is None:
        raise DataError(f"no label column (pass --label); the columns are {have}", where=where)
    for name in (picked["text_a"], picked["text_b"], target):
        if columns.count(name) > 1:  # the later column would be ignored without a word
            raise DataError(
                f"column {clip_repr(name)} appears {columns.count(name)} times in the header; "
                "rename all but one",
                where=where,
            )
    return (picked["text_a"], picked["text_b"], target), ("graded" if graded else "classification")


def _user_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt not in USER_FORMATS:
        kind = f"{path.suffix!r}" if path.suffix else "(no extension)"
        raise DataError(
            f"unknown file type {kind}; your data can be .csv, .tsv or .jsonl", where=str(path)
        )
    return fmt


def _split_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as err:
        msg = f"cannot list the directory ({err.strerror or err})"
        raise DataError(msg, where=str(directory)) from None
    for path in entries:
        split = SPLIT_STEMS.get(path.stem.lower())
        if split is None or (path.is_dir() and path.suffix.lower() not in FORMATS):
            continue
        _user_format(path)  # a train.txt or dev.ft is an error, not silently skipped
        if split in found:
            raise DataError(
                f"two files for split {split!r}: {found[split].name}, {path.name}",
                where=str(directory),
            )
        found[split] = path
    if not found:
        raise DataError(
            "directory holds no train/dev/test file (.csv, .tsv or .jsonl)", where=str(directory)
        )
    return {s: found[s] for s in ("train", "dev", "test") if s in found}


def _user_source(path: Path, cols: dict[str, str | None]) -> tuple[Source, Task]:
    fmt = _user_format(path)
    columns, task = resolve_columns(path, fmt, cols)
    return Source("file", str(path), fmt, columns), task


def user_spec(
    path: Path,
    *,
    text_a: str | None = None,
    text_b: str | None = None,
    label: str | None = None,
    score: str | None = None,
) -> BenchmarkSpec:
    """The spec of a user's file or directory (strict validation)."""
    cols = {"text_a": text_a, "text_b": text_b, "label": label, "score": score}
    if not path.exists():
        raise DataError("file not found", where=str(path))
    if path.is_dir():
        made = {s: _user_source(p, cols) for s, p in _split_files(path).items()}
        tasks = {task for _, task in made.values()}
        if len(tasks) > 1:
            raise DataError("the split files mix 0/1 labels and scores", where=str(path))
        files = ", ".join(f"{s}={Path(src.where).name}" for s, (src, _) in made.items())
        missing = [s for s in ("train", "dev", "test") if s not in made]
        absent = f"; no {' or '.join(missing)} file" if missing else ""
        info = BenchmarkInfo(
            str(path), "unknown", "user", tasks.pop(), "user data (split files)",
            splits=tuple(made), source=f"split files as given: {files}{absent}",
        )  # fmt: skip
        sources = {s: src for s, (src, _) in made.items()}
        return BenchmarkSpec(info, "per_split", sources, strict=True)
    src, task = _user_source(path, cols)
    info = BenchmarkInfo(
        str(path), "unknown", "user", task, f"user data ({src.fmt})",
        source="one file, 80/10/10 by text_a",
    )  # fmt: skip
    return BenchmarkSpec(info, "grouped", {"all": src}, SPLITS_80_10_10, "text_a", strict=True)
