"""Deterministic batch order: the batch of step ``s`` is a pure function of (seed, s).

Resuming at step ``s`` therefore needs no saved data-loader state, and every
process of a multi-process run computes the same global batch and takes its
own slice.
"""

from __future__ import annotations

import numpy as np


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` for one epoch."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n: int, batch_size: int, seed: int, micro_step: int) -> np.ndarray:
    """Indices of micro-batch ``micro_step`` (epochs wrap; the last partial batch is dropped)."""
    if n < batch_size:
        raise ValueError(f"{n} training pairs is fewer than one batch of {batch_size}")
    per_epoch = n // batch_size
    epoch, k = divmod(micro_step, per_epoch)
    return epoch_order(n, seed, epoch)[k * batch_size : (k + 1) * batch_size]


def shard(items: list, rank: int, world: int) -> list:
    """The ``rank``-th of ``world`` equal contiguous slices (``len(items)`` must divide)."""
    if len(items) % world:
        raise ValueError(f"batch of {len(items)} does not split over {world} processes")
    size = len(items) // world
    return items[rank * size : (rank + 1) * size]
