"""FAQ retrieval measured the way ``/search`` serves it (``flipkd faq eval``).

Each system ranks the FAQ for every labelled query through the service's own
code: the :class:`~flipkd.serve.index.FaqIndex` built (or reused) by
:func:`~flipkd.serve.index.open_or_build`, the server's checked model handlers,
and for re-ranking the same candidate depth, (query, question) pairs and score
order as ``/search`` with ``"rerank": true``:

* ``index``: the top :data:`CUTOFF` entries by cosine of the model's own embeddings
  (a student's A-tap, or a teacher's), i.e. ``/search`` with ``k = 10``;
* ``rerank``: the first ``rerank_k`` cosine candidates re-ordered by the
  generated-label score; for ``rerank_k >= 10`` this is exactly ``/search`` with
  ``k = 10`` and ``rerank_candidates = rerank_k``; for a smaller ``rerank_k`` the
  first ``rerank_k`` results are those of ``/search`` with ``k = rerank_k`` and the
  cosine order continues after them.

Queries are encoded in batches of ``batch_size`` (as the micro-batcher would
group concurrent requests); each query's ``rerank_k`` pairs are one model call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from flipkd.evaluation.retrieval import rank_of, retrieval_metrics
from flipkd.modes import RERANK_WEIGHT_DEFAULT
from flipkd.serve.faq import FaqEntry
from flipkd.serve.index import META_FILE, FaqIndex, Hit, open_or_build
from flipkd.serve.queries import LabelledQuery
from flipkd.serve.ranking import (
    encode_checked,
    mixed_scores,
    order_by_scores,
    rerank_pairs,
    score_checked,
    search_depth,
)

log = logging.getLogger(__name__)

CUTOFF = 10  # MRR@10: the results list is /search's with k = 10
CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))


@dataclass
class SystemResult:
    """One row of the report: a system's metrics, timings and per-query ranks."""

    name: str
    model: str
    metrics: dict[str, float]
    timings: dict[str, float]
    ranks: list[int | None] = field(repr=False)
    candidates: list[dict[str, list]] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        """The row as stored in ``results.json`` (``candidates`` only when recorded)."""
        row = {
            "name": self.name,
            "model": self.model,
            "metrics": self.metrics,
            "timings": self.timings,
            "ranks": self.ranks,
        }
        if self.candidates is not None:
            row["candidates"] = self.candidates
        return row


@dataclass
class TimedIndex:
    """An index and how it was obtained: ``seconds`` to build or load, ``loaded`` from disk."""

    index: FaqIndex
    seconds: float
    loaded: bool


def build_index(
    entries: Sequence[FaqEntry],
    encode: Callable[[list[str]], np.ndarray],
    keys: dict[str, str],
    directory: Path | None = None,
) -> TimedIndex:
    """:func:`open_or_build` (as ``flipkd serve`` calls it), timed."""
    saved = None if directory is None else Path(directory) / META_FILE
    before = saved.stat().st_mtime_ns if saved is not None and saved.exists() else None
    start = time.perf_counter()
    index = open_or_build(directory, entries, encode, keys)
    seconds = time.perf_counter() - start
    loaded = before is not None and saved is not None and saved.stat().st_mtime_ns == before
    return TimedIndex(index, seconds, loaded)


def cjk_share(texts: Sequence[str]) -> float:
    """Share of CJK ideographs among the letters of ``texts`` (0 when there are none)."""
    letters = [c for text in texts for c in text if c.isalpha()]
    cjk = sum(any(lo <= ord(c) <= hi for lo, hi in CJK_RANGES) for c in letters)
    return cjk / len(letters) if letters else 0.0


def language_warning(model: str, languages: str | None, questions: Sequence[str]) -> str | None:
    """A one-line warning when the model's language is not the FAQ's apparent one.

    Args:
        model: The model's name, for the message.
        languages: What the model records (``"en"``, ``"zh"``, ``"zh,en"``, ``"multilingual"``);
            None or ``"multilingual"``: nothing to compare, no warning.
        questions: The FAQ questions (an FAQ is ``zh`` when most of its letters are CJK).
    """
    if not languages or "multi" in languages:
        return None
    share = cjk_share(questions)
    faq = "zh" if share >= 0.5 else "en"
    wanted = {part.strip() for part in languages.split(",")}
    if faq in wanted:
        return None
    return (
        f"warning: {model} is for language {languages} but the FAQ looks {faq} "
        f"({share:.0%} of its letters are CJK); expect poor retrieval"
    )


def _ranks(index: FaqIndex, hits: Sequence[Hit], gold: str) -> int | None:
    return rank_of([index.entries[h.position].id for h in hits[:CUTOFF]], gold)


def search_all(
    index: FaqIndex,
    encoder: Any,
    queries: Sequence[LabelledQuery],
    *,
    depth: int,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[list[list[Hit]], float]:
    """Encode every query (checked as the server does) and fetch its top ``depth`` hits.

    Returns:
        The hits per query, best first, and the seconds it took.
    """
    texts = [q.query for q in queries]
    hits: list[list[Hit]] = []
    start = time.perf_counter()
    with tqdm(total=len(texts), desc=f"search {encoder.name}", disable=not progress) as bar:
        for i in range(0, len(texts), batch_size):
            for vector in encode_checked(encoder, texts[i : i + batch_size]):
                hits.append(index.search(vector, depth))
            bar.update(min(batch_size, len(texts) - i))
    return hits, time.perf_counter() - start


def rerank_all(
    index: FaqIndex,
    matcher: Any,
    queries: Sequence[LabelledQuery],
    hits: Sequence[Sequence[Hit]],
    *,
    rerank_k: int,
    weight: float = 1.0,
    progress: bool = True,
) -> tuple[list[list[Hit]], float, list[list[float]]]:
    """Re-order each query's first ``rerank_k`` hits by the generated-label score (mixed
    with the cosine when ``weight`` < 1, as ``/search``'s ``rerank_weight``).

    Returns:
        The re-ordered hits per query (the rest of the cosine order after them), the
        seconds it took, and per query the scores of its first ``rerank_k`` hits in
        their cosine order.
    """
    out: list[list[Hit]] = []
    scored: list[list[float]] = []
    start = time.perf_counter()
    for query, found in tqdm(
        list(zip(queries, hits, strict=True)), desc=f"rerank {matcher.name}", disable=not progress
    ):
        head = list(found[:rerank_k])
        scores = score_checked(matcher, "gen", rerank_pairs(index, query.query, head))
        scored.append(scores)
        order = order_by_scores(head, mixed_scores([h.score for h in head], scores, weight))
        out.append([h for h, _ in order] + list(found[rerank_k:]))
    return out, time.perf_counter() - start, scored


def candidate_rows(
    index: FaqIndex, hits: Sequence[Sequence[Hit]], gen: Sequence[Sequence[float]] | None
) -> list[dict[str, list]]:
    """Per query, its cosine candidates (ids, cosines, and generated-label scores when
    re-ranked; scores rounded to 6 decimals), for error analysis and score fusion."""
    rows = []
    for i, found in enumerate(hits):
        head = found[: len(gen[i])] if gen is not None else found
        row = {
            "ids": [index.entries[h.position].id for h in head],
            "cos": [round(float(h.score), 6) for h in head],
        }
        if gen is not None:
            row["gen"] = [round(float(g), 6) for g in gen[i]]
        rows.append(row)
    return rows


def _result(name: str, model: str, index: FaqIndex, queries, hits, timings) -> SystemResult:
    ranks = [_ranks(index, h, q.id) for q, h in zip(queries, hits, strict=True)]
    return SystemResult(name, model, retrieval_metrics(ranks), timings, ranks)


def evaluate_encoder(
    name: str,
    encoder: Any,
    timed: TimedIndex,
    queries: Sequence[LabelledQuery],
    *,
    rerank_k: int = 0,
    batch_size: int = 32,
    progress: bool = True,
    candidates: bool = False,
    rerank_weight: float = RERANK_WEIGHT_DEFAULT,
    reranker: Any = None,
) -> list[SystemResult]:
    """The ``index`` system for ``encoder`` and, when ``rerank_k`` > 0, its ``rerank`` system.

    Args:
        name: Row label prefix (``student``, ``teacher``).
        encoder: Has ``name`` and ``encode``; for re-ranking also ``score_pairs`` (a Matcher).
        timed: The index built with ``encoder.encode``.
        queries: The labelled queries.
        rerank_k: Cosine candidates to re-rank (0: no re-ranking).
        batch_size: Queries per ``encode`` call.
        progress: Show tqdm bars.
        candidates: Keep each query's candidates and their scores in the results (the
            last system's: the re-ranked one's when ``rerank_k`` > 0).
        rerank_weight: ``/search``'s ``rerank_weight``: 1 re-ranks by the generated label
            alone; below 1 the cosine is mixed in (:func:`~flipkd.serve.ranking.mixed_scores`).
        reranker: The Matcher whose generated label re-ranks ``encoder``'s candidates (default
            ``encoder`` itself; another one when a teacher's index retrieves for a student).
    """
    index = timed.index
    reranker = encoder if reranker is None else reranker
    depth = search_depth(CUTOFF, rerank_k > 0, rerank_k)
    hits, seconds = search_all(
        index, encoder, queries, depth=depth, batch_size=batch_size, progress=progress
    )
    n = len(queries)
    base = {"index_s": round(timed.seconds, 3), "index_loaded": timed.loaded}
    search_timing = {**base, "search_s": round(seconds, 3), "search_qps": n / max(seconds, 1e-9)}
    results = [_result(f"{name} index", encoder.name, index, queries, hits, search_timing)]
    if candidates and rerank_k == 0:
        results[0].candidates = candidate_rows(index, hits, None)
    if rerank_k > 0:
        results.append(
            _rerank_result(
                name, encoder, reranker, index, queries, hits,
                rerank_k=rerank_k, weight=rerank_weight, seconds=seconds, base=base,
                progress=progress, candidates=candidates,
            )
        )  # fmt: skip
    return results


def _rerank_result(
    name: str, encoder: Any, reranker: Any, index: FaqIndex, queries: Sequence[LabelledQuery],
    hits: list, *, rerank_k: int, weight: float, seconds: float, base: dict[str, Any],
    progress: bool, candidates: bool,
) -> SystemResult:  # fmt: skip
    """The ``rerank`` system: ``reranker``'s generated label over ``encoder``'s top
    ``rerank_k`` (``seconds``: the search's time, counted in the end-to-end rate)."""
    reranked, rr_seconds, gen = rerank_all(
        index, reranker, queries, hits, rerank_k=rerank_k, weight=weight, progress=progress
    )
    timing = {
        **base,
        "rerank_k": rerank_k,
        "rerank_weight": weight,
        "rerank_s": round(rr_seconds, 3),
        # search + re-ranking, per query end to end
        "rerank_qps": len(queries) / max(seconds + rr_seconds, 1e-9),
    }
    label = f"{name} rerank@{rerank_k}" + (f" w={weight:g}" if weight < 1 else "")
    model = encoder.name if reranker is encoder else f"{encoder.name} + {reranker.name}"
    result = _result(label, model, index, queries, reranked, timing)
    if candidates:
        result.candidates = candidate_rows(index, hits, gen)
    return result
