"""One micro-step of flipped distillation: forward through one module, then the loss terms.

The :class:`~flipkd.student.Student` is the single ``nn.Module`` the engine wraps (DDP,
FSDP, ...): one forward call computes the generated-label pass on this process's pairs
and the A-tap pass on this process's share of the batch's unique texts. Representations
are then gathered (differentiably) so every process sees the whole batch's [B, B]
similarity matrix, exactly as a single process would; the loss terms here take them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from flipkd.config.schema import LossConfig
from flipkd.evaluation.metrics import correlations
from flipkd.losses import (
    build_contrastive,
    build_dist,
    dual_threshold_mask,
    label_rank_loss,
    tap_rank_loss,
    total_loss,
)
from flipkd.trainer.diagnose import collapse_values, label_prior_entropy, rep_stats


@dataclass
class LossSet:
    """The built loss terms and their weights (plain values below the builder)."""

    contrastive: nn.Module | None
    dist: nn.Module | None
    gen: bool
    weights: dict[str, float]
    filter: bool
    theta_pos: float
    theta_neg: float
    gen_teacher: float = 0.0
    rep_prior: str = "data"
    # L_gen's weight of a gold positive and of a gold negative (set from the training
    # pairs by :func:`class_weights`; (1, 1): the plain mean)
    gen_class_weights: tuple[float, float] = (1.0, 1.0)
    # L_tap-rank's temperatures (teacher, student): L_dist's
    tap_rank_temps: tuple[float, float] = (0.05, 0.05)
    # L_dist's rows: "pairs" (first texts against second texts) or "texts" (every distinct
    # text of the batch against every other; batch_loss then needs the texts' view)
    dist_scope: str = "pairs"

    @property
    def needs_text_view(self) -> bool:
        return self.dist is not None and self.dist_scope == "texts"

    @property
    def needs_rep(self) -> bool:
        return (
            self.contrastive is not None or self.dist is not None
            or bool(self.weights.get("tap_rank"))
        )  # fmt: skip


_CONTRAST_HPARAMS = {
    "mcl": lambda c: {"scale": c.mcl_lambda, "margin": c.mcl_margin, "gamma": c.mcl_gamma},
    "arccse": lambda c: {"temperature": c.temperature, "margin": c.arc_margin},
    "kdmcse": lambda c: {
        "temperature": c.temperature,
        "margin": c.arc_margin,
        "theta_neg": c.theta_neg,
    },
    "infonce": lambda c: {"temperature": c.temperature},
    "cosent": lambda c: {"scale": c.mcl_lambda},
    "none": lambda c: {},
}
_DIST_HPARAMS = {
    "kl": lambda c: {"t_teacher": c.dist_t_teacher, "t_student": c.dist_t_student},
    "mse": lambda c: {},
    "none": lambda c: {},
}


def build_losses(cfg: LossConfig) -> LossSet:
    """Builder: loss config → modules and weights."""
    contrastive = build_contrastive(cfg.contrastive, **_CONTRAST_HPARAMS[cfg.contrastive](cfg))
    dist = build_dist(cfg.dist, **_DIST_HPARAMS[cfg.dist](cfg))
    weights = {
        "gen": cfg.gen_weight if cfg.gen else 0.0, "contrast": cfg.alpha, "dist": cfg.beta,
        "label_rank": cfg.label_rank if cfg.gen else 0.0, "tap_rank": cfg.tap_rank,
    }  # fmt: skip
    return LossSet(
        contrastive, dist, cfg.gen, weights, cfg.filter, cfg.theta_pos, cfg.theta_neg,
        cfg.gen_teacher, cfg.rep_prior,
        tap_rank_temps=(cfg.dist_t_teacher, cfg.dist_t_student), dist_scope=cfg.dist_scope,
    )  # fmt: skip


def gen_targets(losses: LossSet, labels: torch.Tensor, teacher_prob: torch.Tensor) -> torch.Tensor:
    """L_gen's target probability of the positive label word for each pair.

    ``(1 - λ)·gold + λ·P_teacher`` with ``λ = loss.gen_teacher``; at λ = 0 the gold
    label alone (a pair without a label counts as a non-match, as before the option).
    """
    gold = (labels > 0).float()
    lam = losses.gen_teacher
    if lam == 0.0:
        return gold
    return (1.0 - lam) * gold + lam * teacher_prob.to(gold).clamp(0.0, 1.0)


def class_weights(balance: float, pos_share: float) -> tuple[float, float]:
    """L_gen's weights of a gold positive and a gold negative (``loss.gen_balance``).

    Each class's share of the training pairs to the power ``-balance``, scaled so the
    weights average 1 over those pairs (the loss keeps its scale): ``balance`` 0 gives
    (1, 1), 1 gives each class half the total weight (``1/(2π)``, ``1/(2(1-π))``).
    """
    if balance == 0.0:
        return 1.0, 1.0
    if not 0.0 < pos_share < 1.0:
        raise ValueError(f"class weights need both classes (share of positives {pos_share})")
    raw_pos, raw_neg = pos_share**-balance, (1.0 - pos_share) ** -balance
    mean = pos_share * raw_pos + (1.0 - pos_share) * raw_neg
    return raw_pos / mean, raw_neg / mean


def gen_weights(losses: LossSet, labels: torch.Tensor) -> torch.Tensor | None:
    """Each pair's L_gen weight by its gold class; None when every weight is 1."""
    w_pos, w_neg = losses.gen_class_weights
    if w_pos == w_neg == 1.0:
        return None
    return torch.where(labels > 0, w_pos, w_neg).float()


def _teacher_view(module: nn.Module, cosine: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    return cosine if getattr(module, "teacher_input", "prob") == "cosine" else prob


def batch_loss(
    losses: LossSet,
    gen_loss: torch.Tensor | None,
    rep_a: torch.Tensor | None,
    rep_b: torch.Tensor | None,
    teacher_cos: torch.Tensor,
    teacher_prob: torch.Tensor,
    labels: torch.Tensor,
    terms_out: dict | None = None,
    parts_out: dict | None = None,
    label_logits: torch.Tensor | None = None,
    label_prob: torch.Tensor | None = None,
    text_view: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = w_gen·L_gen + α·L_contrast + β·L_dist (+ w_rank·L_rank + w_tap·L_tap-rank) on one
    global batch.

    ``label_logits`` ([n, 2]: the positive and the negative label word) and ``label_prob``
    ([n]: the teacher's calibrated probability of the same pairs) feed L_rank when its
    weight (``loss.label_rank``) is above 0: this process's pairs of the batch.

    ``text_view`` (``[N, d]`` representations of the batch's distinct texts, ``[N, N]``
    the teacher's cosines between them) is what L_dist reads under ``loss.dist_scope:
    texts`` (``losses.needs_text_view``); ValueError when that scope is set without it.

    Given ``terms_out`` (a dict), the unweighted term tensors are put there and the log
    gets the batch's diagnostics (``trainer/diagnose.py``: anisotropy, collapse values).
    Given ``parts_out``, the total's two parts go there: ``"gen"`` (w_gen·L_gen) and
    ``"rep"`` (α·L_contrast + β·L_dist + w_tap·L_tap-rank), each ``None`` when switched off
    (``train.clip_scope: term-apart`` clips their gradients apart).
    """
    terms: dict[str, torch.Tensor | None] = {"gen": gen_loss, "contrast": None, "dist": None}
    if losses.weights.get("label_rank") and label_logits is not None and label_prob is not None:
        margins = label_logits[:, 0] - label_logits[:, 1]
        terms["label_rank"] = label_rank_loss(margins.float(), label_prob)
    log: dict[str, float] = {}
    if terms_out is not None:
        terms_out.update(terms)
        if gen_loss is not None:
            log["collapse/gen"] = label_prior_entropy(labels)
    if losses.needs_rep:
        sim = rep_a @ rep_b.T
        teacher_cos, teacher_prob = teacher_cos.to(sim), teacher_prob.to(sim)
        mask = dual_threshold_mask(
            teacher_prob, labels, losses.theta_pos, losses.theta_neg, enabled=losses.filter
        )
        pair_terms = (("contrast", losses.contrastive), ("dist", losses.dist))
        text_cos = None
        if losses.needs_text_view:
            if text_view is None:
                raise ValueError("loss.dist_scope 'texts' needs the batch's texts (text_view)")
            reps, text_cos = text_view
            text_cos = text_cos.to(sim)
            terms["dist"] = losses.dist.texts(reps @ reps.T, text_cos)
            pair_terms = pair_terms[:1]
        for name, module in pair_terms:
            if module is not None:
                terms[name] = module(
                    sim, _teacher_view(module, teacher_cos, teacher_prob), labels, mask
                )
        if losses.weights.get("tap_rank"):
            t_teacher, t_student = losses.tap_rank_temps
            terms["tap_rank"] = tap_rank_loss(
                sim, teacher_cos, labels, t_teacher=t_teacher, t_student=t_student
            )
        if terms_out is not None:
            terms_out.update(contrast=terms["contrast"], dist=terms["dist"])
            log.update(rep_stats(rep_a, rep_b))
            log.update(
                collapse_values(losses, sim, teacher_cos, teacher_prob, labels, text_cos=text_cos)
            )
        log.update({f"mask/{k}": float(v) for k, v in mask.stats.items()})
        log["agree/rep_spearman"] = _spearman(sim.diagonal().detach(), teacher_prob.diagonal())
    total, term_log = total_loss(terms, losses.weights)
    log.update(term_log)
    if parts_out is not None:
        parts_out["gen"] = _weighted(terms, losses.weights, ("gen", "label_rank"))
        parts_out["rep"] = _weighted(terms, losses.weights, ("contrast", "dist", "tap_rank"))
    return total, log


def _weighted(terms: dict, weights: dict[str, float], names: tuple[str, ...]):
    """Σ weight·term over ``names`` (terms switched off or weighted 0 skipped); None if none."""
    kept = [weights[n] * terms[n] for n in names if terms.get(n) is not None and weights[n]]
    return sum(kept[1:], kept[0]) if kept else None


def _spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Rank correlation of student and teacher scores on the labelled pairs (the project's
    one Spearman, ``evaluation.correlations``: scipy, ties share their average rank); 0
    when it is undefined (fewer than two pairs, or constant scores)."""
    if x.numel() < 2:
        return 0.0
    rho = correlations(x.detach().float().cpu().numpy(), y.detach().float().cpu().numpy())
    return 0.0 if math.isnan(rho["spearman"]) else rho["spearman"] / 100
