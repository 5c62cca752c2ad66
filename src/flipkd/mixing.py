"""The third way to score a pair: the generated label and the A-tap cosine, mixed.

A student trained with ``fip`` has two scorers of a pair, and they err on different pairs:
``w · z(logit label) + (1 − w) · z(cosine)`` matches pairs better than either alone
(``docs/quality.md`` §17). ``/search`` re-ranks with it over a query's candidates; the
evaluation and the ladder score pairs with it as the ``mix`` mode, each score's ``z`` taken
from the dev pairs (as the threshold is), so a pair's score does not depend on the other pairs
scored with it. A light module (numpy only): the serve layer, the evaluation and the
benchmarks share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from flipkd.modes import RERANK_WEIGHT_DEFAULT

# the mix mode's w: /search's re-ranking weight (chosen on FAQ dev; modes.py says how)
MIX_WEIGHT_DEFAULT = RERANK_WEIGHT_DEFAULT


def label_logit(label_scores: Sequence[float]) -> np.ndarray:
    """``log p − log(1 − p)`` of the generated label's probability, clipped to 1e-6 off 0 and 1."""
    p = np.clip(np.asarray(label_scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _scaler(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    mean, spread = float(values.mean()), float(values.std())
    return (lambda x: (x - mean) / spread) if spread > 0 else np.zeros_like


def mix_scores(
    cosines: Sequence[float],
    label_scores: Sequence[float],
    weight: float = MIX_WEIGHT_DEFAULT,
    reference: tuple[Sequence[float], Sequence[float]] | None = None,
) -> list[float]:
    """``weight · z(logit(label score)) + (1 − weight) · z(cosine)`` per pair.

    ``z`` standardises with the mean and spread of ``reference`` — (cosines, label scores) of
    other pairs, such as a dev split — or, without one, of these pairs themselves (one query's
    candidates, as ``/search`` re-ranks). ``weight`` 1 returns the label scores unchanged
    (re-ranking by the generated label alone, the paper's); 0 orders by the cosine. A score
    with no spread in the reference contributes 0.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"the mix weight must lie in [0, 1], not {weight}")
    if weight == 1:
        return list(label_scores)
    ref_cos, ref_labels = reference if reference is not None else (cosines, label_scores)
    z_label = _scaler(label_logit(ref_labels))
    z_cos = _scaler(np.asarray(ref_cos, dtype=np.float64))
    cos = np.asarray(cosines, dtype=np.float64)
    return (weight * z_label(label_logit(label_scores)) + (1 - weight) * z_cos(cos)).tolist()
