"""ArcCSE-style baseline: InfoNCE with an additive angular margin on the positive.

Reference: Zhang et al., "A Contrastive Framework for Learning Sentence Representations from
Pairwise and Triple-wise Perspective in Angular Space" (ArcCSE, ACL 2022), whose ArcCon loss
borrows the additive angular margin of ArcFace (Deng et al., CVPR 2019). Only ArcCon's
pairwise part is used here; ArcCSE's triple-wise (masked-span) objective needs augmented
texts and does not apply to labelled pairs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flipkd.losses._ops import safe_angle
from flipkd.losses.infonce import masked_row_cross_entropy, positive_rows
from flipkd.losses.mask import PairMask, check_pair_inputs


def arccse_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask,
    *,
    temperature: float = 0.05,
    margin: float = 0.1,
) -> Tensor:
    """InfoNCE whose positive logit is ``cos(θ_ii + m)`` instead of ``cos θ_ii``::

        L = mean_{i: (i, i) ∈ pos} −log( e^{cos(θ_ii + m)/τ}
                                        / (e^{cos(θ_ii + m)/τ} + Σ_{j: (i, j) ∈ neg} e^{S_ij/τ}) )

    with ``θ_ii = arccos S_ii`` (cosine clamped to ``[-1 + 1e-6, 1 - 1e-6]``). The positive
    must beat every negative by an angle ``m`` (radians). ``θ_ii + m`` is capped at ``π``
    (ArcFace's monotonicity issue: past ``π``, ``cos`` would rise again).

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` teacher scores (unused).
        labels: ``[B]`` gold labels (unused; the mask encodes them).
        mask: kept positives (diagonal) and negatives.
        temperature: ``τ``.
        margin: ``m``, additive angular margin in radians.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    eye = torch.eye(student_sim.shape[0], dtype=torch.bool, device=student_sim.device)
    angle = (safe_angle(student_sim) + margin).clamp(max=math.pi)
    logits = torch.where(eye, torch.cos(angle), student_sim) / temperature
    return masked_row_cross_entropy(logits, positive_rows(mask), mask.neg)


class ArcCSELoss(nn.Module):
    """Module form of :func:`arccse_loss`, holding ``temperature`` (τ) and ``margin`` (m)."""

    teacher_input = "prob"

    def __init__(self, temperature: float = 0.05, margin: float = 0.1) -> None:
        super().__init__()
        self.temperature, self.margin = temperature, margin

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return arccse_loss(
            student_sim,
            teacher_sim,
            labels,
            mask,
            temperature=self.temperature,
            margin=self.margin,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, margin={self.margin}"
