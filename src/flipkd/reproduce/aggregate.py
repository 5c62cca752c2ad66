"""Seed means and bootstrap 95% intervals per row; ``results.json`` and ``table.md``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from flipkd.evaluation import bootstrap_interval, resampled_pair_metric
from flipkd.modes import metric_mode, metric_prefix

CI_METRICS = ("f1", "accuracy", "ap", "roc_auc", "spearman")
TABLE_COLUMNS = (
    ("f1", "F1"), ("accuracy", "Acc"), ("ap", "AP"), ("roc_auc", "AUC"), ("spearman", "Spearman"),
    ("rep_f1", "rep F1"), ("rep_ap", "rep AP"), ("rep_roc_auc", "rep AUC"),
    ("rep_spearman", "rep Spearman"), ("mix_roc_auc", "mix AUC"),
)  # fmt: skip


def _bootstrap(runs: list[dict], mode: str, metric: str, n: int, seed: int) -> tuple[float, float]:
    """95% interval of the seed-averaged test metric, resampling test pairs.

    Every seed's run is scored on the same resamples of the test pairs (they share them),
    and each resample's value is the mean over seeds.
    """
    if n <= 0:
        return float("nan"), float("nan")
    prefix = metric_prefix(mode)
    series = [
        (run["scores"]["test"][mode], run["scores"]["test"]["labels"],
         run["metrics"][f"{prefix}threshold"])
        for run in runs
    ]  # fmt: skip

    def seed_mean(idx: np.ndarray) -> np.ndarray:  # nan where undefined in every seed
        per_run = [resampled_pair_metric(metric, thr, s, y, idx) for s, y, thr in series]
        return np.nanmean(np.vstack(per_run), axis=0)

    return bootstrap_interval(seed_mean, len(series[0][1]), n, seed)


def paired_difference_interval(
    runs_a: list[dict],
    runs_b: list[dict],
    mode: str,
    metric: str,
    n: int,
    seed: int = 0,
    mode_b: str | None = None,
) -> tuple[float, float]:
    """95% interval of ``mean_seeds(a) − mean_seeds(b)``, seed-paired, test pairs resampled.

    Runs are paired by seed (they share teacher, data order and test pairs); every resample
    of the test pairs is applied to both rows of every seed, so the interval reflects the
    difference's own noise, not that of two independent intervals. ``a`` is scored in
    ``mode``, ``b`` in ``mode_b`` (default: the same mode).
    """
    by_seed = {r["seed"]: r for r in runs_b}
    pairs = [(a, by_seed[a["seed"]]) for a in runs_a if a["seed"] in by_seed]
    if n <= 0 or not pairs:
        return float("nan"), float("nan")

    def value(run: dict, run_mode: str, idx: np.ndarray) -> np.ndarray:
        test = run["scores"]["test"]
        threshold = run["metrics"][f"{metric_prefix(run_mode)}threshold"]
        return resampled_pair_metric(metric, threshold, test[run_mode], test["labels"], idx)

    other = mode_b or mode

    def mean_difference(idx: np.ndarray) -> np.ndarray:
        diffs = [value(a, mode, idx) - value(b, other, idx) for a, b in pairs]
        return np.nanmean(np.vstack(diffs), axis=0)

    size = len(pairs[0][0]["scores"]["test"]["labels"])
    return bootstrap_interval(mean_difference, size, n, seed)


def aggregate_rows(results: list[dict], order: list[str], bootstrap: int) -> list[dict[str, Any]]:
    """One entry per row: every metric's mean, interval and per-seed values."""
    by_row: dict[str, list[dict]] = defaultdict(list)
    for res in results:
        by_row[res["row"]].append(res)
    rows = []
    for name in order:
        runs = sorted(by_row.get(name, []), key=lambda r: r["seed"])
        if not runs:
            continue
        metrics: dict[str, Any] = {}
        for key in runs[0]["metrics"]:
            seeds = [r["metrics"][key] for r in runs]
            entry = {"mean": float(np.mean(seeds)), "seeds": seeds}
            mode, base = metric_mode(key)
            if base in CI_METRICS:
                entry["ci_low"], entry["ci_high"] = _bootstrap(runs, mode, base, bootstrap, 0)
            metrics[key] = entry
        row = {"name": name, "metrics": metrics, "seeds": len(runs),
               "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
               "train_seconds_seeds": [r["train_seconds"] for r in runs],
               "dev_metrics": {k: float(np.mean([r["dev_metrics"][k] for r in runs]))
                               for k in runs[0].get("dev_metrics", {})}}  # fmt: skip
        if "teacher_metrics" in runs[0]:
            row["teacher_metrics"] = {
                k: float(np.mean([r["teacher_metrics"][k] for r in runs]))
                for k in runs[0]["teacher_metrics"]
            }
        rows.append(row)
    return rows


def _cell(entry: dict | None, digits: int = 3) -> str:
    if entry is None:
        return "–"
    text = f"{entry['mean']:.{digits}f}"
    if "ci_low" in entry and np.isfinite(entry["ci_low"]):
        text += f" [{entry['ci_low']:.{digits}f}, {entry['ci_high']:.{digits}f}]"
    return text


def _digits(metric: str) -> int:
    """Spearman is reported ×100 (one decimal); the rest are fractions (three)."""
    return 1 if metric.endswith("spearman") else 3


def markdown_table(rows: list[dict]) -> str:
    """The results table (mean over seeds, bootstrap 95% CI over test pairs)."""
    head = "| row | " + " | ".join(title for _, title in TABLE_COLUMNS) + " | train s |"
    sep = "|" + "---|" * (len(TABLE_COLUMNS) + 2)
    lines = [head, sep]
    for row in rows:
        cells = [_cell(row["metrics"].get(key), _digits(key)) for key, _ in TABLE_COLUMNS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
    return "\n".join(lines)
