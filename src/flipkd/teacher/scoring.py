"""Teacher pair scores for evaluation (the ``teacher`` run kind of ``flipkd eval``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flipkd.errors import CacheError
from flipkd.teacher import encoder
from flipkd.teacher.cache import default_cache_dir, open_teacher_cache

log = logging.getLogger(__name__)


def encode_pair_scores(
    source: encoder.TeacherSource,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Cosine of each pair, encoding every distinct text once."""
    unique = sorted({*texts_a, *texts_b})
    model = encoder.load_encoder(source)
    emb = encoder.encode_texts(model, unique, batch_size=batch_size, progress=progress)
    row = {t: i for i, t in enumerate(unique)}
    a = emb[[row[t] for t in texts_a]]
    b = emb[[row[t] for t in texts_b]]
    return (a * b).sum(-1).numpy().astype(np.float64)


def score_pairs(
    run_dir: Path, pairs: Sequence[Any], *, benchmark: str, mode: str | None = None
) -> np.ndarray:
    """Teacher cosine per pair: from ``RUN/cache/<benchmark>`` when it is this teacher's
    and covers the pairs, otherwise by encoding. ``mode`` is accepted and ignored (a teacher
    has one score)."""
    texts_a = [p.text_a for p in pairs]
    texts_b = [p.text_b for p in pairs]
    cache_dir = default_cache_dir(run_dir, benchmark)
    if (cache_dir / "manifest.json").is_file():
        try:
            cache = open_teacher_cache(cache_dir, teacher=run_dir, texts=[*texts_a, *texts_b])
            log.info("scoring %d pairs from the teacher cache %s", len(pairs), cache_dir)
            return cache.pair_sim(texts_a, texts_b).numpy().astype(np.float64)
        except CacheError as err:
            log.warning("not using the teacher cache: %s", err)
    source = encoder.resolve_source(run_dir)
    return encode_pair_scores(source, texts_a, texts_b, progress=True)
