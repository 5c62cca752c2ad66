"""Dev evaluation during training: both scoring modes, threshold-free metrics for selection."""

from __future__ import annotations

import numpy as np

from flipkd.evaluation import best_threshold, pair_metrics
from flipkd.modes import MODES
from flipkd.student import Student, score_pairs


def evaluate_dev(
    student: Student, dev_pairs: list, *, need_rep: bool = True, max_pairs: int | None = None
) -> dict[str, float]:
    """``{mode}_{metric}`` for gen (and rep) mode on labelled dev pairs."""
    pairs = [p for p in dev_pairs if p.label is not None][:max_pairs]
    labels = np.array([p.label for p in pairs])
    out: dict[str, float] = {}
    for mode in MODES if need_rep else ("gen",):
        scores = score_pairs(student, [(p.text_a, p.text_b) for p in pairs], mode=mode)
        metrics = pair_metrics(scores, labels, best_threshold(scores, labels, "f1"))
        for key in ("roc_auc", "ap", "f1", "accuracy", "spearman"):
            out[f"{mode}_{key}"] = float(metrics[key])
    return out
