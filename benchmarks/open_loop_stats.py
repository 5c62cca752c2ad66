"""The pure parts of the open-loop load test (``load_open.py``): arrivals, percentiles,
the highest rate within the latency bound, where to probe next, and the batching ratio."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

GOAL = 2.5  # issue 16: batching gives >= 2.5x the rate at the latency bound
FAILURES = ("http_5xx", "transport_errors", "valid_not_200", "malformed_not_4xx")
# ratio()'s goal_met by the kind of ratio and whether it reaches the goal: a lower bound that
# reaches it has met it, an upper bound below it has missed it, and otherwise it cannot tell
GOAL_MET = {
    "exact": {True: True, False: False},
    "lower": {True: True, False: None},
    "upper": {True: None, False: False},
    "unknown": {True: None, False: None},
}


def poisson_arrivals(rate: float, n: int, rng: random.Random) -> list[float]:
    """``n`` arrival times (s from the start) of a Poisson process of ``rate`` per second."""
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def arrivals_for(rate: float, duration: float, min_requests: int) -> int:
    """How many arrivals a rate gets: ``rate × duration``, at least ``min_requests``."""
    return max(min_requests, math.ceil(rate * duration))


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max (numpy's linear interpolation); zeros when empty."""
    if not values_ms:
        return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    p50, p90, p99 = np.percentile(np.asarray(values_ms, dtype=float), [50, 90, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p90_ms": round(float(p90), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(max(values_ms)), 2),
    }


def within_bound(row: dict, bound_ms: float) -> bool:
    """p99 of the valid requests ≤ ``bound_ms`` and nothing failed."""
    return row["p99_ms"] <= bound_ms and all(row[f] == 0 for f in FAILURES)


def rate_at_bound(rows: list[dict]) -> dict[str, Any]:
    """The highest rate within the bound below the lowest rate above it.

    ``rows`` have ``rate`` and ``ok``, in any order. A rate within the bound that lies
    above a failing one does not count (the answer is conservative when p99 is noisy).
    Returns ``rate`` (None when even the lowest rate failed), ``first_failing`` (None when
    none failed: then ``rate`` is only a lower bound, ``censored``).
    """
    failing = [r["rate"] for r in rows if not r["ok"]]
    first_failing = min(failing) if failing else None
    ok = [
        r["rate"] for r in rows if r["ok"] and (first_failing is None or r["rate"] < first_failing)
    ]
    return {
        "rate": max(ok) if ok else None,
        "first_failing": first_failing,
        "censored": first_failing is None,
    }


def next_probe(rows: list[dict], min_step: float = 0.05) -> float | None:
    """The midpoint between the highest rate within the bound and the first above it.

    None when there is no such bracket, or when it is narrower than ``min_step`` of
    the lower rate (more bisection would measure noise).
    """
    found = rate_at_bound(rows)
    lo, hi = found["rate"], found["first_failing"]
    if lo is None or hi is None or hi - lo <= min_step * lo:
        return None
    return round((lo + hi) / 2, 2)


def ratio(batched: dict, single: dict, goal: float) -> dict[str, Any]:
    """Rate at the bound with batching ÷ without, what kind of number it is, and the goal.

    ``kind`` is "exact", "lower" (only the batched rate is censored: it may be higher),
    "upper" (only the unbatched one is) or "unknown" (both are). ``goal_met`` is None
    when the measurement cannot tell.
    """
    a, b = batched["rate"], single["rate"]
    if a is None or not b:
        return {"value": None, "kind": "unknown", "goal": goal, "goal_met": None}
    value = round(a / b, 2)
    kind = {
        (False, False): "exact",
        (True, False): "lower",
        (False, True): "upper",
        (True, True): "unknown",
    }[(batched["censored"], single["censored"])]
    met = GOAL_MET[kind][value >= goal]
    return {"value": value, "kind": kind, "goal": goal, "goal_met": met}
