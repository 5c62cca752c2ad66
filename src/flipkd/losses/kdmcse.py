"""KDMCSE-style baseline: teacher-scaled angular margins on negatives, teacher-filtered negatives.

Reference: Nguyen et al., "KDMCSE: Knowledge Distillation Multimodal Sentence Embeddings with
Adaptive Angular margin Contrastive Learning" (NAACL 2024). Its AdapACSE objective scales an
angular margin by ``Δ_ij = |1 − α_ij|``, ``α_ij`` being the teacher's similarity of the pair,
and drops negatives the teacher finds too similar (a threshold). The paper's full equations
were not available offline; the form below is flipkd's reading of that description, with the
teacher's calibrated probability ``P_ij`` as ``α_ij``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flipkd.losses._ops import safe_angle
from flipkd.losses.infonce import masked_row_cross_entropy, positive_rows
from flipkd.losses.mask import PairMask, check_pair_inputs


def kdmcse_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask,
    *,
    temperature: float = 0.05,
    margin: float = 0.1,
    theta_neg: float = 0.4,
) -> Tensor:
    """InfoNCE whose negatives are pulled closer by a margin that grows with teacher dissimilarity::

        m_ij = m (1 − P_ij)
        L = mean_{i: (i, i) ∈ pos} −log( e^{S_ii/τ}
                / (e^{S_ii/τ} + Σ_{j ∈ N_i} e^{cos(max(θ_ij − m_ij, 0))/τ}) )
        N_i = { j : (i, j) ∈ neg and P_ij <= theta_neg }

    with ``θ_ij = arccos S_ij``. A negative is scored as if it were ``m_ij`` radians closer,
    so the positive must beat it by that angle: a negative the teacher finds clearly
    unrelated (``P_ij ≈ 0``) must be pushed a full ``m`` further away, one it finds
    borderline only a little. Negatives with ``P_ij > theta_neg`` are left out whether or not
    the dual-threshold filter is on (KDMCSE's own filtering); ``max(·, 0)`` keeps the angle
    valid. Rows without a kept positive do not take part.

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` calibrated teacher probabilities ``P`` (target only).
        labels: ``[B]`` gold labels (unused; the mask encodes them).
        mask: kept positives (diagonal) and negatives.
        temperature: ``τ``.
        margin: ``m``, the largest angular margin, in radians.
        theta_neg: negatives with ``P_ij`` above this are dropped.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    prob = teacher_sim.detach()
    eye = torch.eye(student_sim.shape[0], dtype=torch.bool, device=student_sim.device)
    neg_angle = (safe_angle(student_sim) - margin * (1.0 - prob)).clamp(min=0.0)
    logits = torch.where(eye, student_sim, torch.cos(neg_angle)) / temperature
    columns = mask.neg & (prob <= theta_neg)
    return masked_row_cross_entropy(logits, positive_rows(mask), columns)


class KDMCSELoss(nn.Module):
    """Module form of :func:`kdmcse_loss` (``temperature``, ``margin``, ``theta_neg``)."""

    teacher_input = "prob"

    def __init__(self, temperature: float = 0.05, margin: float = 0.1, theta_neg: float = 0.4):
        super().__init__()
        self.temperature, self.margin, self.theta_neg = temperature, margin, theta_neg

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return kdmcse_loss(
            student_sim,
            teacher_sim,
            labels,
            mask,
            temperature=self.temperature,
            margin=self.margin,
            theta_neg=self.theta_neg,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, margin={self.margin}, theta_neg={self.theta_neg}"
