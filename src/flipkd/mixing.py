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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flipkd.modes import RERANK_WEIGHT_DEFAULT

# the mix mode's w: /search's re-ranking weight (chosen on FAQ dev; modes.py says how)
MIX_WEIGHT_DEFAULT = RERANK_WEIGHT_DEFAULT


def label_logit(label_scores: Sequence[float]) -> np.ndarray:
    """``log p − log(1 − p)`` of the generated label's probability, clipped to 1e-6 off 0 and 1."""
    p = np.clip(np.asarray(label_scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class MixScales:
    """The mix mode's ``z`` scales: mean and spread of the label's logit and of the cosine on
    reference pairs (dev), and the label's weight. Fitted once, they score any pair alone —
    what an exported model keeps (``flipkd.json``'s ``mix``) to serve the mode."""

    weight: float
    label_mean: float
    label_std: float
    cosine_mean: float
    cosine_std: float

    @classmethod
    def fit(
        cls, cosines: Sequence[float], label_scores: Sequence[float], weight: float
    ) -> MixScales:
        if not 0 <= weight <= 1:
            raise ValueError(f"the mix weight must lie in [0, 1], not {weight}")
        logits, cos = label_logit(label_scores), np.asarray(cosines, dtype=np.float64)
        if logits.size == 0 or cos.size != logits.size:
            raise ValueError(
                f"the mix scales need as many cosines as label scores (> 0), not {cos.size} "
                f"and {logits.size}"
            )
        return cls(weight, float(logits.mean()), float(logits.std()), float(cos.mean()),
                   float(cos.std()))  # fmt: skip

    def __call__(self, cosines: Sequence[float], label_scores: Sequence[float]) -> list[float]:
        """The mix of each pair; a score with no spread on the reference pairs adds 0."""
        if self.weight == 1:
            return [float(x) for x in label_scores]

        def z(values: np.ndarray, mean: float, spread: float) -> np.ndarray:
            return (values - mean) / spread if spread > 0 else np.zeros_like(values)

        cos = np.asarray(cosines, dtype=np.float64)
        label = z(label_logit(label_scores), self.label_mean, self.label_std)
        return (
            self.weight * label + (1 - self.weight) * z(cos, self.cosine_mean, self.cosine_std)
        ).tolist()


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
    ref_cos, ref_labels = reference if reference is not None else (cosines, label_scores)
    if weight == 1:
        return list(label_scores)
    return MixScales.fit(ref_cos, ref_labels, weight)(cosines, label_scores)
