"""Encode throughput: flipkd's A-tap path against the peer's ``SentenceTransformer.encode``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from flipkd.student import Student, encode


def _seconds(fn: Callable[[], np.ndarray]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare_encode(
    student: Student, peer, texts: list[str], batch_size: int, repeats: int = 2
) -> dict[str, Any]:
    """Texts/s of both encoders on the same texts and batch size (best of ``repeats``).

    The two are warmed up on one batch first and timed alternately, so a change in the
    machine's load hits both alike.
    """
    from flipkd.bench.peer import peer_encode

    runners = {
        "flipkd": lambda chunk: encode(student, chunk, batch_size=batch_size),
        "peer": lambda chunk: peer_encode(peer, chunk, batch_size),
    }
    for run in runners.values():
        run(texts[:batch_size])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(round(_seconds(lambda run=run: run(texts)), 4))
    rates = {name: len(texts) / min(t) for name, t in times.items()}
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "repeats": repeats,
        "seconds": times,
        "flipkd_texts_per_s": rates["flipkd"],
        "peer_texts_per_s": rates["peer"],
        "ratio": rates["flipkd"] / rates["peer"],
    }
