"""CoSENT baseline: rank the labelled pairs by their gold label.

Reference: Su Jianlin, "CoSENT: a more efficient sentence vector scheme than Sentence-BERT"
(2022); as ``CoSENTLoss`` in sentence-transformers. Here it runs on the diagonal of the
student's cosine matrix, with no teacher: the "student without distillation" row.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flipkd.losses._ops import log1p_exp, ordered_pair_lse
from flipkd.losses.mask import PairMask, check_pair_inputs


def cosent_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask,
    *,
    scale: float = 20.0,
) -> Tensor:
    """CoSENT over the kept labelled pairs::

        L = log(1 + Σ_{i, j kept, y_i > y_j} exp(λ (S_jj − S_ii)))

    Only the diagonal (labelled pairs) is used; a labelled pair takes part when the mask
    keeps it (with the filter off, all do). ``labels`` may also be graded scores: any
    ``y_i > y_j`` forms a pair. Computed in ``O(B log B)`` by sorting on ``y``.

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` teacher scores (unused; part of the common signature).
        labels: ``[B]`` gold labels.
        mask: kept pairs; only its diagonal matters here.
        scale: ``λ``.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    kept = torch.diagonal(mask.kept)
    scores = torch.diagonal(student_sim)[kept]
    gold = labels.to(device=student_sim.device, dtype=student_sim.dtype)[kept]
    # exp(λ(S_j − S_i)) = exp(a_i − a_j) with a = −λS, for y_i > y_j.
    return log1p_exp(ordered_pair_lse(-scale * scores, gold), student_sim)


class CoSENTLoss(nn.Module):
    """Module form of :func:`cosent_loss`, holding ``scale`` (λ)."""

    teacher_input = "prob"

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return cosent_loss(student_sim, teacher_sim, labels, mask, scale=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
