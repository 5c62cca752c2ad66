"""Evaluators: choose the threshold on dev, apply it to test; evaluate a run directory.

:class:`PairEvaluator` follows the sentence-transformers evaluator shape (a
callable returning a metrics dict, with a ``primary_metric`` name) but works on
plain score arrays, so teacher and student are judged by the same code.

Run directories carry ``run.json`` with a ``kind``. :func:`evaluate_run`
dispatches through a table from kind to a *scorer*
``scorer(run_dir, pairs, benchmark=...) -> np.ndarray`` (one similarity per
pair, higher = more alike). Kinds are registered by dotted path so the
evaluation package never imports the teacher or student at import time;
:func:`register_run_kind` adds or replaces one.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from flipkd.errors import FlipkdError
from flipkd.evaluation.metrics import (
    ArrayLike,
    ThresholdMetric,
    best_threshold,
    bootstrap_ci,
    pair_metric,
    pair_metrics,
)
from flipkd.mixing import MIX_WEIGHT_DEFAULT, MixScales
from flipkd.modes import MODES

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """Scores pairs with the model of a run directory."""

    def __call__(self, run_dir: Path, pairs: Sequence[Any], *, benchmark: str) -> np.ndarray: ...


_RUN_KINDS: dict[str, str | Scorer] = {
    "teacher": "flipkd.teacher.scoring:score_pairs",
    "student": "flipkd.export.scoring:score_run_pairs",
}


def register_run_kind(kind: str, scorer: Scorer | str) -> None:
    """Register (or replace) the scorer for runs whose ``run.json`` says ``kind``.

    Args:
        kind: The ``kind`` field of ``run.json`` (e.g. ``"student"``).
        scorer: A callable, or ``"package.module:function"`` imported on first use.
    """
    _RUN_KINDS[kind] = scorer


def run_kinds() -> list[str]:
    """The registered run kinds."""
    return sorted(_RUN_KINDS)


def _scorer(kind: str) -> Scorer:
    entry = _RUN_KINDS.get(kind)
    if entry is None:
        raise FlipkdError(f"unknown run kind {kind!r}; known kinds: {', '.join(run_kinds())}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        _RUN_KINDS[kind] = entry
    return entry


class PairEvaluator:
    """Choose a threshold on dev scores; evaluate test scores at that threshold.

    Example:
        >>> ev = PairEvaluator(dev_scores, dev_labels, metric="f1")
        >>> results = ev(test_scores, test_labels)
        >>> results[ev.primary_metric]

    Args:
        dev_scores: Scores of the dev pairs.
        dev_labels: Their gold 0/1 labels.
        metric: What the threshold maximises on dev ("f1" or "accuracy").
        primary: Name of the headline metric in the returned dict.
        name: Optional prefix for the metric names (``name_f1``), as in sentence-transformers.
        ci: Bootstrap resamples for 95% intervals of the primary metric (0 = none).
    """

    def __init__(
        self,
        dev_scores: ArrayLike,
        dev_labels: ArrayLike,
        *,
        metric: ThresholdMetric = "f1",
        primary: str | None = None,
        name: str = "",
        ci: int = 0,
    ) -> None:
        self.threshold = best_threshold(dev_scores, dev_labels, metric)
        self.threshold_metric = metric
        self.name = name
        self.ci = ci
        self.primary_metric = self._prefix(primary or metric)

    def _prefix(self, key: str) -> str:
        return f"{self.name}_{key}" if self.name else key

    def __call__(self, scores: ArrayLike, labels: ArrayLike) -> dict[str, float]:
        """Metrics of ``scores`` against ``labels`` at the dev threshold."""
        out = pair_metrics(scores, labels, self.threshold)
        if self.ci:
            key = self.primary_metric.removeprefix(f"{self.name}_" if self.name else "")
            fn = pair_metric(key, self.threshold)
            low, high = bootstrap_ci(scores, labels, fn, n=self.ci)
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
        return {self._prefix(k): v for k, v in out.items()}


def benchmark_slug(benchmark: str) -> str:
    """A folder/file name for a benchmark: its registry name, or a data path's stem."""
    name = Path(benchmark).stem if ("/" in benchmark or Path(benchmark).suffix) else benchmark
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "data"


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """Read ``RUN/run.json`` (kind and what the run needs to be scored)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FlipkdError(f"{run_dir}: not a flipkd run directory (no run.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FlipkdError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def _labels(pairs: Sequence[Any], where: str) -> np.ndarray:
    missing = [p for p in pairs if p.label is None]
    if missing:
        raise FlipkdError(f"{where}: {len(missing)} pairs have no 0/1 label; cannot evaluate")
    return np.array([p.label for p in pairs], dtype=np.int64)


def _load(
    benchmark: str,
    split: str,
    dev_split: str,
    max_pairs: int | Mapping[str, int | None] | None,
    seed: int,
) -> tuple[list, list]:
    """The dev and scored splits (the same list when they are the same split)."""
    from flipkd.data import load_split

    limits = (
        max_pairs
        if isinstance(max_pairs, Mapping)
        else dict.fromkeys((dev_split, split), max_pairs)
    )
    dev = load_split(benchmark, dev_split, max_pairs=limits.get(dev_split), seed=seed)
    test = (
        dev
        if split == dev_split
        else load_split(benchmark, split, max_pairs=limits.get(split), seed=seed)
    )
    return dev, test


def evaluate_run(
    run_dir: Path,
    benchmark: str,
    split: str = "test",
    *,
    dev_split: str = "dev",
    metric: ThresholdMetric = "f1",
    max_pairs: int | Mapping[str, int | None] | None = None,
    seed: int = 0,
    ci: int = 0,
    mode: str | None = None,
    mix_weight: float = MIX_WEIGHT_DEFAULT,
) -> dict[str, Any]:
    """Score a run on a benchmark split; the threshold comes from the dev split.

    ``max_pairs`` (one number for both splits, or split name → number) scores a
    seeded sample of ``seed`` instead of the whole split, as ``load_split`` draws it.

    ``mode`` is passed to scorers that have several ways to score (the student's
    ``gen`` and ``rep``); teacher runs ignore it. ``mix`` scores each split in both and mixes
    them, ``mix_weight · z(logit gen) + (1 − mix_weight) · z(rep)`` with each ``z`` from the
    dev pairs (:func:`flipkd.mixing.mix_scores`; a teacher's one score is its own mix).

    When ``split`` is the dev split itself the threshold is chosen on the same
    pairs (optimistic); the result says so under ``threshold_from``.

    Returns:
        A dict with ``run``, ``kind``, ``benchmark``, ``split``, ``threshold_from``,
        ``primary_metric`` and ``metrics``.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    scorer = _scorer(info.get("kind", ""))
    dev, test = _load(benchmark, split, dev_split, max_pairs, seed)
    scales = None
    if mode == "mix":
        dev_scores, test_scores, scales = _mixed(scorer, run_dir, dev, test, benchmark, mix_weight)
    else:
        extra = {"mode": mode} if mode else {}
        dev_scores = scorer(run_dir, dev, benchmark=benchmark, **extra)
        test_scores = (
            dev_scores if test is dev else scorer(run_dir, test, benchmark=benchmark, **extra)
        )
    evaluator = PairEvaluator(dev_scores, _labels(dev, dev_split), metric=metric, ci=ci)
    metrics = evaluator(test_scores, _labels(test, split))
    log.info("%s on %s/%s: %s=%.4f", run_dir, benchmark, split, metric, metrics[metric])
    return {
        "run": str(run_dir),
        "kind": info["kind"],
        "benchmark": benchmark,
        "split": split,
        "mode": mode,
        **({"mix_weight": mix_weight} if mode == "mix" else {}),
        **({"mix_scales": asdict(scales)} if scales is not None else {}),
        "pairs": {"dev": len(dev), split: len(test), "sample_seed": seed},
        "threshold_from": f"{dev_split} ({metric})",
        "primary_metric": evaluator.primary_metric,
        "metrics": metrics,
    }


def _mixed(
    scorer: Scorer,
    run_dir: Path,
    dev: Sequence[Any],
    test: Sequence[Any],
    benchmark: str,
    weight: float,
) -> tuple[np.ndarray, np.ndarray, MixScales | None]:
    """Dev and test scores of the ``mix`` mode: each split scored in both modes, then mixed on
    the dev pairs' scales (returned too; None for a teacher, whose one score is its mix)."""

    def both(pairs: Sequence[Any]) -> dict[str, np.ndarray]:
        return {m: scorer(run_dir, pairs, benchmark=benchmark, mode=m) for m in MODES}

    dev_s = both(dev)
    test_s = dev_s if test is dev else both(test)
    if np.array_equal(dev_s["gen"], dev_s["rep"]):  # one score stands for both (a teacher)
        return dev_s["gen"], test_s["gen"], None
    scales = MixScales.fit(dev_s["rep"], dev_s["gen"], weight)
    mixed = [np.asarray(scales(s["rep"], s["gen"])) for s in (dev_s, test_s)]
    return mixed[0], mixed[1], scales
