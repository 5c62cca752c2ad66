"""Which model a teacher run keeps: the best dev checkpoint, or the untrained base model.

The base model counts as the step-0 candidate, but it replaces the best checkpoint only when
it beat every checkpoint on dev *and* the paired bootstrap interval of its lead lies above 0:
on a small dev set (ATEC's 100 pairs hold ~18 positives) the base wins by noise, and keeping
it threw the fine-tuning away (docs/quality.md §21).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from flipkd.config.schema import TeacherConfig
from flipkd.teacher import encoder

log = logging.getLogger(__name__)


def dev_scores(model: Any, dev: Sequence[Any], batch_size: int) -> tuple[np.ndarray, float]:
    """Cosine per dev pair and the encode throughput (texts/s)."""
    unique = sorted({t for p in dev for t in (p.text_a, p.text_b)})
    start = time.perf_counter()
    emb = encoder.encode_texts(model, unique, batch_size=batch_size)
    rate = len(unique) / max(time.perf_counter() - start, 1e-9)
    row = {t: i for i, t in enumerate(unique)}
    a = emb[[row[p.text_a] for p in dev]]
    b = emb[[row[p.text_b] for p in dev]]
    return (a * b).sum(-1).numpy().astype(np.float64), rate


BASE_LEAD_RESAMPLES = 1000  # bootstrap resamples behind keeping the base model

# a dev set with fewer gold positives than this makes average precision, and so the choice
# between the base and the trained checkpoints, noisy (ATEC's 100-pair dev sample holds ~18:
# it kept the base where 1,000 dev pairs kept the trained teacher, docs/quality.md §21)
FEW_DEV_POSITIVES = 100


def dev_metric(dev: Sequence[Any]) -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The checkpoint metric's name and ``f(gold, scores)``: AP for 0/1 labels, Spearman
    for graded scores, as ``teacher.fit``'s dev evaluator chooses."""
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score

    if all(p.label is not None for p in dev):
        return "average precision", average_precision_score
    return "Spearman", lambda gold, scores: float(spearmanr(gold, scores)[0])


def base_lead(
    base_scores: np.ndarray,
    ckpt_scores: np.ndarray,
    dev: Sequence[Any],
    n: int = BASE_LEAD_RESAMPLES,
) -> tuple[float, float, float]:
    """The base model's lead over a checkpoint on the dev metric, with a paired 95% bootstrap
    interval (both models scored on the same resamples of the dev pairs): (lead, low, high)."""
    from flipkd.evaluation.metrics import bootstrap_interval

    _, fn = dev_metric(dev)
    gold = np.array([p.label if p.label is not None else p.score for p in dev], dtype=np.float64)

    def lead(index: np.ndarray) -> np.ndarray:
        out = np.full(len(index), np.nan)
        for r, i in enumerate(index):
            if np.ptp(gold[i]) > 0:  # a resample of one class has no AP
                out[r] = fn(gold[i], base_scores[i]) - fn(gold[i], ckpt_scores[i])
        return out

    low, high = bootstrap_interval(lead, len(dev), n, seed=0)
    return fn(gold, base_scores) - fn(gold, ckpt_scores), low, high


def keep_base(
    base: encoder.TeacherSource, best: Path | None, dev: Sequence[Any], cfg: TeacherConfig,
    info: dict[str, Any],
) -> bool:  # fmt: skip
    """Whether the untrained base model is kept instead of the best checkpoint (the rule in
    the module's docstring). Records the comparison in ``info``."""
    if best is None or info["best_value"] is None or info["base_value"] <= info["best_value"]:
        return False
    name, _ = dev_metric(dev)
    base_scores, _ = dev_scores(encoder.load_encoder(base), dev, cfg.encode_batch_size)
    encoder.carry_load_kwargs(base.model_dir, best)
    ckpt = encoder.load_encoder(replace(base, model_dir=best))
    ckpt_scores, _ = dev_scores(ckpt, dev, cfg.encode_batch_size)
    lead, low, high = base_lead(base_scores, ckpt_scores, dev)
    keep = bool(low > 0)
    info["base_lead"] = {
        "metric": name, "base": info["base_value"], "checkpoint": info["best_value"],
        "checkpoint_step": info["best_step"], "lead": lead, "ci_low": low, "ci_high": high,
        "kept": "base" if keep else "checkpoint",
    }  # fmt: skip
    log.warning(
        "the base model beat every checkpoint on dev %s (%.4f against %.4f at step %s; lead "
        "%+.4f, 95%% interval [%+.4f, %+.4f]): %s%s", name, info["base_value"],
        info["best_value"], info["best_step"], lead, low, high,
        "keeping the base" if keep else "within dev noise, keeping the trained checkpoint",
        few_positives(dev),
    )  # fmt: skip
    return keep


def few_positives(dev: Sequence[Any]) -> str:
    """A hint for the keep-the-base warning when dev has few gold positives, else ''."""
    if any(p.label is None for p in dev):
        return ""
    positives = sum(p.label == 1 for p in dev)
    if positives >= FEW_DEV_POSITIVES:
        return ""
    return (
        f"; dev holds {len(dev)} pairs with {positives} positives: a larger dev sample "
        "(data.max_dev_pairs) makes this choice steadier"
    )
