"""Student pair scores for ``flipkd eval`` (the ``student`` run kind).

The run directory is loaded as ``flipkd.load`` loads it (:func:`load_matcher`), once per
run, so ``flipkd eval`` scores exactly what an export of the run would serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from flipkd.export.load import FlipkdMatcher, load_matcher


@lru_cache(maxsize=2)
def _matcher(run_dir: str) -> FlipkdMatcher:
    return load_matcher(run_dir)


def score_run_pairs(
    run_dir: Path, pairs: Sequence[Any], *, benchmark: str, mode: str | None = None
) -> np.ndarray:
    """Gen mode: P(positive label word); rep mode: A-tap cosine (loaded once per run)."""
    matcher = _matcher(str(Path(run_dir).resolve()))
    texts = [(p.text_a, p.text_b) for p in pairs]
    return np.asarray(matcher.score_pairs(texts, mode=mode or "gen"), dtype=np.float64)
