"""Steps after training that the CLI composes: cache a benchmark's texts, write the report,
say which model a run kept."""

from __future__ import annotations

import json
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


# the trainer's checkpoint metric → how reports name it
METRIC_NAMES = {"eval_dev_cosine_ap": "AP", "eval_dev_spearman_cosine": "Spearman"}


def kept_model(run_dir: Path) -> dict[str, Any]:
    """Which model a teacher run kept, read from its ``run.json`` and ``metrics.json``.

    ``kept`` is ``"checkpoint"`` (fine-tuned, a checkpoint kept), ``"base"`` (fine-tuned, but
    the untrained base model kept: it beat every checkpoint on dev), ``"zero-shot"`` (not
    fine-tuned) or ``"unknown"`` (records missing or unreadable). A fine-tuned run adds its
    dev metric's name, the base's value (step 0), the best checkpoint's, the kept step, the
    run's steps and its dev pairs.
    """
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"run": str(run_dir)}
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        metrics_path = run_dir / "metrics.json"
        metrics = (
            json.loads(metrics_path.read_text(encoding="utf-8")) if info.get("finetuned") else {}
        )
    except (OSError, ValueError) as exc:
        log.warning("teacher run %s: records unreadable (%s)", run_dir, exc)
        return {**out, "kept": "unknown"}
    out["model"] = info.get("model")
    if not info.get("finetuned"):
        return {**out, "kept": "zero-shot"}
    metric = metrics.get("best_metric")
    values = [h.get(metric) for h in metrics.get("history", [])]
    if not values or any(v is None for v in values):
        return {**out, "kept": "unknown"}
    step = metrics.get("best_step")
    return {
        **out, "kept": "base" if step == 0 else "checkpoint", "step": step,
        "steps": metrics.get("steps"), "dev_pairs": metrics.get("dev_pairs"),
        "metric": METRIC_NAMES.get(metric, metric), "base_value": values[0],
        "checkpoint_value": max(values[1:]) if len(values) > 1 else None,
    }  # fmt: skip
