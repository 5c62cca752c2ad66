"""L_rank: the generated label ranks the batch's pairs as the teacher does (not the paper's).

The paper's terms align the A-tap's similarities with the teacher's; the generated label
learns from gold labels alone (L_gen). ``docs/quality.md`` section 18 measured that the
flipped terms do not make the label rank pairs more like the teacher. This term asks it to,
listwise over the pairs of a batch:

    L_rank = KL( softmax_i(logit P_teacher(i)) || softmax_i(m_i / τ) )

where ``m_i`` is the label's log-odds for pair ``i`` (logit of the positive label word minus
that of the negative one) and ``P_teacher(i)`` the teacher's calibrated probability of the
pair. Both sides are log-odds, so ``τ = 1`` compares them on one scale. A softmax over the
batch ignores a shift common to every pair, so the term moves the label's ranking and not
its prior (the level L_gen calibrates): unlike L_gen against the teacher's probability
(``loss.gen_teacher``), which is pointwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flipkd.losses._ops import graph_zero, listwise_kl

PROB_FLOOR = 1e-4  # a teacher probability of 0 or 1 would give an infinite log-odds


def label_rank_loss(margins: Tensor, teacher_prob: Tensor, t_student: float = 1.0) -> Tensor:
    """Listwise KL from the teacher's log-odds distribution over the pairs to the label's.

    Args:
        margins: ``[n]`` label log-odds per pair (positive word's logit − negative word's).
        teacher_prob: ``[n]`` teacher's calibrated match probability per pair (target only).
        t_student: ``τ``, temperature of the label's distribution.

    Returns:
        A scalar; 0 (in the graph) for fewer than two pairs, which have no ranking.

    Raises:
        ValueError: inputs of other shapes than two equal vectors.
    """
    if margins.dim() != 1 or margins.shape != teacher_prob.shape:
        raise ValueError(
            f"label_rank_loss needs two [n] vectors, got {tuple(margins.shape)} and "
            f"{tuple(teacher_prob.shape)}"
        )
    if margins.numel() < 2:
        return graph_zero(margins)
    p = teacher_prob.detach().to(margins).clamp(PROB_FLOOR, 1.0 - PROB_FLOOR)
    return listwise_kl(margins / t_student, torch.log(p) - torch.log1p(-p))
