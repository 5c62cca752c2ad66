"""The paper's claims, checked against a finished ladder (per mode, seed-paired).

Each claim compares rows on one metric per mode: the generated-label ROC-AUC (gen), the
A-tap cosine Spearman (rep, the paper's ATEC metric) and the ROC-AUC of the two mixed (mix,
what ``/search`` re-ranks with; :mod:`flipkd.mixing`). A cross-mode claim compares two rows
each in its own mode on the same metric: "fip's mix > sft's label" asks whether what `fip`
deploys beats what `sft` can deploy (its A-tap is weak, so its label is its scorer). A
pairwise claim "a > b" is checked seed by seed (each seed shares its teacher, data order
and test pairs):

* ``held`` when a beats b in every seed;
* ``not held`` when a beats b in no seed;
* ``mixed`` otherwise.

``clear`` says whether the two rows' bootstrap 95% intervals over test pairs are
disjoint: when they overlap, the difference is within test-sampling noise even if every
seed agrees. Given the runs themselves, each pairwise claim also gets the seed-paired
bootstrap interval of the difference (``difference_ci``): both rows of every seed scored
on the same resamples of the test pairs; an interval above zero is a difference the test
set resolves. The ablation-order claim compares the mean drops from removing each part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flipkd.modes import metric_mode
from flipkd.reproduce.aggregate import paired_difference_interval

CLAIM_METRICS = {"gen": "roc_auc", "rep": "rep_spearman", "mix": "mix_roc_auc"}


@dataclass(frozen=True)
class Pairwise:
    """``better`` should beat ``worse`` (``or_equal``: "≥" in the paper's wording).

    ``modes`` (better's mode, worse's mode) makes it a cross-mode claim, checked once on
    the two modes' common metric; without it the claim is checked in every mode.
    """

    name: str
    better: str
    worse: str
    or_equal: bool = False
    modes: tuple[str, str] | None = None


PAIRWISE = (
    Pairwise("fip > sft", "fip", "sft"),
    Pairwise("fip ≥ teacher", "fip", "teacher", or_equal=True),
    Pairwise("MCL ≥ ArcCSE", "fip", "fip-arccse", or_equal=True),
    Pairwise("MCL ≥ KDMCSE", "fip", "fip-kdmcse", or_equal=True),
    Pairwise("a weak teacher still helps (fip-weak-teacher > sft)", "fip-weak-teacher", "sft"),
    # not the paper's: does fip beat plain distillation of the teacher into the label?
    Pairwise("fip > sft-kd (the teacher's probability as sft's label target)", "fip", "sft-kd"),
    # not the paper's: what fip deploys (label and A-tap mixed) against sft's label alone
    Pairwise("fip's mix > sft's label", "fip", "sft", modes=("mix", "gen")),
)
ABLATION_ORDER = ("fip-no-mcl", "fip-no-dist", "fip-no-filter")  # should hurt in this order


def _verdict(diffs: np.ndarray, or_equal: bool) -> str:
    wins = (diffs >= 0) if or_equal else (diffs > 0)
    if wins.all():
        return "held"
    return "not held" if not wins.any() else "mixed"


def _pairwise(
    claim: Pairwise,
    rows: dict[str, dict],
    modes: tuple[str, str],
    runs: dict[str, list[dict]],
    bootstrap: int,
) -> dict[str, Any] | None:
    if claim.better not in rows or claim.worse not in rows:
        return None
    key_a, key_b = CLAIM_METRICS[modes[0]], CLAIM_METRICS[modes[1]]
    if key_a not in rows[claim.better]["metrics"] or key_b not in rows[claim.worse]["metrics"]:
        return None  # a report read back from before the mode existed
    a, b = rows[claim.better]["metrics"][key_a], rows[claim.worse]["metrics"][key_b]
    n = min(len(a["seeds"]), len(b["seeds"]))
    diffs = np.array(a["seeds"][:n]) - np.array(b["seeds"][:n])
    clear = (
        "ci_low" in a
        and "ci_low" in b
        and (a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"])
    )
    base = metric_mode(key_a)[1]
    if base != metric_mode(key_b)[1]:
        raise ValueError(f"{claim.name!r} compares {key_a} with {key_b}: not one metric")
    cross = modes[0] != modes[1]
    names = (claim.better, claim.worse)
    if cross:
        names = (f"{claim.better} ({modes[0]})", f"{claim.worse} ({modes[1]})")
    out = {
        "claim": claim.name, "mode": " vs ".join(modes) if cross else modes[0],
        "metric": base if cross else key_a,
        "values": {names[0]: a["mean"], names[1]: b["mean"]},
        "mean_difference": float(diffs.mean()), "seeds_won": int((diffs > 0).sum()),
        "seeds": int(n), "verdict": _verdict(diffs, claim.or_equal), "clear": bool(clear),
    }  # fmt: skip
    if runs.get(claim.better) and runs.get(claim.worse) and bootstrap > 0:
        out["difference_ci"] = list(
            paired_difference_interval(
                runs[claim.better], runs[claim.worse], modes[0], base, bootstrap, mode_b=modes[1]
            )
        )
    if claim.better == "fip-weak-teacher" and "teacher_metrics" in rows[claim.better]:
        weak = rows[claim.better]["teacher_metrics"].get(key_a)
        if weak is not None:
            out["weak_teacher"] = weak
            out["weak_teacher_below_sft"] = bool(weak < b["mean"])
    return out


def _ablation_order(rows: dict[str, dict], mode: str) -> dict[str, Any] | None:
    if "fip" not in rows or any(r not in rows for r in ABLATION_ORDER):
        return None
    key = CLAIM_METRICS[mode]
    if any(key not in rows[r]["metrics"] for r in ("fip", *ABLATION_ORDER)):
        return None
    full = rows["fip"]["metrics"][key]["mean"]
    drops = {r: full - rows[r]["metrics"][key]["mean"] for r in ABLATION_ORDER}
    values = [drops[r] for r in ABLATION_ORDER]
    held = values[0] > values[1] > values[2] > 0  # each part helps, in this order
    return {
        "claim": "removing MCL hurts most, L_dist next, the filter least", "mode": mode,
        "metric": key, "drops": drops, "verdict": "held" if held else "not held",
    }  # fmt: skip


def check_claims(
    rows: list[dict], results: list[dict] | None = None, bootstrap: int = 1000
) -> list[dict[str, Any]]:
    """Every claim whose rows are present, in both modes.

    ``results`` (the per-run records, with test scores) adds each pairwise claim's
    seed-paired interval of the difference.
    """
    by_name = {r["name"]: r for r in rows}
    runs: dict[str, list[dict]] = {}
    for res in results or []:
        runs.setdefault(res["row"], []).append(res)
    out = []
    for mode in CLAIM_METRICS:
        for claim in PAIRWISE:
            if claim.modes is None:
                out.append(_pairwise(claim, by_name, (mode, mode), runs, bootstrap))
        out.append(_ablation_order(by_name, mode))
    for claim in PAIRWISE:
        if claim.modes is not None:
            out.append(_pairwise(claim, by_name, claim.modes, runs, bootstrap))
    return [c for c in out if c is not None]


def _fmt(value: float, metric: str) -> str:
    return f"{value:.1f}" if metric.endswith("spearman") else f"{value:.3f}"


def _signed(value: float, metric: str) -> str:
    return f"{value:+.1f}" if metric.endswith("spearman") else f"{value:+.3f}"


def teacher_ratios(rows: list[dict], row: str = "fip") -> dict[str, float]:
    """``row`` ÷ teacher for every metric both have (the teacher stays the reference)."""
    by_name = {r["name"]: r for r in rows}
    if row not in by_name or "teacher" not in by_name:
        return {}
    mine, ref = by_name[row]["metrics"], by_name["teacher"]["metrics"]
    return {
        k: float(mine[k]["mean"] / ref[k]["mean"])
        for k in mine
        if k in ref and not k.endswith("threshold") and ref[k]["mean"] not in (0, None)
    }


def _difference(c: dict[str, Any]) -> str:
    if "difference_ci" not in c:
        return "–"
    low, high = c["difference_ci"]
    metric = c["metric"]  # Spearman values are already ×100, as the table's
    side = "above 0" if low > 0 else ("below 0" if high < 0 else "spans 0")
    return (
        f"{_signed(c['mean_difference'], metric)} [{_signed(low, metric)}, "
        f"{_signed(high, metric)}] ({side})"
    )


def claims_markdown(claims: list[dict[str, Any]]) -> str:
    """A table of the claims: mode, values, verdict (seeds won), intervals, paired difference."""
    lines = [
        "| claim | mode (metric) | values | verdict | seeds won | intervals "
        "| difference [paired 95%] |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        metric = c["metric"]
        if "drops" in c:
            values = ", ".join(f"{r} {_signed(-d, metric)}" for r, d in c["drops"].items())
            won, clear = "–", "–"
        else:
            values = " vs ".join(f"{r} {_fmt(v, metric)}" for r, v in c["values"].items())
            if "weak_teacher" in c:
                values += f" (weak teacher itself {_fmt(c['weak_teacher'], metric)})"
            won = f"{c['seeds_won']}/{c['seeds']}"
            clear = "disjoint" if c["clear"] else "overlap"
        lines.append(
            f"| {c['claim']} | {c['mode']} ({metric}) | {values} | {c['verdict']} | {won} | "
            f"{clear} | {_difference(c)} |"
        )
    return "\n".join(lines)
