"""Builders from loss names to modules, and the weighted total of the loss terms.

The trainer maps its config onto flat keyword arguments, e.g. for ``mcl``
``build_contrastive("mcl", scale=cfg.mcl_lambda, margin=cfg.mcl_margin, gamma=cfg.mcl_gamma)``.
Each loss module has a ``teacher_input`` attribute, ``"prob"`` (calibrated probabilities
``P``) or ``"cosine"`` (raw teacher cosines ``T``), naming the matrix it expects.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

from flipkd.losses.arccse import ArcCSELoss
from flipkd.losses.cosent import CoSENTLoss
from flipkd.losses.dist import KLDistLoss, MSEDistLoss
from flipkd.losses.infonce import InfoNCELoss
from flipkd.losses.kdmcse import KDMCSELoss
from flipkd.losses.mcl import MCLLoss

# name -> loss class; None means the term is switched off.
CONTRASTIVE_LOSSES: dict[str, type[nn.Module] | None] = {
    "mcl": MCLLoss,
    "arccse": ArcCSELoss,
    "kdmcse": KDMCSELoss,
    "infonce": InfoNCELoss,
    "cosent": CoSENTLoss,
    "none": None,
}
DIST_LOSSES: dict[str, type[nn.Module] | None] = {
    "kl": KLDistLoss,
    "mse": MSEDistLoss,
    "none": None,
}


def _build(table: dict[str, type[nn.Module] | None], kind: str, name: str, hparams: dict):
    if name not in table:
        raise ValueError(f"unknown {kind} loss {name!r}; choose one of {sorted(table)}")
    cls = table[name]
    if cls is None:
        return None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(hparams) - accepted
    if unknown:
        raise ValueError(f"{kind} loss {name!r} takes {sorted(accepted)}, not {sorted(unknown)}")
    return cls(**hparams)


def build_contrastive(name: str, **hparams: float) -> nn.Module | None:
    """Build a contrastive loss by name (``mcl``, ``arccse``, ``kdmcse``, ``infonce``, ``cosent``).

    Args:
        name: a key of :data:`CONTRASTIVE_LOSSES`; ``"none"`` returns ``None``.
        **hparams: the constructor arguments of that loss (e.g. ``scale``, ``margin``).

    Raises:
        ValueError: an unknown name, or a keyword the loss does not take.
    """
    return _build(CONTRASTIVE_LOSSES, "contrastive", name, hparams)


def build_dist(name: str, **hparams: float) -> nn.Module | None:
    """Build a distillation loss by name (``kl`` or ``mse``); ``"none"`` returns ``None``.

    Raises:
        ValueError: an unknown name, or a keyword the loss does not take.
    """
    return _build(DIST_LOSSES, "dist", name, hparams)


def total_loss(
    terms: dict[str, Tensor | None], weights: dict[str, float]
) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the loss terms, and a log of their (unweighted) values.

    A term is skipped when its value is ``None`` (switched off) or its weight is 0, which
    gives the ablation rows (full, no MCL, no dist, no filter) without special cases.

    Args:
        terms: name -> scalar loss tensor (or ``None``), e.g. ``{"gen": ..., "contrast": ...}``.
        weights: name -> weight (>= 0) for every name in ``terms``.

    Returns:
        ``(total, log)``: ``log`` holds each included term's value and ``"loss"``, the total.

    Raises:
        ValueError: a term without a weight, a negative weight, or no term left to sum.
    """
    total: Tensor | None = None
    log: dict[str, float] = {}
    for name, value in terms.items():
        if name not in weights:
            raise ValueError(f"loss term {name!r} has no weight")
        weight = float(weights[name])
        if weight < 0:
            raise ValueError(f"loss weight {name!r} must be >= 0, got {weight}")
        if value is None or weight == 0.0:
            continue
        log[name] = float(value.detach())
        total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("every loss term is switched off or has weight 0")
    log["loss"] = float(total.detach())
    return total, log
