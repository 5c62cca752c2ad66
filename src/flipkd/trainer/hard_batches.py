"""Teacher-clustered batches (``train.hard_batches``): harder in-batch negatives.

The representation terms compare every pair of texts in a batch; in a random
batch of customer-service questions most of those comparisons are easy (a card
fee against a password reset). Grouping the training pairs by what the teacher
says they are about makes a batch's negatives near misses, the ones retrieval
has to get right, while the teacher's own scores (MCL's margins and filter)
keep a near-paraphrase from being pushed away as if it were unrelated.

A pair's place is the normalised sum of its two texts' teacher embeddings; k-means
(scikit-learn, seeded by ``train.seed``) cuts the pairs into about ``n / size``
clusters, and :func:`flipkd.trainer.sampler.epoch_order` walks one cluster after
another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def pair_vectors(pairs: Sequence, cache) -> np.ndarray:
    """[n, d] unit vectors: each pair's two teacher embeddings added, then normalised."""
    a = cache.embed([p.text_a for p in pairs]).float().numpy()
    b = cache.embed([p.text_b for p in pairs]).float().numpy()
    vectors = a + b
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cluster_pairs(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One cluster id per row: k-means with ``round(n / size)`` clusters (at least 1)."""
    from sklearn.cluster import KMeans

    n = len(vectors)
    k = max(1, min(n, round(n / size)))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    labels = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit_predict(vectors)
    return labels.astype(np.int64)


def teacher_groups(pairs: Sequence, cache, size: int, seed: int) -> np.ndarray:
    """The cluster of each training pair by its teacher embedding (about ``size`` per cluster)."""
    groups = cluster_pairs(pair_vectors(pairs, cache), size, seed)
    counts = np.bincount(groups)
    log.info(
        "hard batches: %d training pairs in %d teacher clusters (sizes %d-%d, median %d)",
        len(pairs), counts.size, counts.min(), counts.max(), int(np.median(counts)),
    )  # fmt: skip
    return groups
