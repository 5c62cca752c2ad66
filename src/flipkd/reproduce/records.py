"""A ladder's finished runs as one portable file: written by ``--export-records``, read by
``--import-records``.

A run's ``result.json`` holds its per-pair scores, so the table, the claims and their paired
intervals can be computed again from the file alone, without the weights; and a ladder whose
seeds ran on different machines (or in sessions that each had time for one seed) is reported
as one: import the others' records into the work folder, run the remaining seeds, render.
The file holds each run's ``result.json`` and, for its seed, the teacher run's ``run.json`` and
``metrics.json`` (what the report's ``Teacher:`` line reads), never weights. An imported run is
found by the ladder only where today's config gives it the same hash (``runs/<row>-s<seed>-
<hash>``): records of another recipe are kept on disk but read by no row, and said so.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flipkd.errors import ConfigError
from flipkd.paths import atomic_file, write_json

log = logging.getLogger(__name__)

FORMAT = "flipkd-ladder-records/1"
# Marks a teacher folder that holds records only (no weights): a row that needs the teacher
# trains it again (ladder.run_ladder).
IMPORTED = "imported.json"
TEACHER_FILES = ("run.json", "metrics.json")
_RUN_NAME = re.compile(r"[a-z][a-z-]*-s\d+-[0-9a-f]+")
_TEACHER_NAME = re.compile(r"s\d+-[0-9a-f]+")


def run_name(result: dict) -> str:
    """A run's folder under ``<work>/runs``, as the ladder names it."""
    return f"{result['row']}-s{result['seed']}-{result['config_hash']}"


def check_export_path(path: Path) -> None:
    """Fail before a ladder runs if its ``--export-records`` file could not be written there:
    the path is a folder, or a parent of it is a file or cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: --export-records names a folder; give a file (.json.gz)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{path}: --export-records: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: --export-records: {parent} cannot be written")


def export_records(results: list[dict], work_dir: Path, path: Path) -> dict[str, int]:
    """Write the finished runs of ``results`` (and their seeds' teacher records) to ``path``
    (gzipped JSON); returns the counts written."""
    work_dir = Path(work_dir)
    runs: dict[str, Any] = {}
    for r in results:
        name = run_name(r)
        runs[name] = _read_json(work_dir / "runs" / name / "result.json")
    teachers: dict[str, Any] = {}
    for r in results:
        kept = r.get("teacher_kept") or {}
        teacher_dir = Path(kept["run"]) if kept.get("run") else None
        if teacher_dir is None or teacher_dir.name in teachers:
            continue
        if teacher_dir.parent.resolve() != (work_dir / "teachers").resolve():
            log.warning(
                "records: teacher run %s is outside %s; not exported", teacher_dir, work_dir
            )
            continue
        found = {
            f: _read_json(teacher_dir / f) for f in TEACHER_FILES if (teacher_dir / f).is_file()
        }
        if found:
            teachers[teacher_dir.name] = found
    doc = {"format": FORMAT, "runs": runs, "teachers": teachers}
    with atomic_file(Path(path), "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return {"runs": len(runs), "teachers": len(teachers)}


@dataclass
class Imported:
    """What ``import_records`` did: run and teacher folders written, and those already there."""

    runs: list[str] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def import_records(paths: list[Path], work_dir: Path) -> Imported:
    """Write the runs and teacher records of each file in ``paths`` into ``work_dir``.

    A run or teacher folder already in ``work_dir`` is kept as it is (it is the same run, by
    its hash, or a teacher with weights). Raises ``ConfigError`` naming the file when one is
    not a records file.
    """
    done = Imported()
    docs = [(path, _load(Path(path))) for path in paths]  # every file checked before any write
    for path, doc in docs:
        for name, result in doc["runs"].items():
            target = Path(work_dir) / "runs" / name / "result.json"
            if target.is_file():
                done.present.append(name)
                continue
            write_json(target, result)
            done.runs.append(name)
        for name, files in doc["teachers"].items():
            folder = Path(work_dir) / "teachers" / name
            if (folder / "run.json").is_file():
                done.present.append(f"teachers/{name}")
                continue
            for fname, content in files.items():
                write_json(folder / fname, content)
            write_json(folder / IMPORTED, {"from": str(path)})
            done.teachers.append(name)
    return done


def is_imported(teacher_dir: Path) -> bool:
    """A teacher folder of records only (imported, no weights)."""
    return (Path(teacher_dir) / IMPORTED).is_file()


def _load(path: Path) -> dict:
    try:
        with gzip.open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such records file") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a gzipped ladder records file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ConfigError(f"{path}: format {found!r}, expected {FORMAT!r}")
    for key, pattern in (("runs", _RUN_NAME), ("teachers", _TEACHER_NAME)):
        entries = doc.get(key)
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: field {key!r} is not a mapping")
        bad = sorted(
            n for n, v in entries.items() if not pattern.fullmatch(n) or not isinstance(v, dict)
        )
        if bad:
            raise ConfigError(f"{path}: {key}: {bad[0]!r} is not a run record")
        if key == "runs":
            missing = sorted(n for n, v in entries.items() if "scores" not in v)
            if missing:
                raise ConfigError(f"{path}: runs: {missing[0]!r} has no field 'scores'")
        else:
            odd = sorted(n for n, v in entries.items() if set(v) - set(TEACHER_FILES))
            if odd:
                raise ConfigError(
                    f"{path}: teachers: {odd[0]!r} holds files other than {TEACHER_FILES}"
                )
    return doc


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
