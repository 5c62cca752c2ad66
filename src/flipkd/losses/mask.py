"""Dual-threshold mask: which pairs of a batch the contrastive losses may use.

A batch holds ``B`` labelled pairs ``(a_i, b_i)``. Every loss sees ``[B, B]`` matrices whose
diagonal holds the labelled pairs and whose off-diagonal entries ``(a_i, b_j)``, ``i != j``,
are in-batch pairs. The teacher's calibrated match probability ``P`` decides which of them
are trusted:

* a labelled pair is a kept positive if ``y_i = 1`` and ``P_ii >= theta_pos``, a kept
  negative if ``y_i = 0`` and ``P_ii <= theta_neg``, and dropped otherwise (teacher and gold
  disagree, or the teacher is unsure);
* an in-batch pair is an extra negative if ``P_ij <= theta_neg`` and ignored otherwise (a
  likely false negative: the teacher thinks ``b_j`` also matches ``a_i``).

With the filter switched off (the "no filter" ablation) every labelled pair is kept by its
gold label and every in-batch pair is a negative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class PairMask:
    """Boolean ``[B, B]`` masks of the pairs a loss may use, with counts for the logs.

    Attributes:
        pos: kept positives (only ever on the diagonal).
        neg: kept negatives: labelled negatives on the diagonal, in-batch negatives off it.
        stats: ``kept_pos``, ``kept_neg``, ``dropped_pos``, ``dropped_neg``, ``disagree``,
            ``inbatch_neg``, ``inbatch_ignored``.
    """

    pos: Tensor
    neg: Tensor
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> Tensor:
        """Pairs that are either a kept positive or a kept negative."""
        return self.pos | self.neg


def check_pair_inputs(
    student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask | None = None
) -> int:
    """Check the shapes shared by every loss and return the batch size ``B``.

    Raises:
        ValueError: a matrix is not ``[B, B]``, labels are not ``[B]``, or a mask differs.
    """
    if student_sim.dim() != 2 or student_sim.shape[0] != student_sim.shape[1]:
        raise ValueError(f"student_sim must be [B, B], got {tuple(student_sim.shape)}")
    size = student_sim.shape[0]
    if teacher_sim.shape != student_sim.shape:
        raise ValueError(
            f"teacher_sim {tuple(teacher_sim.shape)} != student_sim {tuple(student_sim.shape)}"
        )
    if labels.shape != (size,):
        raise ValueError(f"labels must be [{size}], got {tuple(labels.shape)}")
    if mask is not None and (mask.pos.shape != student_sim.shape or mask.neg.shape != (size,) * 2):
        raise ValueError(f"mask must be [{size}, {size}], got {tuple(mask.pos.shape)}")
    return size


def _check_thresholds(theta_pos: float, theta_neg: float) -> None:
    if not (0.0 <= theta_neg <= 1.0 and 0.0 <= theta_pos <= 1.0):
        raise ValueError(f"thresholds must lie in [0, 1], got {theta_pos=} {theta_neg=}")
    if theta_neg >= theta_pos:
        raise ValueError(f"theta_neg ({theta_neg}) must be below theta_pos ({theta_pos})")


def _check_labels_and_probs(teacher_prob: Tensor, labels: Tensor) -> None:
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 or 1")
    if teacher_prob.numel() and not bool(((teacher_prob >= 0) & (teacher_prob <= 1)).all()):
        raise ValueError("teacher probabilities must lie in [0, 1] (and not be NaN)")


def _count(x: Tensor) -> int:
    return int(x.sum().item())


@torch.no_grad()
def dual_threshold_mask(
    teacher_prob: Tensor,
    labels: Tensor,
    theta_pos: float = 0.6,
    theta_neg: float = 0.4,
    enabled: bool = True,
) -> PairMask:
    """Build the dual-threshold mask of a batch (see the module docstring for the rule).

    Args:
        teacher_prob: ``[B, B]`` calibrated teacher match probabilities in ``[0, 1]``.
        labels: ``[B]`` gold labels of the labelled (diagonal) pairs, 0 or 1.
        theta_pos: a gold positive is kept when ``P_ii >= theta_pos``.
        theta_neg: a gold negative is kept when ``P_ii <= theta_neg``; an in-batch pair is a
            negative when ``P_ij <= theta_neg``.
        enabled: ``False`` keeps every labelled pair by its gold label and every in-batch
            pair as a negative (thresholds are then not used).

    Returns:
        The masks and their counts. ``disagree`` counts labelled pairs whose teacher
        probability lies strictly on the other side of 0.5 from the gold label.

    Raises:
        ValueError: bad shapes, labels not 0/1, probabilities outside ``[0, 1]``, or (when
            enabled) ``theta_neg >= theta_pos``.
    """
    size = check_pair_inputs(teacher_prob, teacher_prob, labels)
    _check_labels_and_probs(teacher_prob, labels)
    gold = labels.to(device=teacher_prob.device).bool()
    diag_p = torch.diagonal(teacher_prob)
    eye = torch.eye(size, dtype=torch.bool, device=teacher_prob.device)
    if enabled:
        _check_thresholds(theta_pos, theta_neg)
        keep_pos = gold & (diag_p >= theta_pos)
        keep_neg = ~gold & (diag_p <= theta_neg)
        inbatch = ~eye & (teacher_prob <= theta_neg)
    else:
        keep_pos, keep_neg, inbatch = gold, ~gold, ~eye
    stats = {
        "kept_pos": _count(keep_pos),
        "kept_neg": _count(keep_neg),
        "dropped_pos": _count(gold & ~keep_pos),
        "dropped_neg": _count(~gold & ~keep_neg),
        "disagree": _count((gold & (diag_p < 0.5)) | (~gold & (diag_p > 0.5))),
        "inbatch_neg": _count(inbatch),
        "inbatch_ignored": size * (size - 1) - _count(inbatch),
    }
    pos = torch.diag_embed(keep_pos)
    return PairMask(pos=pos, neg=torch.diag_embed(keep_neg) | inbatch, stats=stats)
