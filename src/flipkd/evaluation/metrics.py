"""Pair-matching metrics, all computed by scikit-learn and scipy.

Conventions (the same for teacher and student):

* A pair is predicted a match when ``score >= threshold``.
* Ratios (accuracy, F1, precision, recall, AP, ROC-AUC) are in 0–1.
* Correlations (``spearman``, ``pearson``) are multiplied by 100, as the STS,
  CoSENT and AnglE papers report them (ATEC test Spearman 50.81 for CoSENT).
  For binary gold labels the Spearman correlation between scores and labels is
  reported too: that is how the Chinese matching literature scores ATEC, BQ and
  LCQMC.
* A metric that is undefined on the data (ROC-AUC with one class, a correlation
  of a constant) is ``nan``, never an exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy import stats
from sklearn import metrics as skm

ArrayLike = Sequence[float] | np.ndarray
ThresholdMetric = Literal["f1", "accuracy"]


def _arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if s.size == 0:
        raise ValueError("no pairs to score")
    return s, y


def _binary(labels: np.ndarray) -> np.ndarray:
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0/1; found {labels[bad][0]!r}")
    return labels.astype(np.int64)


def _safe(fn: Callable[[], float]) -> float:
    """Call a metric; undefined (one class, constant input) becomes nan."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(fn())
        except ValueError:
            return math.nan
    return value


def correlations(scores: ArrayLike, gold: ArrayLike) -> dict[str, float]:
    """Spearman and Pearson correlation between scores and gold, ×100 (scipy), as
    :func:`pair_metrics` computes them."""
    s, g = _arrays(scores, gold)
    g = g.astype(np.float64)
    return {
        name: _safe(lambda fn=_PAIR_METRICS[name]: fn(s, g, None))
        for name in ("spearman", "pearson")
    }


def graded_metrics(scores: ArrayLike, gold: ArrayLike) -> dict[str, float]:
    """Metrics for graded gold scores (STS style): Spearman and Pearson ×100."""
    return correlations(scores, gold)


# Binary-pair metrics: name -> f(scores, labels, predictions). One table, used by
# pair_metrics and by the bootstrap (which needs a single metric, fast).
_PAIR_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda s, y, p: skm.accuracy_score(y, p),
    "f1": lambda s, y, p: skm.f1_score(y, p, zero_division=0),
    "precision": lambda s, y, p: skm.precision_score(y, p, zero_division=0),
    "recall": lambda s, y, p: skm.recall_score(y, p, zero_division=0),
    "ap": lambda s, y, p: skm.average_precision_score(y, s),
    "roc_auc": lambda s, y, p: skm.roc_auc_score(y, s),
    "spearman": lambda s, y, p: 100 * stats.spearmanr(s, y).statistic,
    "pearson": lambda s, y, p: 100 * stats.pearsonr(s, y).statistic,
}


def pair_metric(name: str, threshold: float) -> Callable[[np.ndarray, np.ndarray], float]:
    """One metric of :func:`pair_metrics` as ``f(scores, labels) -> float`` (for bootstraps)."""
    if name not in _PAIR_METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(_PAIR_METRICS)}")
    fn = _PAIR_METRICS[name]
    return lambda s, y: _safe(lambda: fn(s, y, (s >= threshold).astype(np.int64)))


def _rank_rows(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, axis=1, method="average")


def _rows_accuracy(s: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (p == y).mean(axis=1)


def _rows_f1(s: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tp = (p & y).sum(axis=1)
    denom = p.sum(axis=1) + y.sum(axis=1)  # 2tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(len(s)), where=denom > 0)


def _rows_roc_auc(s: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mann-Whitney form of the ROC area (ties count half), as sklearn's trapezoids give."""
    pos = y.sum(axis=1)
    neg = y.shape[1] - pos
    rank_sum = (_rank_rows(s) * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def _rows_ap(s: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sklearn's average precision: sum over thresholds of (R_k - R_k-1) * P_k.

    With scores sorted high to low, each positive adds ``1 / positives`` of recall at the
    end of its group of tied scores, where precision is read.
    """
    order = np.argsort(-s, axis=1, kind="stable")
    ss, yy = np.take_along_axis(s, order, 1), np.take_along_axis(y, order, 1)
    width = ss.shape[1]
    precision = yy.cumsum(axis=1) / np.arange(1, width + 1)
    is_end = np.ones_like(ss, dtype=bool)
    is_end[:, :-1] = ss[:, :-1] != ss[:, 1:]
    ends = np.where(is_end, np.arange(width), width)
    group_end = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    pos = yy.sum(axis=1)
    total = (yy * np.take_along_axis(precision, group_end, 1)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / pos


def _rows_spearman(s: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    a, b = _rank_rows(s), _rank_rows(y)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return 100 * r


# Metrics of many resamples at once: name -> f(scores, labels, predictions), each [resamples, n].
_ROWS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "accuracy": _rows_accuracy,
    "f1": _rows_f1,
    "roc_auc": _rows_roc_auc,
    "ap": _rows_ap,
    "spearman": _rows_spearman,
}
# where the closed forms above differ from sklearn/scipy (one class), those take over
_ONE_CLASS_BY_SKLEARN = {"ap"}


def resampled_pair_metric(
    name: str, threshold: float, scores: ArrayLike, labels: ArrayLike, index: np.ndarray
) -> np.ndarray:
    """``pair_metric(name, threshold)`` of every resample ``scores[index[i]]``, at once.

    ``index`` is ``[resamples, n]``. The metrics the reports bootstrap (accuracy, F1,
    ROC-AUC, AP, Spearman) are computed for all rows together (the same values as the
    scikit-learn/scipy calls, to float rounding; tested); any other metric falls back
    to one call per resample. Undefined values are nan, as in :func:`pair_metric`.
    """
    s, y = _arrays(scores, labels)
    y = _binary(y)
    ss, yy = s[index], y[index]
    if name not in _ROWS:
        fn = pair_metric(name, threshold)
        return np.array([fn(a, b) for a, b in zip(ss, yy, strict=True)])
    values = _ROWS[name](ss, yy, (ss >= threshold).astype(np.int64)).astype(np.float64)
    pos = yy.sum(axis=1)
    one_class = (pos == 0) | (pos == yy.shape[1])
    if name in _ONE_CLASS_BY_SKLEARN and one_class.any():
        fn = pair_metric(name, threshold)
        values[one_class] = [fn(a, b) for a, b in zip(ss[one_class], yy[one_class], strict=True)]
    return values


def pair_metrics(scores: ArrayLike, labels: ArrayLike, threshold: float) -> dict[str, float]:
    """Classification and ranking metrics of binary pairs at a fixed threshold.

    Args:
        scores: One similarity per pair, higher means more alike.
        labels: Gold 0/1 per pair.
        threshold: Pairs with ``score >= threshold`` are predicted matches.

    Returns:
        accuracy, f1, precision, recall (at the threshold), ap, roc_auc
        (threshold-free), spearman and pearson (×100), threshold, n, positives.
    """
    s, y = _arrays(scores, labels)
    y = _binary(y)
    pred = (s >= threshold).astype(np.int64)
    out = {name: _safe(lambda fn=fn: fn(s, y, pred)) for name, fn in _PAIR_METRICS.items()}
    out.update({"threshold": float(threshold), "n": int(y.size), "positives": int(y.sum())})
    return out


def _f1_candidates(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    precision, recall, thresholds = skm.precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return thresholds, f1


def _accuracy_candidates(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
    pos, neg = y.sum(), y.size - y.sum()
    accuracy = (tpr * pos + (1 - fpr) * neg) / y.size
    # roc_curve's first threshold is +inf ("predict no match"): keep it finite for JSON.
    thresholds = np.where(np.isinf(thresholds), np.nextafter(s.max(), np.inf), thresholds)
    return thresholds, accuracy


_CANDIDATES: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "f1": _f1_candidates,
    "accuracy": _accuracy_candidates,
}


def best_threshold(scores: ArrayLike, labels: ArrayLike, metric: ThresholdMetric = "f1") -> float:
    """The threshold that maximises ``metric`` on these pairs.

    Candidates are the thresholds of scikit-learn's ``precision_recall_curve``
    (for F1) or ``roc_curve`` (for accuracy), i.e. every distinct score. Ties go
    to the highest threshold (the most conservative one).

    Raises:
        ValueError: Unknown metric, labels not 0/1, or labels of one class only.
    """
    if metric not in _CANDIDATES:
        raise ValueError(f"unknown threshold metric {metric!r}; choose from {sorted(_CANDIDATES)}")
    s, y = _arrays(scores, labels)
    y = _binary(y)
    if y.min() == y.max():
        raise ValueError("threshold search needs both positive and negative pairs")
    thresholds, values = _CANDIDATES[metric](s, y)
    best = values.max()
    return float(thresholds[values == best].max())


BOOTSTRAP_CHUNK = 2_000_000  # resampled pairs held at once (a few arrays of this size)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    size: int,
    n: int,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    ignore_nan: bool = True,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resamples of ``size`` pairs.

    The one bootstrap of flipkd: every interval (``flipkd eval --ci``, the ladder's
    tables and claims, the sweep report) resamples pairs here.

    Args:
        statistic: Maps an index ``[r, size]`` (each row one resample, with replacement)
            to ``r`` values; it may score several runs on the same resamples.
        size: How many pairs there are.
        n: Number of resamples (0: no interval, ``(nan, nan)``).
        seed: Seed of ``numpy.random.default_rng``. Indices are drawn as
            ``rng.integers(0, size, (rows, size))`` in blocks of about
            ``BOOTSTRAP_CHUNK`` pairs, which gives the same resamples as one draw (and as
            ``scipy.stats.bootstrap`` with the same generator).
        confidence: Two-sided confidence level.
        ignore_nan: Leave out resamples where the statistic is undefined; otherwise one
            such resample makes the interval nan.
    """
    if n <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    block = max(1, BOOTSTRAP_CHUNK // size)
    values = []
    for start in range(0, n, block):
        index = rng.integers(0, size, (min(block, n - start), size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # e.g. a mean of nan only
            values.append(np.asarray(statistic(index), dtype=np.float64))
    tail = round(50 * (1 - confidence), 12)  # 2.5 for 95%, not 2.5000000000000027
    percentile = np.nanpercentile if ignore_nan else np.percentile
    low, high = percentile(np.concatenate(values), [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    scores: ArrayLike,
    labels: ArrayLike,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    n: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(scores, labels)``.

    Pairs are resampled together (:func:`bootstrap_interval`).

    Args:
        scores: One score per pair.
        labels: Gold per pair.
        metric_fn: ``f(scores, labels) -> float`` on numpy arrays.
        n: Number of bootstrap resamples.
        seed: Seed of the resampling.
        confidence: Two-sided confidence level.

    Returns:
        (low, high); nan where the metric is undefined on any resample.
    """
    s, y = _arrays(scores, labels)

    def statistic(index: np.ndarray) -> np.ndarray:
        return np.array([_safe(lambda i=i: metric_fn(s[i], y[i])) for i in index])

    return bootstrap_interval(statistic, s.size, n, seed, confidence, ignore_nan=False)
