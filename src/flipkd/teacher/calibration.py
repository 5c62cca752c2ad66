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

A fitted map gives P(match | cosine) at the share of positives it was fitted on
(``pos_rate``). ``apply(sim, prior="balanced")`` gives it at an even prior instead: the
log-odds of ``pos_rate`` are taken out, ``logit(p') = logit(p) - logit(pos_rate)`` (for the
logistic map, exactly a shift of its intercept), so a probability says how much the cosine
alone speaks for a match, whatever the share of positives in the data. On a set with few
positives (ATEC: 18%) the data-prior probability of a gold positive rarely reaches 0.6.
"""

from __future__ import annotations

import logging
import math
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
    # share of positives among the pairs it was fitted on (None: fitted before it was kept)
    pos_rate: float | None = None

    def apply(self, sim: torch.Tensor, prior: str = "data") -> torch.Tensor:
        """Probabilities for a tensor of cosines (same shape).

        Args:
            sim: Cosines.
            prior: ``"data"``: P(match) at the fitted pairs' share of positives;
                ``"balanced"``: at an even prior (see the module docstring). The identity
                map has no prior and returns the same for both.

        Raises:
            ValueError: an unknown ``prior``, or ``"balanced"`` on a map fitted before the
                share of positives was kept (rebuild the teacher cache).
        """
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if prior == "data" or self.method == "identity":
            return _APPLY[self.method](self, sim)
        if self.pos_rate is None:
            raise ValueError(
                "this calibration was fitted before flipkd kept its share of positives, so "
                "it cannot give a balanced-prior probability; rebuild the teacher cache"
            )
        return _BALANCED[self.method](self, sim, -_logit(self.pos_rate))

    def describe(self) -> str:
        """``"logistic, fitted on 1000 pairs (18% positive)"``, for a command's output."""
        if self.method == "identity":
            return "identity (no labelled pairs of both classes to fit on)"
        rate = "" if self.pos_rate is None else f" ({self.pos_rate:.0%} positive)"
        return f"{self.method}, fitted on {self.n} pairs{rate}"

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


PRIORS = ("data", "balanced")
_EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _balanced_logistic(cal: Calibration, sim: torch.Tensor, shift: float) -> torch.Tensor:
    return torch.sigmoid(cal.coef * sim + cal.intercept + shift)


def _balanced_isotonic(cal: Calibration, sim: torch.Tensor, shift: float) -> torch.Tensor:
    """``sigmoid(logit(p) + shift)``; 0 and 1 stay (the map's flat ends)."""
    prob = _apply_isotonic(cal, sim)
    shifted = torch.sigmoid(torch.logit(prob.clamp(_EPS, 1.0 - _EPS)) + shift)
    return torch.where((prob <= 0) | (prob >= 1), prob, shifted)


_APPLY: dict[str, Callable[[Calibration, torch.Tensor], torch.Tensor]] = {
    "logistic": _apply_logistic,
    "isotonic": _apply_isotonic,
    "identity": _apply_identity,
}
_BALANCED: dict[str, Callable[[Calibration, torch.Tensor, float], torch.Tensor]] = {
    "logistic": _balanced_logistic,
    "isotonic": _balanced_isotonic,
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
    rate = float(y.mean())
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
    coef, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if coef > 0:
        return Calibration("logistic", coef=coef, intercept=intercept, n=int(y.size), pos_rate=rate)
    log.warning("calibration: logistic slope %.3g is not positive; using isotonic", coef)
    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x.ravel(), y)
    return Calibration(
        "isotonic",
        x=[float(v) for v in iso.X_thresholds_],
        y=[float(v) for v in iso.y_thresholds_],
        n=int(y.size),
        pos_rate=rate,
    )
