"""The report of a teacher run: how its scores separate the classes and where it errs.

Written to ``RUN/report/``:

* ``dev_scores.png`` — histograms of the teacher cosine and of the calibrated
  probability, positives against negatives, on dev.
* ``metrics.json`` / ``metrics.md`` — the dev metrics table and the
  disagreement table: for each threshold t in 0.3..0.7 on the calibrated
  probability, how often ``P(match) >= t`` disagrees with the gold label; and,
  for the dual threshold the student's filter uses (keep pairs with
  ``P <= 1 - t`` or ``P >= t``), the share kept and the disagreement among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from flipkd.evaluation import metrics_table  # noqa: E402
from flipkd.paths import atomic_file, write_json  # noqa: E402
from flipkd.teacher.calibration import Calibration  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def disagreement_table(
    probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
) -> list[dict[str, float]]:
    """Teacher/gold disagreement at each probability threshold (see module docstring)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    rows = []
    for t in thresholds:
        pred = probs >= t
        lo, hi = min(t, 1 - t), max(t, 1 - t)
        kept = (probs <= lo) | (probs >= hi)
        kept_wrong = (pred != labels)[kept] if hi > lo else (pred != labels)
        rows.append(
            {
                "threshold": t,
                "predicted_positive": float(pred.mean()),
                "disagree": float((pred != labels).mean()),
                "false_positive": float((pred & (labels == 0)).mean()),
                "false_negative": float((~pred & (labels == 1)).mean()),
                "band": f"[{lo:.1f}, {hi:.1f}]",
                "band_kept": float(kept.mean()),
                "band_disagree": float(kept_wrong.mean()) if kept_wrong.size else float("nan"),
            }
        )
    return rows


def plot_scores(sims: np.ndarray, probs: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Two histograms (cosine, calibrated probability), positives vs negatives, as a PNG."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = [
        (axes[0], sims, "teacher cosine", (float(sims.min()), float(sims.max()))),
        (axes[1], probs, "calibrated P(match)", (0.0, 1.0)),
    ]
    for ax, values, title, (low, high) in panels:
        bins = np.linspace(low, max(high, low + 1e-6), 41)
        for cls, name in ((1, "positive"), (0, "negative")):
            chosen = values[labels == cls]
            ax.hist(chosen, bins=bins, alpha=0.6, label=f"{name} (n={chosen.size})")
        ax.set_title(f"dev: {title}")
        ax.set_xlabel(title)
        ax.set_ylabel("pairs")
        ax.legend()
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def write_teacher_report(
    out_dir: Path,
    dev_sims: np.ndarray,
    dev_labels: np.ndarray,
    calibration: Calibration,
    metrics: Mapping[str, Any],
    *,
    title: str = "teacher",
) -> dict[str, Path]:
    """Write the plots and tables of one teacher run; returns their paths by name.

    Args:
        out_dir: Usually ``RUN/report``.
        dev_sims: Teacher cosine per dev pair.
        dev_labels: Gold 0/1 per dev pair.
        calibration: The cache's calibration (cosine → probability).
        metrics: Dev metrics (a flat dict, e.g. from :class:`flipkd.evaluation.PairEvaluator`).
        title: Heading of the markdown file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sims = np.asarray(dev_sims, dtype=np.float64)
    labels = np.asarray(dev_labels, dtype=np.int64)
    probs = calibration.apply(torch.from_numpy(sims)).numpy()
    rows = disagreement_table(probs, labels)
    paths = {
        "plot": out_dir / "dev_scores.png",
        "json": out_dir / "metrics.json",
        "markdown": out_dir / "metrics.md",
    }
    plot_scores(sims, probs, labels, paths["plot"])
    write_json(
        paths["json"],
        {
            "dev": dict(metrics),
            "disagreement": rows,
            "calibration": calibration.to_dict(),
        },
    )
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    table = metrics_table({f"t={r['threshold']:.1f}": r for r in rows})
    text = (
        f"# {title}\n\n## Dev metrics\n\n{metrics_table({'dev': flat})}\n"
        f"## Teacher vs gold on dev (calibration: {calibration.method})\n\n{table}\n"
        f"![dev scores]({paths['plot'].name})\n"
    )
    with atomic_file(paths["markdown"]) as fh:
        fh.write(text)
    return paths
