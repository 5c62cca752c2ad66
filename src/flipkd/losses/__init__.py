"""Losses on ``[B, B]`` similarity matrices: MCL, L_dist, the dual-threshold mask, baselines;
L_rank (``label_rank``) on the generated label's log-odds per pair, and its A-tap analogue
L_tap-rank (``tap_rank``) on the labelled pairs' cosines.

Every loss has the signature ``loss(student_sim, teacher_sim, labels, mask) -> scalar``: the
math is a function of tensors only, wrapped by a small ``nn.Module`` holding the
hyperparameters. See :mod:`flipkd.losses.mask` for the batch layout.
"""

from __future__ import annotations

from flipkd.losses.arccse import ArcCSELoss, arccse_loss
from flipkd.losses.combine import (
    CONTRASTIVE_LOSSES,
    DIST_LOSSES,
    build_contrastive,
    build_dist,
    total_loss,
)
from flipkd.losses.cosent import CoSENTLoss, cosent_loss
from flipkd.losses.dist import (
    KLDistLoss,
    MSEDistLoss,
    kl_dist_loss,
    kl_texts_dist_loss,
    mse_dist_loss,
)
from flipkd.losses.infonce import InfoNCELoss, infonce_loss
from flipkd.losses.kdmcse import KDMCSELoss, kdmcse_loss
from flipkd.losses.label_rank import label_rank_loss
from flipkd.losses.mask import PairMask, dual_threshold_mask
from flipkd.losses.mcl import MCLLoss, mcl_loss
from flipkd.losses.tap_rank import tap_rank_loss

__all__ = [
    "CONTRASTIVE_LOSSES",
    "DIST_LOSSES",
    "ArcCSELoss",
    "CoSENTLoss",
    "InfoNCELoss",
    "KDMCSELoss",
    "KLDistLoss",
    "MCLLoss",
    "MSEDistLoss",
    "PairMask",
    "arccse_loss",
    "build_contrastive",
    "build_dist",
    "cosent_loss",
    "dual_threshold_mask",
    "infonce_loss",
    "kdmcse_loss",
    "label_rank_loss",
    "kl_dist_loss",
    "kl_texts_dist_loss",
    "mcl_loss",
    "mse_dist_loss",
    "tap_rank_loss",
    "total_loss",
]
