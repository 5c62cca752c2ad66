"""Training diagnostics: what holds learning back, measured on the batch being trained.

Logged every ``train.diagnose_every`` steps (0: off) beside the step's loss values:

* ``grad/<term>_A``, ``grad/<term>_B``: the gradient norm each weighted loss term puts on the
  LoRA A and B matrices (one extra backward per term, so off by default);
* ``rep/mean_cos``: the mean student cosine of the batch's in-batch (mostly unrelated) pairs,
  and ``rep/eff_rank``: the effective rank of the batch's representations — both say how
  anisotropic (collapsed) the A-tap is;
* ``collapse/<term>``: the value each representation loss takes on this batch when every
  student cosine is the same (a representation that has learnt nothing), to read the term
  against; ``collapse/gen`` is the generation loss of a head that knows only the label
  prior (the entropy of the batch's labels);
* ``gen/margin_mean``, ``gen/margin_std``: the label-word logit margin (positive minus
  negative) over the batch, and ``gen/margin_gap``: its mean on gold positives minus on gold
  negatives — a head that has learnt only the format moves the mean, not the gap.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flipkd.losses import dual_threshold_mask
from flipkd.student.lora import lora_matrix_role


def effective_rank(x: Tensor) -> float:
    """exp(entropy) of the normalised singular values of ``x`` (Roy & Vetterli, 2007)."""
    s = torch.linalg.svdvals(x.detach().float())
    p = s / s.sum().clamp(min=1e-12)
    return float(torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()))


def rep_stats(rep_a: Tensor, rep_b: Tensor) -> dict[str, float]:
    """Anisotropy of the batch: mean off-diagonal cosine and effective rank of all its texts."""
    sim = (rep_a @ rep_b.T).detach()
    off = ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    reps = torch.unique(torch.cat([rep_a, rep_b]).detach(), dim=0)
    return {"rep/mean_cos": float(sim[off].mean()), "rep/eff_rank": effective_rank(reps)}


def collapse_values(
    losses, sim: Tensor, teacher_cos, teacher_prob, labels, text_cos: Tensor | None = None
) -> dict[str, float]:
    """Each representation term's value with every student cosine equal (sim's mean).

    Under ``loss.dist_scope: texts`` L_dist reads the batch's texts against each other, so
    its collapse value is taken on that form too: ``text_cos`` is the teacher's ``[N, N]``
    cosines between the batch's distinct texts (``batch_loss``'s ``text_view``).
    """
    flat = torch.full_like(sim.detach(), float(sim.detach().mean()))
    mask = dual_threshold_mask(
        teacher_prob, labels, losses.theta_pos, losses.theta_neg, enabled=losses.filter
    )
    out = {}
    if losses.needs_text_view and text_cos is not None:
        flat_texts = torch.full_like(text_cos, float(sim.detach().mean()))
        out["collapse/dist"] = float(losses.dist.texts(flat_texts, text_cos))
    for name, module in (("contrast", losses.contrastive), ("dist", losses.dist)):
        if module is not None and f"collapse/{name}" not in out:
            view = (
                teacher_cos
                if getattr(module, "teacher_input", "prob") == "cosine"
                else teacher_prob
            )
            out[f"collapse/{name}"] = float(module(flat, view, labels, mask))
    return out


def label_prior_entropy(labels: Tensor) -> float:
    """Cross-entropy of a head that predicts the batch's label frequencies (nats)."""
    p = float((labels == 1).float().mean())
    return 0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def margin_stats(label_logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Spread of the label-word margin and its gap between gold positives and negatives."""
    margin = (label_logits[:, 0] - label_logits[:, 1]).detach().float()
    out = {"gen/margin_mean": float(margin.mean()), "gen/margin_std": float(margin.std())}
    pos, neg = labels == 1, labels == 0
    if bool(pos.any()) and bool(neg.any()):
        out["gen/margin_gap"] = float(margin[pos].mean() - margin[neg].mean())
    return out


def term_grad_norms(
    terms: dict[str, Tensor | None], weights: dict[str, float], named_params
) -> dict[str, float]:
    """Norm of each weighted term's gradient on the LoRA A and B matrices (graph kept)."""
    named = [(lora_matrix_role(n), p) for n, p in named_params if p.requires_grad]
    groups = {side: [p for role, p in named if role == side] for side in ("A", "B")}
    params = groups["A"] + groups["B"]
    out = {}
    for name, value in terms.items():
        if value is None or not weights.get(name):
            continue
        grads = torch.autograd.grad(
            weights[name] * value, params, retain_graph=True, allow_unused=True
        )
        split = len(groups["A"])
        for key, part in (("A", grads[:split]), ("B", grads[split:])):
            sq = sum(float(g.detach().float().pow(2).sum()) for g in part if g is not None)
            out[f"grad/{name}_{key}"] = math.sqrt(sq)
    return out


# below this share of gold positives kept, the contrastive terms see almost no positive
FEW_POSITIVES = 0.2


def filter_coverage(losses, pairs: list, cache) -> dict[str, float] | None:
    """What the dual-threshold filter keeps of the training pairs' labelled pairs.

    ``None`` when no term reads it (no representation term, or the filter off). Otherwise the
    share of gold positives and of gold negatives whose teacher probability (at
    ``loss.rep_prior``) passes ``theta_pos`` / ``theta_neg``, and the share of positives.
    """
    labelled = [p for p in pairs if p.label is not None]
    if not (losses.needs_rep and losses.filter and labelled):
        return None
    sims = cache.pair_sim([p.text_a for p in labelled], [p.text_b for p in labelled])
    prob = cache.prob(sims, losses.rep_prior)
    gold = torch.tensor([p.label == 1 for p in labelled])
    keep_pos, keep_neg = prob >= losses.theta_pos, prob <= losses.theta_neg
    n_pos, n_neg = int(gold.sum()), int((~gold).sum())
    return {
        "pos_rate": n_pos / len(labelled),
        "kept_pos": float((keep_pos & gold).sum()) / max(n_pos, 1),
        "kept_neg": float((keep_neg & ~gold).sum()) / max(n_neg, 1),
    }


def filter_message(losses, coverage: dict[str, float]) -> tuple[str, bool]:
    """A one-line account of :func:`filter_coverage` and whether it is a warning."""
    text = (
        f"dual-threshold filter (theta_pos {losses.theta_pos}, theta_neg {losses.theta_neg}, "
        f"teacher probability at the {losses.rep_prior} prior): keeps "
        f"{coverage['kept_pos']:.0%} of the training pairs' gold positives and "
        f"{coverage['kept_neg']:.0%} of their negatives ({coverage['pos_rate']:.0%} positives)"
    )
    few = coverage["kept_pos"] < FEW_POSITIVES
    if few:
        hint = (
            "the data's share of positives holds the teacher probability down; "
            "loss.rep_prior=balanced keeps more (results/dev/atec/atec-prior/)"
            if losses.rep_prior == "data" and coverage["pos_rate"] < 0.4
            else "a lower loss.theta_pos keeps more; or check the teacher"
        )
        text += f"; the contrastive terms will see almost no positive pair: {hint}"
    return text, few
