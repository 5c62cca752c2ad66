"""Metrics tables: markdown for people, JSON for programs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flipkd.paths import atomic_file, write_json

# Display order of known metrics; others follow in insertion order.
_ORDER = ["accuracy", "f1", "precision", "recall", "ap", "roc_auc", "spearman", "pearson"]
_CORRELATIONS = ("spearman", "pearson")


def format_value(key: str, value: Any) -> str:
    """Format one metric: ratios with 4 decimals, correlations (×100) with 2, counts as ints."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    decimals = 2 if any(c in key for c in _CORRELATIONS) else 4
    return f"{value:.{decimals}f}"


def signed_interval(diff: float, ci: Sequence[float]) -> str:
    """``+0.018 [+0.003, +0.033]``: a difference and its interval, as the tables print them."""
    low, high = ci
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"


def retrieval_row(label: str, metrics: Mapping[str, float], differences: Sequence) -> str:
    """``| label | top-1 | top-5 | MRR@10 | diff [ci] | ... |``: one row of an FAQ comparison
    table, each of ``differences`` a ``(diff, ci)`` pair printed by :func:`signed_interval`."""
    cells = [f"{metrics[k]:.3f}" for k in ("top1", "top5", "mrr@10")]
    cells += [signed_interval(diff, ci) for diff, ci in differences]
    return f"| {label} | " + " | ".join(cells) + " |"


def _ordered(metrics: Mapping[str, Any]) -> list[str]:
    known = [k for k in _ORDER if k in metrics]
    return known + [k for k in metrics if k not in known]


def metrics_table(
    rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str] | None = None
) -> str:
    """A markdown table with one row per named metrics dict.

    Args:
        rows: Row label → metrics dict (e.g. ``{"zero-shot": {...}, "fine-tuned": {...}}``).
        columns: Metrics to show; default: every metric of the first row, known ones first.
    """
    if not rows:
        return ""
    first = next(iter(rows.values()))
    cols = list(columns) if columns is not None else _ordered(first)
    lines = [
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label, metrics in rows.items():
        cells = [format_value(c, metrics[c]) if c in metrics else "" for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_metrics(metrics: Mapping[str, Any], json_path: Path, md_path: Path | None = None) -> None:
    """Write a metrics dict as JSON and (optionally) as a one-row markdown table."""
    write_json(Path(json_path), dict(metrics))
    if md_path is not None:
        flat = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
        with atomic_file(Path(md_path)) as fh:
            fh.write(metrics_table({"": flat}))
