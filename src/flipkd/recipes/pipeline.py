"""The end-to-end job behind ``flipkd train``: data → teacher (+cache) → student training.

Models are resolved and splits loaded here; the teacher and the student take their
config objects.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flipkd.config import FlipkdConfig
from flipkd.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

SPLIT_LIMITS = {"train": "max_train_pairs", "dev": "max_dev_pairs", "test": "max_test_pairs"}


def load_splits(cfg: FlipkdConfig, splits: tuple[str, ...] = ("train", "dev", "test")) -> dict:
    """The benchmark's splits, each cut to its configured seeded sample."""
    from flipkd.data import load_split

    cols = {"text_a": cfg.data.text_a, "text_b": cfg.data.text_b, "label": cfg.data.label}
    out = {}
    for split in splits:
        limit = getattr(cfg.data, SPLIT_LIMITS[split])
        out[split] = load_split(
            cfg.data.benchmark, split, **cols, max_pairs=limit, seed=cfg.data.seed
        )
    return out


def teacher_train_pairs(cfg: FlipkdConfig, student_train: list) -> list:
    """The pairs the teacher fine-tunes on: the student's (``teacher.max_train_pairs:
    data``), or its own seeded sample of the train split (null: all of it)."""
    from flipkd.data import load_split

    limit = cfg.teacher.max_train_pairs
    if limit == "data" or limit == cfg.data.max_train_pairs:
        return student_train
    cols = {"text_a": cfg.data.text_a, "text_b": cfg.data.text_b, "label": cfg.data.label}
    pairs = load_split(cfg.data.benchmark, "train", **cols, max_pairs=limit, seed=cfg.data.seed)
    log.info(
        "teacher: fine-tuning on %d train pairs (teacher.max_train_pairs), the student on %d",
        len(pairs), len(student_train),
    )  # fmt: skip
    return pairs


def ensure_teacher(cfg: FlipkdConfig, teacher_dir: Path, splits: dict, progress: bool = True):
    """Train (or reuse) the teacher run and its cache over every text of ``splits``.

    ``teacher.run`` points at an existing teacher run; otherwise the teacher is
    trained into ``teacher_dir`` once and reused by later calls.
    """
    from flipkd.models import resolve_teacher
    from flipkd.teacher import cache_splits, train_teacher

    t = cfg.teacher
    if t.run:
        teacher_dir = Path(t.run)
        if not (teacher_dir / "run.json").is_file():
            raise ConfigError(f"teacher.run: {teacher_dir} is not a teacher run directory")
    elif not (teacher_dir / "run.json").is_file():
        resolved = resolve_teacher(t.model)
        train_teacher(
            teacher_train_pairs(cfg, splits["train"]), splits["dev"], t,
            model_path=resolved.path, out_dir=teacher_dir,
            query_prefix=resolved.query_prefix, model_id=resolved.name, progress=progress,
        )  # fmt: skip
    cache = cache_splits(
        teacher_dir, cfg.data.benchmark, splits, batch_size=t.encode_batch_size, progress=progress
    )
    return teacher_dir, cache


def check_teacher(cfg: FlipkdConfig, teacher_dir: Path) -> None:
    """The teacher can be used: ``teacher.run`` is a teacher run, or the model name is known.

    A registered name, a local directory or a hub id is accepted without loading the model
    (the teacher loads in seconds; a misspelt name must not wait for the data to load).
    """
    from flipkd.models.registry import REGISTRY, resolve_teacher

    t = cfg.teacher
    if t.run:
        if not (Path(t.run) / "run.json").is_file():
            raise ConfigError(f"teacher.run: {t.run} is not a teacher run directory")
        return
    if (teacher_dir / "run.json").is_file():
        return
    spec = REGISTRY.get(t.model)
    if spec is None or spec.locate is not None:  # cheap: not a conversion
        resolve_teacher(t.model)
    elif spec.role != "teacher":
        raise ModelError(f"teacher.model {t.model!r} is a {spec.role}, not a teacher")


def preflight(cfg: FlipkdConfig, run_dir: Path, *, resume: bool = False) -> None:
    """Everything checkable before any work: config, run directory, teacher and student.

    The student is built on the meta device (:func:`flipkd.student.check.check_student`):
    its name, LoRA layers and tap, prompt template and label words are checked in seconds,
    before the data loads and the teacher trains.
    """
    from flipkd.student.check import check_student

    check_teacher(cfg, Path(run_dir) / "teacher")
    check_student(cfg.student, benchmark=cfg.data.benchmark)
    from flipkd.trainer.validate import check_config, check_run_dir  # imports the loop: last

    check_config(cfg)
    check_run_dir(cfg, run_dir, resume)


def train(cfg: FlipkdConfig, run_dir: Path, *, resume: bool = False, progress: bool = True):
    """Teacher (trained once into ``RUN/teacher`` unless ``teacher.run`` is set), then student.

    Everything checkable without training (:func:`preflight`, then the data against the
    config) is checked first, so a bad setup fails in seconds, not after the teacher.
    """
    from flipkd.trainer.validate import check_data

    preflight(cfg, Path(run_dir), resume=resume)
    splits = load_splits(cfg, ("train", "dev"))
    check_data(cfg, splits["train"])
    from flipkd.trainer import train_student  # accelerate and the loop: after the checks

    _, cache = ensure_teacher(cfg, Path(run_dir) / "teacher", splits, progress)
    return train_student(
        cfg, Path(run_dir), cache=cache, train_pairs=splits["train"], dev_pairs=splits["dev"],
        resume=resume, progress=progress,
    )  # fmt: skip
