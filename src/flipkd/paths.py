"""Where flipkd keeps things outside the repository, and atomic writes.

The cache root is ``$FLIPKD_CACHE`` or ``~/.cache/flipkd``. Every artifact that
another step will trust is written to a temporary sibling and renamed into
place, so an interrupted write never leaves a file (or directory) that looks
complete.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """Return the cache directory (created on demand)."""
    root = Path(os.environ.get("FLIPKD_CACHE", Path.home() / ".cache" / "flipkd"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def shared_data_root() -> Path:
    """Return the folder with benchmark files kept beside the project.

    ``$FLIPKD_SHARED_DATA`` wins; otherwise ``../shared/data`` relative to the
    current directory or to the source checkout.
    """
    env = os.environ.get("FLIPKD_SHARED_DATA")
    if env:
        return Path(env)
    candidates = [Path.cwd() / ".." / "shared" / "data"]
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    return candidates[0]


@contextlib.contextmanager
def atomic_dir(target: Path, tmp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only on success.

    ``tmp_name`` fixes the temporary's name (a leftover of that name is removed first),
    for when other processes write into it too; by default it is unique.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if tmp_name is None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    else:
        tmp = target.parent / tmp_name
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it, which is not thread-safe,
    so not at every write)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of ``target`` for writing; rename it on success.

    The file gets the permissions a plain ``open`` would give (0666 less the umask), not
    ``mkstemp``'s owner-only 0600: results and exports are meant to be read by others.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(target: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(target) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")


def write_report(out: Path, report: dict, text: str) -> None:
    """A benchmark's report: ``OUT.json`` (the data) and ``OUT.md`` (``text``), both atomic."""
    write_json(out.with_suffix(".json"), report)
    with atomic_file(out.with_suffix(".md")) as fh:
        fh.write(text)


def hash_files(paths: list[Path], chunk: int = 1 << 20) -> str:
    """SHA-256 over the bytes of several files, in order (hex, 16 chars)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]


def hash_text(*parts: str) -> str:
    """SHA-256 of strings joined by NUL (hex, 16 chars)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]
