"""Teacher calibration: map a cosine similarity to P(match).

Fitted once per cache on the train split's gold labels and stored in the cache
manifest, so the student's losses (dual threshold θ_pos/θ_neg) see
probabilities rather than raw cosines, whose scale differs between teachers.

Methods, tried in order:

* ``logistic`` — scikit-learn ``LogisticRegression`` on the cosine alone:
  ``p = sigmoid(coef · cos + intercept)``. Used when ``coef > 0`` (monotone
  increasing: a higher cosine never gives a lower probability).
* ``isotonic`` — scikit-learn ``IsotonicRegression(increasing=True)``, stored
  as its breakpoints and applied by linear interpolation (what its ``predict``
  does). Used when the logistic slope is not positive (a teacher whose cosine
  does not rise with the label), because it is monotone by construction.
* ``identity`` — ``p = (cos + 1) / 2``. Used when there are no gold labels of
  both classes to fit anything on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """A fitted cosine → probability map (JSON-serialisable)."""

    method: str
    coef: float = 0.0
    intercept: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    n: int = 0

    def apply(self, sim: torch.Tensor) -> torch.Tensor:
        """Probabilities for a tensor of cosines (same shape)."""
        return _APPLY[self.method](self, sim)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def _apply_logistic(cal: Calibration, sim: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(cal.coef * sim + cal.intercept)


def _apply_isotonic(cal: Calibration, sim: torch.Tensor) -> torch.Tensor:
    flat = sim.detach().to("cpu", torch.float64).numpy().ravel()
    out = np.interp(flat, cal.x, cal.y)
    return torch.from_numpy(out).to(sim.device, sim.dtype).reshape(sim.shape)


def _apply_identity(cal: Calibration, sim: torch.Tensor) -> torch.Tensor:
    return ((sim + 1) / 2).clamp(0, 1)


_APPLY: dict[str, Callable[[Calibration, torch.Tensor], torch.Tensor]] = {
    "logistic": _apply_logistic,
    "isotonic": _apply_isotonic,
    "identity": _apply_identity,
}


def fit_calibration(sims: np.ndarray, labels: np.ndarray) -> Calibration:
    """Fit P(match | cosine) on labelled pairs; always monotone increasing.

    Args:
        sims: Teacher cosine per pair.
        labels: Gold 0/1 per pair (pairs without a label must be left out).

    Returns:
        A logistic calibration, or the documented fallback (see module docstring).
    """
    x = np.asarray(sims, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(labels, dtype=np.int64).ravel()
    if y.size == 0 or y.min() == y.max():
        log.warning("calibration: no labels of both classes; using (cos + 1) / 2")
        return Calibration("identity", n=int(y.size))
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
    coef, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if coef > 0:
        return Calibration("logistic", coef=coef, intercept=intercept, n=int(y.size))
    log.warning("calibration: logistic slope %.3g is not positive; using isotonic", coef)
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x.ravel(), y)
    return Calibration(
        "isotonic",
        x=[float(v) for v in iso.X_thresholds_],
        y=[float(v) for v in iso.y_thresholds_],
        n=int(y.size),
    )
