"""Steps after training that the CLI composes: cache a benchmark's texts, write the report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flipkd.evaluation import PairEvaluator, graded_metrics
from flipkd.teacher.cache import TeacherCache, build_teacher_cache, default_cache_dir
from flipkd.teacher.report import write_teacher_report

log = logging.getLogger(__name__)


def cache_splits(
    run_dir: Path,
    benchmark: str,
    splits: Mapping[str, Sequence[Any]],
    *,
    out_dir: Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    force: bool = False,
) -> TeacherCache:
    """Cache the teacher embedding of every text of ``splits``; calibrate on the train split.

    Without a train split the calibration is fitted on dev (logged), since a
    teacher score without any calibration cannot feed the dual threshold.
    """
    calib_split = "train" if splits.get("train") else "dev"
    if calib_split != "train":
        log.warning("no train split: calibrating the teacher on %s", calib_split)
    texts = (t for pairs in splits.values() for p in pairs for t in (p.text_a, p.text_b))
    return build_teacher_cache(
        run_dir,
        texts,
        out_dir=out_dir or default_cache_dir(run_dir, benchmark),
        calibration_pairs=splits.get(calib_split, ()),
        batch_size=batch_size,
        progress=progress,
        force=force,
    )


def dev_metrics(scores: np.ndarray, pairs: Sequence[Any]) -> dict[str, Any]:
    """Dev metrics with the threshold chosen on dev itself (binary), or correlations (graded)."""
    labels = [p.label for p in pairs]
    if any(label is None for label in labels) or len(set(labels)) < 2:
        gold = [p.score if p.label is None else p.label for p in pairs]
        return graded_metrics(scores, gold)
    out = PairEvaluator(scores, labels, metric="f1")(scores, labels)
    return {**out, "threshold_from": "dev (same pairs, optimistic)"}


def report_run(run_dir: Path, cache: TeacherCache, dev: Sequence[Any], *, title: str) -> Path:
    """Write ``RUN/report/`` from the cached dev scores; returns the markdown path."""
    a, b = [p.text_a for p in dev], [p.text_b for p in dev]
    sims = cache.pair_sim(a, b).numpy().astype(np.float64)
    labelled = [(s, p.label) for s, p in zip(sims, dev, strict=True) if p.label is not None]
    metrics = dev_metrics(sims, dev)
    if not labelled:
        log.warning("dev pairs have no 0/1 labels: report without class histograms")
        labelled = [(s, 0) for s in sims]
    s_arr = np.array([s for s, _ in labelled])
    y_arr = np.array([y for _, y in labelled])
    paths = write_teacher_report(
        Path(run_dir) / "report", s_arr, y_arr, cache.calibration, metrics, title=title
    )
    return paths["markdown"]
