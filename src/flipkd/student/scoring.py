"""Student pair scores for ``flipkd eval`` (the ``student`` run kind)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


@lru_cache(maxsize=2)
def _matcher(run_dir: str):
    import flipkd

    return flipkd.load(run_dir)


def score_run_pairs(
    run_dir: Path, pairs: Sequence[Any], *, benchmark: str, mode: str | None = None
) -> np.ndarray:
    """Gen mode: P(positive label word); rep mode: A-tap cosine (loaded once per run)."""
    matcher = _matcher(str(Path(run_dir).resolve()))
    texts = [(p.text_a, p.text_b) for p in pairs]
    if (mode or "gen") == "rep":
        return np.asarray(matcher.cosine_pairs(texts), dtype=np.float64)
    return np.asarray(matcher.score_pairs(texts, mode="gen"), dtype=np.float64)
