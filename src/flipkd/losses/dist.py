"""L_dist: align the student's similarities with the teacher's directly.

Two forms, chosen by ``loss.dist`` in the config:

* ``kl`` (default): listwise, per row of the in-batch similarity matrix (Hinton et al., 2015
  "Distilling the Knowledge in a Neural Network"; the in-batch listwise form as in RocketQAv2,
  Ren et al., EMNLP 2021). Expects the teacher's **raw cosines** ``T``. Its rows are the
  pairs' first texts against every second text (``loss.dist_scope: pairs``), or, with
  ``loss.dist_scope: texts`` (:func:`kl_texts_dist_loss`, not the paper's), every distinct
  text of the batch against every other one, both sides alike.
* ``mse``: pointwise on calibrated scores over the kept pairs. Expects the teacher's
  **calibrated probabilities** ``P``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flipkd.losses._ops import graph_zero
from flipkd.losses.mask import PairMask, check_pair_inputs


def kl_dist_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    mask: PairMask | None = None,
    *,
    t_teacher: float = 0.05,
    t_student: float = 0.05,
) -> Tensor:
    """Row-wise KL divergence from the teacher's to the student's in-batch distribution::

        L = (1/B) Σ_i KL( softmax(T_i· / τ_t) || softmax(S_i· / τ_s) )

    Every row sees all ``B`` candidates ``b_j``; the mask is not applied, because the soft
    teacher target already carries its uncertainty (a likely false negative simply gets a
    high target probability). ``labels`` and ``mask`` are accepted for the common signature.

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` raw teacher cosines ``T`` (a target: no gradient flows into it).
        labels: ``[B]`` gold labels (unused).
        mask: unused.
        t_teacher: ``τ_t``, temperature of the teacher distribution.
        t_student: ``τ_s``, temperature of the student distribution.

    Raises:
        ValueError: ``B < 2`` (a single candidate gives no distribution to match).
    """
    size = check_pair_inputs(student_sim, teacher_sim, labels, mask)
    if size < 2:
        raise ValueError("the KL distillation loss needs a batch of at least 2 pairs")
    return _row_kl(student_sim, teacher_sim, t_teacher, t_student)


def kl_texts_dist_loss(
    student_sim: Tensor, teacher_sim: Tensor, *, t_teacher: float = 0.05, t_student: float = 0.05
) -> Tensor:
    """Row-wise KL over every distinct text of the batch against every *other* one::

        L = (1/N) Σ_i KL( softmax_{j≠i}(T_ij / τ_t) || softmax_{j≠i}(S_ij / τ_s) )

    The pair form (:func:`kl_dist_loss`) reads ``B`` rows of ``B`` candidates: a first
    text against the second texts. Here the ``N ≤ 2B`` texts of the same batch (both sides,
    each side with itself) are each a row of ``N − 1`` candidates, so the student is asked
    for the teacher's whole in-batch geometry (as relational distillation does, Park et al.,
    CVPR 2019) at no extra forward pass. A text's cosine with itself is left out of its row
    (it is 1 for both models and says nothing).

    Args:
        student_sim: ``[N, N]`` student cosines between the batch's distinct texts.
        teacher_sim: ``[N, N]`` raw teacher cosines between the same texts, same order (a
            target: no gradient flows into it).
        t_teacher: ``τ_t``, temperature of the teacher distribution.
        t_student: ``τ_s``, temperature of the student distribution.

    Returns:
        A scalar; 0 (in the graph) with fewer than 3 texts, whose rows hold one candidate.

    Raises:
        ValueError: the matrices are not square or not of the same shape.
    """
    n = student_sim.shape[0]
    if student_sim.dim() != 2 or student_sim.shape != (n, n):
        raise ValueError(f"student_sim must be square [N, N], got {tuple(student_sim.shape)}")
    if teacher_sim.shape != student_sim.shape:
        raise ValueError(
            f"teacher_sim {tuple(teacher_sim.shape)} must match student_sim "
            f"{tuple(student_sim.shape)}"
        )
    if n < 3:
        return graph_zero(student_sim)
    others = ~torch.eye(n, dtype=torch.bool, device=student_sim.device)
    return _row_kl(
        student_sim[others].view(n, n - 1),
        teacher_sim[others].view(n, n - 1),
        t_teacher,
        t_student,
    )


def _row_kl(student: Tensor, teacher: Tensor, t_teacher: float, t_student: float) -> Tensor:
    """Mean over rows of KL(softmax(teacher / τ_t) || softmax(student / τ_s))."""
    target = F.log_softmax(teacher.detach() / t_teacher, dim=1)
    log_q = F.log_softmax(student / t_student, dim=1)
    return F.kl_div(log_q, target, reduction="batchmean", log_target=True)


def mse_dist_loss(
    student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
) -> Tensor:
    """Mean squared error between rescaled student cosines and teacher probabilities::

        L = mean_{(i, j) kept} ( (S_ij + 1) / 2 − P_ij )²

    ``(S + 1) / 2`` maps a cosine onto ``[0, 1]`` without a learned calibration, so the loss
    has no extra parameters; it asks for absolute agreement (a student cosine of 0.2 for a
    teacher probability of 0.6), which is stricter than the ranking losses. Only the kept
    pairs count (the mask's positives and negatives); with none kept the loss is 0.

    Args:
        student_sim: ``[B, B]`` student cosines.
        teacher_sim: ``[B, B]`` calibrated teacher probabilities ``P`` (target only).
        labels: ``[B]`` gold labels (unused).
        mask: kept pairs.
    """
    check_pair_inputs(student_sim, teacher_sim, labels, mask)
    kept = mask.kept
    if not bool(kept.any()):
        return graph_zero(student_sim)
    return F.mse_loss((student_sim[kept] + 1.0) / 2.0, teacher_sim.detach()[kept])


class KLDistLoss(nn.Module):
    """Module form of :func:`kl_dist_loss`; expects raw teacher cosines as ``teacher_sim``."""

    teacher_input = "cosine"

    def __init__(self, t_teacher: float = 0.05, t_student: float = 0.05) -> None:
        super().__init__()
        self.t_teacher, self.t_student = t_teacher, t_student

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return kl_dist_loss(
            student_sim,
            teacher_sim,
            labels,
            mask,
            t_teacher=self.t_teacher,
            t_student=self.t_student,
        )

    def texts(self, student_sim: Tensor, teacher_sim: Tensor) -> Tensor:
        """:func:`kl_texts_dist_loss` at this module's temperatures (``dist_scope: texts``)."""
        return kl_texts_dist_loss(
            student_sim, teacher_sim, t_teacher=self.t_teacher, t_student=self.t_student
        )

    def extra_repr(self) -> str:
        return f"t_teacher={self.t_teacher}, t_student={self.t_student}"


class MSEDistLoss(nn.Module):
    """Module form of :func:`mse_dist_loss`; expects teacher probabilities as ``teacher_sim``."""

    teacher_input = "prob"

    def forward(
        self, student_sim: Tensor, teacher_sim: Tensor, labels: Tensor, mask: PairMask
    ) -> Tensor:
        return mse_dist_loss(student_sim, teacher_sim, labels, mask)
