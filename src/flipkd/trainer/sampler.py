"""Deterministic batch order: the batch of step ``s`` is a pure function of (seed, s).

Resuming at step ``s`` therefore needs no saved data-loader state, and every
process of a multi-process run computes the same global batch and takes its
own slice.

With ``groups`` (one group id per training pair, e.g. the teacher-embedding
clusters of :mod:`flipkd.trainer.hard_batches`), an epoch visits the groups in a
seeded order and each group's pairs in a seeded order, so consecutive pairs, and
hence a batch's in-batch negatives, come mostly from one group.
"""

from __future__ import annotations

import numpy as np


def epoch_order(n: int, seed: int, epoch: int, groups: np.ndarray | None = None) -> np.ndarray:
    """A seeded permutation of ``range(n)`` for one epoch; with ``groups``, grouped: the
    groups in a seeded order, each group's members shuffled, one group after another."""
    rng = np.random.default_rng([seed, epoch])
    if groups is None:
        return rng.permutation(n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
    members = rng.permutation(n)  # shuffles within each group once the sort below is stable
    rank = np.empty(int(groups.max()) + 1, dtype=np.int64)
    rank[rng.permutation(rank.size)] = np.arange(rank.size)  # each group's place this epoch
    return members[np.argsort(rank[groups[members]], kind="stable")]


def batch_indices(
    n: int, batch_size: int, seed: int, micro_step: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Indices of micro-batch ``micro_step`` (epochs wrap; the last partial batch is dropped)."""
    if n < batch_size:
        raise ValueError(f"{n} training pairs is fewer than one batch of {batch_size}")
    per_epoch = n // batch_size
    epoch, k = divmod(micro_step, per_epoch)
    return epoch_order(n, seed, epoch, groups)[k * batch_size : (k + 1) * batch_size]


def shard(items: list, rank: int, world: int) -> list:
    """The ``rank``-th of ``world`` equal contiguous slices (``len(items)`` must divide)."""
    if len(items) % world:
        raise ValueError(f"batch of {len(items)} does not split over {world} processes")
    size = len(items) // world
    return items[rank * size : (rank + 1) * size]
