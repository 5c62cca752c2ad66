"""InfoNCE baseline (in-batch negatives), and the masked row cross-entropy it shares.

Reference: van den Oord et al., "Representation Learning with Contrastive Predictive
Coding" (2018); for sentence pairs, Gao et al., "SimCSE" (EMNLP 2021), supervised form.
sentence-transformers calls it ``MultipleNegativesRankingLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flipkd.losses._ops import graph_zero
from flipkd.losses.mask import PairMask, check_pair_inputs


def masked_row_cross_entropy(logits: Tensor, rows: Tensor, columns: Tensor) -> Tensor:
    """Mean cross-entropy of the selected rows of ``logits``, the diagonal being the target.

    Args:
        logits: ``[B, B]`` row logits (already divided by the temperature).
        rows: ``[B]`` bool, rows that take part (their labelled pair is a kept positive).
        columns: ``[B, B]`` bool, off-diagonal candidates allowed as negatives of each row;
            the diagonal (the target) is always allowed.

    Returns:
        The mean over the selected rows, or 0 (still on the graph) when no row is selected.
    """
    if not bool(rows.any()):
        return graph_zero(logits)
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    allowed = columns | eye
    masked = logits.masked_fill(~allowed, float("-inf"))
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(masked[rows], target[rows])


def positive_rows(mask: PairMask) -> Tensor:
    """``[B]`` bool: rows whose labelled pair is a kept positive."""
    return torch.diagonal(mask.pos)


def infonce_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask,
    *,
    temperature: float = 0.05,
) -> Tensor:
    """InfoNCE over the rows whose labelled pair is a kept positive::

        L = mean_{i: (i, i) ∈ pos} −log( e^{S_ii/τ} / (e^{S_ii/τ} + Σ_{j: (i,j) ∈ neg} e^{S_ij/τ}) )

    Columns that are not kept negatives (likely false negatives) are left out of the
    denominator. No kept positive in the batch gives 0.

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` teacher scores (unused; the mask carries the teacher's say).
        labels: ``[B]`` gold labels (unused; the mask encodes them).
        mask: kept positives (diagonal) and negatives.
        temperature: ``τ``.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    return masked_row_cross_entropy(student_sim / temperature, positive_rows(mask), mask.neg)


class InfoNCELoss(nn.Module):
    """Module form of :func:`infonce_loss`, holding ``temperature`` (τ)."""

    teacher_input = "prob"

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return infonce_loss(student_sim, teacher_sim, labels, mask, temperature=self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
