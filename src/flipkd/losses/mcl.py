"""Margin-aware Contrastive Learning (MCL): the student's cosines keep two kinds of margin.

Reference: "Flipping Knowledge Distillation: Leveraging Small Models' Expertise to Enhance
LLMs in Text Matching" (ACL 2025, arXiv 2507.05617). The paper's exact formula is not public;
this CoSENT-style form (Su, 2022) is flipkd's reading of its description: positives and
negatives are kept apart, and the order *inside* each class follows the teacher.
"""

from __future__ import annotations

from torch import Tensor, nn

from flipkd.losses._ops import cross_pair_lse, log1p_exp, lse_of, ordered_pair_lse
from flipkd.losses.mask import PairMask, check_pair_inputs


def _zone2_terms(student: Tensor, prob: Tensor, scale: float, gamma: float) -> Tensor | None:
    # exp(λ(γ(p_u − p_v) − (S_u − S_v))) = exp(a_u − a_v) with a = λ(γp − S).
    return ordered_pair_lse(scale * (gamma * prob - student), prob)


def mcl_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask,
    *,
    scale: float = 20.0,
    margin: float = 0.1,
    gamma: float = 1.0,
) -> Tensor:
    """Margin-aware contrastive loss over the kept pairs of a batch.

    With ``S`` the student cosines, ``P`` the teacher probabilities, ``λ = scale``,
    ``m = margin``, ``γ = gamma`` and ``pos``/``neg`` the kept pairs of ``mask``::

        L1 = log(1 + Σ_{n ∈ neg, p ∈ pos} exp(λ (S_n − S_p + m)))
        L2 = log(1 + Σ_{u, v in the same class, P_u > P_v} exp(λ (γ (P_u − P_v) − (S_u − S_v))))
        L_MCL = L1 + L2

    Zone 1 asks every kept negative to sit at least ``m`` below every kept positive; zone 2
    asks a pair the teacher rates higher by ``ΔP`` to stay higher by at least ``γ ΔP``
    (pairs with equal ``P`` are not compared). An empty zone contributes an exact 0.

    Both double sums factorise (zone 1 into two sums, zone 2 into a prefix sum after sorting
    by ``P``), so the loss costs ``O(K log K)`` time and ``O(K)`` memory for ``K`` kept pairs,
    never the ``K²`` matrix of pairwise differences; all sums run through ``logsumexp``, so
    large ``λ`` cannot overflow. The result equals the naive double loop (see the tests).

    Args:
        student_sim: ``[B, B]`` student cosines (diagonal: labelled pairs).
        teacher_sim: ``[B, B]`` calibrated teacher probabilities ``P`` (used as targets only).
        labels: ``[B]`` gold labels (the mask already encodes them; checked for shape).
        mask: kept positives and negatives, from :func:`dual_threshold_mask`.
        scale: ``λ``, the sharpness of the soft maximum.
        margin: ``m``, the gap between classes, in cosine units.
        gamma: ``γ``, cosine gap required per unit of teacher probability gap inside a class.

    Returns:
        A scalar tensor.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    prob = teacher_sim.detach()
    s_pos, s_neg = student_sim[mask.pos], student_sim[mask.neg]
    zone1 = cross_pair_lse(scale * s_neg, -scale * s_pos)
    if zone1 is not None:
        zone1 = zone1 + scale * margin
    zone2 = lse_of(
        [
            _zone2_terms(s_pos, prob[mask.pos], scale, gamma),
            _zone2_terms(s_neg, prob[mask.neg], scale, gamma),
        ]
    )
    return log1p_exp(zone1, student_sim) + log1p_exp(zone2, student_sim)


class MCLLoss(nn.Module):
    """Module form of :func:`mcl_loss`, holding ``scale`` (λ), ``margin`` (m) and ``gamma`` (γ).

    Inputs: ``(student_sim [B, B], teacher_prob [B, B], labels [B], mask)``; output: scalar.
    """

    teacher_input = "prob"

    def __init__(self, scale: float = 20.0, margin: float = 0.1, gamma: float = 1.0) -> None:
        super().__init__()
        self.scale, self.margin, self.gamma = scale, margin, gamma

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return mcl_loss(
            student_sim,
            teacher_sim,
            labels,
            mask,
            scale=self.scale,
            margin=self.margin,
            gamma=self.gamma,
        )

    def extra_repr(self) -> str:
        return f"scale={self.scale}, margin={self.margin}, gamma={self.gamma}"
