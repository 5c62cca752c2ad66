"""The two ways a student scores a pair, named once for evaluation, export and serving.

* ``gen``: the generated label — P(positive label word), in [0, 1];
* ``rep``: the representation — the cosine of the two texts' A-tap representations, in
  [-1, 1]. One scale everywhere: training aligns this cosine with the teacher's, the
  evaluation and the ladder threshold it, ``flipkd.json`` records its threshold, and the
  server returns it (``/search`` ranks by the same cosine).

A third way is derived from those two, not a model call: ``mix``, the two scores mixed as
``/search`` re-ranks (:mod:`flipkd.mixing`), which the evaluation and the ladder report beside
them (:data:`PAIR_MODES`).

Metrics of all modes share one record; rep metrics carry a ``rep_`` prefix, mix metrics a
``mix_`` one (``roc_auc`` is gen's, ``rep_roc_auc`` rep's). A light module (no torch), so the
serve layer and the CLI can import it.
"""

from __future__ import annotations

import math
from typing import Literal

Mode = Literal["gen", "rep"]
MODES: tuple[Mode, ...] = ("gen", "rep")
# the ways a pair is scored in an evaluation: the model's two and their mix
PairMode = Literal["gen", "rep", "mix"]
PAIR_MODES: tuple[PairMode, ...] = (*MODES, "mix")
# mix: a sum of z-scores, unbounded
SCORE_RANGE: dict[str, tuple[float, float]] = {
    "gen": (0.0, 1.0), "rep": (-1.0, 1.0), "mix": (-math.inf, math.inf),
}  # fmt: skip
DEFAULT_THRESHOLD: dict[Mode, float] = {"gen": 0.5, "rep": 0.0}
# /search re-ranks by w · z(logit gen) + (1 − w) · z(rep) over a query's candidates
# (flipkd.serve.ranking.mixed_scores); 1 is the paper's re-ranking by the generated label
# alone. 0.5 was picked on the BQ and MQP dev FAQs (benchmarks/fusion_pool.py,
# results/faq/dev/fusion_pooled.md): the best mean gain over the label alone among the
# weights under which no dev student's re-ranking fell below its own index.
RERANK_WEIGHT_DEFAULT = 0.5
# how many cosine candidates a re-ranking /search request rescores (Limits.rerank_candidates)
RERANK_K_DEFAULT = 20
MEANING: dict[str, str] = {
    "gen": "P(positive label word): softmax over the two label-word logits at the answer",
    "rep": "cosine of the two texts' A-tap representations, in [-1, 1]",
    "mix": "w · z(logit gen) + (1 − w) · z(rep), each z with the dev pairs' mean and spread",
}


def check_mode(mode: str) -> Mode:
    """``mode`` itself, or a :class:`ValueError` naming the known modes."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


def metric_prefix(mode: str) -> str:
    """The prefix of ``mode``'s metric names: ``""`` for gen, ``"rep_"`` / ``"mix_"``."""
    if mode not in PAIR_MODES:
        raise ValueError(f"mode must be one of {list(PAIR_MODES)}, not {mode!r}")
    return "" if mode == "gen" else f"{mode}_"


def metric_mode(key: str) -> tuple[str, str]:
    """Split a metric name into its mode and bare name (``"rep_f1"`` -> ``("rep", "f1")``)."""
    for mode in PAIR_MODES[1:]:
        if key.startswith(f"{mode}_"):
            return mode, key.removeprefix(f"{mode}_")
    return "gen", key
