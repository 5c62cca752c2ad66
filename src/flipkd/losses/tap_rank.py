"""L_tap-rank: the A-tap ranks the batch's labelled pairs as the teacher does (not the paper's).

L_dist (``kl``) matches each *row* of the in-batch cosine matrix: text ``a_i`` against every
``b_j``. A softmax over a row ignores a shift common to that row, so L_dist never compares
one labelled pair ``(a_i, b_i)`` with another ``(a_j, b_j)``; yet that comparison is all the
A-tap is scored on (its cosine ranks the labelled pairs: rep ROC-AUC and Spearman) and all
``/search`` needs when a query's candidates differ in how close they are. This term asks
for it, listwise over the diagonal, at L_dist's temperatures::

    L_tap-rank = KL( softmax_i(T_ii / τ_t) || softmax_i(S_ii / τ_s) )

with ``T`` the teacher's raw cosines and ``S`` the student's. Like L_rank for the label
(``losses/label_rank.py``) it moves the ranking and not the level.
"""

from __future__ import annotations

from torch import Tensor

from flipkd.losses._ops import graph_zero, listwise_kl
from flipkd.losses.mask import check_pair_inputs


def tap_rank_loss(
    student_sim: Tensor,
    teacher_sim: Tensor,
    labels: Tensor,
    *,
    t_teacher: float = 0.05,
    t_student: float = 0.05,
) -> Tensor:
    """Listwise KL from the teacher's distribution over the labelled pairs to the A-tap's.

    Args:
        student_sim: ``[B, B]`` student cosines (diagonal: the labelled pairs).
        teacher_sim: ``[B, B]`` raw teacher cosines ``T`` (a target: no gradient flows).
        labels: ``[B]`` gold labels (unused: the teacher's order is the target; checked for
            shape like every loss's).
        t_teacher: ``τ_t``, temperature of the teacher's distribution.
        t_student: ``τ_s``, temperature of the student's.

    Returns:
        A scalar; 0 (in the graph) for a batch of one pair, which has no ranking.
    """
    size = check_pair_inputs(student_sim, teacher_sim, labels)
    if size < 2:
        return graph_zero(student_sim)
    return listwise_kl(student_sim.diagonal() / t_student, teacher_sim.diagonal() / t_teacher)
