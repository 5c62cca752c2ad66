"""Retrieval metrics from the rank of the right answer in each query's result list.

A *rank* is the 1-based position of the right entry in the list the system
returned for a query, or ``None`` when it is not in the list. From those:

* top-k accuracy (hit rate at k): the share of queries with ``rank <= k``;
* MRR@k: the mean over queries of ``1 / rank`` when ``rank <= k``, else 0.

Every query counts (a miss scores 0), so systems are compared on the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flipkd.evaluation.metrics import bootstrap_interval

Rank = int | None


def rank_of(ranked_ids: Sequence[str], gold: str) -> Rank:
    """1-based position of ``gold`` in ``ranked_ids`` (first occurrence), or None."""
    for position, entry_id in enumerate(ranked_ids, start=1):
        if entry_id == gold:
            return position
    return None


def _checked(ranks: Sequence[Rank]) -> list[Rank]:
    ranks = list(ranks)
    if not ranks:
        raise ValueError("no queries to score")
    for rank in ranks:
        if rank is not None and (isinstance(rank, bool) or int(rank) != rank or rank < 1):
            raise ValueError(f"a rank is 1-based or None, not {rank!r}")
    return ranks


def top_k(ranks: Sequence[Rank], k: int) -> float:
    """Share of queries whose right entry is among the first ``k`` results."""
    ranks = _checked(ranks)
    return sum(r is not None and r <= k for r in ranks) / len(ranks)


def mrr(ranks: Sequence[Rank], k: int) -> float:
    """Mean reciprocal rank, counting only ranks up to ``k`` (others score 0)."""
    ranks = _checked(ranks)
    return float(np.mean([1.0 / r if r is not None and r <= k else 0.0 for r in ranks]))


def retrieval_metrics(ranks: Sequence[Rank]) -> dict[str, float]:
    """``top1``, ``top5``, ``mrr@10`` and ``n`` (queries) for one system."""
    return {
        "top1": top_k(ranks, 1),
        "top5": top_k(ranks, 5),
        "mrr@10": mrr(ranks, 10),
        "n": len(_checked(ranks)),
    }


PER_QUERY = {
    "top1": lambda rank: top_k([rank], 1),
    "top5": lambda rank: top_k([rank], 5),
    "mrr@10": lambda rank: mrr([rank], 10),
}  # each metric of :func:`retrieval_metrics` query by query (their means are the metrics)


def paired_difference(
    ranks_a: Sequence[Rank], ranks_b: Sequence[Rank], resamples: int, seed: int = 0
) -> dict[str, dict]:
    """Per metric: A, B, B − A and its 95% interval, the queries resampled for both at once.

    ``ranks_a[i]`` and ``ranks_b[i]`` must be the same query's; the interval is the paired
    bootstrap of :func:`flipkd.evaluation.metrics.bootstrap_interval`.
    """
    ranks_a, ranks_b = _checked(ranks_a), _checked(ranks_b)
    if len(ranks_a) != len(ranks_b):
        raise ValueError(f"{len(ranks_a)} ranks against {len(ranks_b)}: not the same queries")
    rows = {}
    for name, per_query in PER_QUERY.items():
        va = np.array([per_query(r) for r in ranks_a])
        vb = np.array([per_query(r) for r in ranks_b])
        diff = vb - va
        low, high = bootstrap_interval(
            lambda index, d=diff: d[index].mean(axis=1), diff.size, resamples, seed
        )
        rows[name] = {"a": va.mean(), "b": vb.mean(), "diff": diff.mean(), "ci": [low, high]}
    return rows
