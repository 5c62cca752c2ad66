"""The user's own data: a CSV/TSV/JSONL file, or a directory of train/dev/test files.

Validation is strict: the first bad row raises :class:`DataError` naming the file and line.
A single file is split 80/10/10 by hashed ``text_a`` group; a directory's files are used as
given. Columns come from the options, or from the first default name present in the header.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flipkd.data.readers import file_format
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


def peek_columns(path: Path, fmt: str) -> list[str]:
    """Column names from the first line of a CSV/TSV header or of the first JSONL object."""
    where = str(path)
    with open(path, "rb") as fh:
        lines = [(n, raw) for n, raw in enumerate(fh, start=1) if raw.strip()][:1]
    if not lines:
        raise DataError("file is empty", where=where)
    line, raw = lines[0]
    try:
        first = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as err:
        msg = f"bytes that are not UTF-8 ({err.reason})"
        raise DataError(msg, where=f"{where}:{line}") from None
    if fmt == "jsonl":
        try:
            obj = json.loads(first)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON: {err.msg}", where=f"{where}:{line}") from None
        return list(obj) if isinstance(obj, dict) else []
    opts = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    return [c.strip() for c in next(csv.reader([first], **opts))]


def _pick(role: str, given: str | None, columns: list[str], where: str) -> str | None:
    if given is not None:
        if given not in columns:
            have = ", ".join(repr(c) for c in columns)
            raise DataError(f"no {role} column {given!r}; the columns are {have}", where=where)
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
    have = ", ".join(repr(c) for c in columns)
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
    return (picked["text_a"], picked["text_b"], target), ("graded" if graded else "classification")


def _split_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        split = SPLIT_STEMS.get(path.stem.lower())
        if split is None or path.suffix.lower().lstrip(".") not in USER_FORMATS:
            continue
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
    fmt = file_format(path)
    if fmt not in USER_FORMATS:
        raise DataError(f"unsupported file type; use one of {USER_FORMATS}", where=str(path))
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
        info = BenchmarkInfo(
            str(path), "unknown", "user", tasks.pop(), "user data (split files)",
            splits=tuple(made), source="train/dev/test files as given",
        )  # fmt: skip
        sources = {s: src for s, (src, _) in made.items()}
        return BenchmarkSpec(info, "per_split", sources, strict=True)
    src, task = _user_source(path, cols)
    info = BenchmarkInfo(
        str(path), "unknown", "user", task, f"user data ({src.fmt})",
        source="one file, 80/10/10 by text_a",
    )  # fmt: skip
    return BenchmarkSpec(info, "grouped", {"all": src}, SPLITS_80_10_10, "text_a", strict=True)
