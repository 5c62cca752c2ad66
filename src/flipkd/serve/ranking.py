"""How ``/search`` turns a query into ranked FAQ entries, without FastAPI.

The app (:mod:`flipkd.serve.app`) and ``flipkd faq eval`` share these functions,
so an offline evaluation ranks exactly as the service does:

* :func:`model_handlers`: the batch functions the server runs in its worker
  thread (``encode`` and one scorer per mode), with the same checks (finite
  embeddings, scores clipped to their mode's range);
* :func:`search_depth`: how many cosine candidates a request fetches;
* :func:`rerank_pairs` / :func:`order_by_scores`: the (query, FAQ question) pairs
  the generated label scores, and the order the scores put the hits in;
* :func:`mixed_scores`: the re-ranking score when a request mixes the cosine back in
  (``rerank_weight`` < 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from flipkd.mixing import mix_scores
from flipkd.modes import MODES, PAIR_MODES, SCORE_RANGE
from flipkd.serve.index import FaqIndex, Hit
from flipkd.serve.protocol import Matcher


def encode_checked(matcher: Matcher, texts: list[str]) -> list[np.ndarray]:
    """``matcher.encode`` as float32 rows; non-finite embeddings are an error."""
    vectors = np.asarray(matcher.encode(texts), dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError(f"{matcher.name} returned non-finite embeddings")
    return list(vectors)


def score_checked(matcher: Matcher, mode: str, pairs: list[tuple[str, str]]) -> list[float]:
    """``matcher.score_pairs`` in ``mode``, clipped to the mode's range (gen [0, 1], rep [-1, 1],
    mix unbounded); non-finite scores are an error."""
    scores = np.asarray(matcher.score_pairs(pairs, mode=mode), dtype=np.float64).reshape(-1)
    if not np.isfinite(scores).all():
        raise ValueError(f"{matcher.name} returned non-finite {mode} scores")
    return np.clip(scores, *SCORE_RANGE[mode]).tolist()


def served_modes(matcher: Matcher) -> tuple[str, ...]:
    """The pair modes ``matcher`` serves: gen and rep, and mix where its threshold has one
    (an export whose ``flipkd.json`` holds the mix mode's dev scales)."""
    return tuple(m for m in PAIR_MODES if m in MODES or m in matcher.threshold)


def model_handlers(matcher: Matcher) -> dict[str, Callable[[list[Any]], list[Any]]]:
    """Batch functions per kind: ``encode`` plus one scorer per served mode."""
    handlers: dict[str, Any] = {"encode": partial(encode_checked, matcher)}
    handlers.update({mode: partial(score_checked, matcher, mode) for mode in served_modes(matcher)})
    return handlers


def search_depth(k: int, rerank: bool, rerank_candidates: int) -> int:
    """Cosine candidates to fetch: ``k``, or at least ``rerank_candidates`` when re-ranking."""
    return max(k, rerank_candidates) if rerank else k


def rerank_pairs(index: FaqIndex, query: str, hits: Sequence[Hit]) -> list[tuple[str, str]]:
    """The pairs the generated label scores: (query, candidate's FAQ question)."""
    return [(query, index.entries[h.position].question) for h in hits]


def order_by_scores(hits: Sequence[Hit], scores: Sequence[float]) -> list[tuple[Hit, float]]:
    """Hits with their re-ranking scores, highest first (ties keep the cosine order)."""
    return sorted(zip(hits, scores, strict=True), key=lambda hs: -hs[1])


def mixed_scores(
    cosines: Sequence[float],
    label_scores: Sequence[float],
    weight: float,
    reference: tuple[Sequence[float], Sequence[float]] | None = None,
) -> list[float]:
    """The re-ranking score of one query's candidates: ``weight · z(logit(label score)) +
    (1 − weight) · z(cosine)``, each standardised over these candidates (or over
    ``reference``), so neither score's scale matters: :func:`flipkd.mixing.mix_scores`, the
    pair scorer of the ``mix`` mode. ``weight`` 1 returns the label scores themselves
    (re-ranking by the generated label alone, the paper's); 0 gives the cosine order back. The
    served default is :data:`flipkd.modes.RERANK_WEIGHT_DEFAULT`."""
    return mix_scores(cosines, label_scores, weight, reference)
