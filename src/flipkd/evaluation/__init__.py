"""Evaluation shared by teacher and student: metrics, evaluators, tables."""

from flipkd.evaluation.evaluator import (
    PairEvaluator,
    benchmark_slug,
    evaluate_run,
    read_run_info,
    register_run_kind,
    run_kinds,
)
from flipkd.evaluation.metrics import (
    best_threshold,
    bootstrap_ci,
    bootstrap_interval,
    correlations,
    graded_metrics,
    pair_metric,
    pair_metrics,
    resampled_pair_metric,
)
from flipkd.evaluation.report import format_value, metrics_table, write_metrics

__all__ = [
    "PairEvaluator",
    "benchmark_slug",
    "best_threshold",
    "bootstrap_ci",
    "bootstrap_interval",
    "correlations",
    "evaluate_run",
    "format_value",
    "graded_metrics",
    "metrics_table",
    "pair_metric",
    "pair_metrics",
    "read_run_info",
    "register_run_kind",
    "resampled_pair_metric",
    "run_kinds",
    "write_metrics",
]
