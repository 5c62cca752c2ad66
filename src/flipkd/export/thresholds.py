"""What a run's results say about the decision thresholds, per scoring mode.

Evaluation JSONs (``RUN/eval/*.json`` and any given with ``--eval``) and a ladder row's
``RUN/result.json`` carry the thresholds chosen on dev; :func:`choose_thresholds` takes the
first one per mode, else the default; :func:`choose_mix` the ``mix`` mode's dev scales and
threshold, where an eval fixed them. Export writes them into ``flipkd.json``; loading a run
directory reads them from the run the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flipkd.errors import FlipkdError
from flipkd.mixing import MIX_WEIGHT_DEFAULT, MixScales
from flipkd.modes import DEFAULT_THRESHOLD, MODES, metric_mode


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metrics record (intervals and per-seed lists left out)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, Mapping | list)}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FlipkdError("eval JSON not found", where=str(path))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FlipkdError(f"invalid JSON ({err.msg})", where=f"{path}:{err.lineno}") from None
    if not isinstance(data, dict):
        raise FlipkdError("eval JSON must be an object", where=str(path))
    return data


def ladder_eval(result: dict[str, Any]) -> dict[str, Any] | None:
    """A ladder row's ``RUN/result.json`` as an eval result (``None`` for a teacher row).

    ``flipkd reproduce`` names gen metrics bare (``threshold``, ``f1``) and rep and mix metrics
    ``rep_*`` / ``mix_*``, all chosen on dev and read on test; here gen's become ``gen_*``.
    """
    if result.get("row") in (None, "teacher"):
        return None
    metrics = flat_metrics(result.get("metrics") or {})
    named = {"_".join(metric_mode(k)): v for k, v in metrics.items()}
    dev = (result.get("scores") or {}).get("dev") or {}
    scales = (
        {"mix_scales": asdict(MixScales.fit(dev["rep"], dev["gen"], MIX_WEIGHT_DEFAULT))}
        if dev.get("gen") and dev.get("rep") and "mix_threshold" in named
        else {}
    )  # the ladder's mix: its dev pairs' scales at the default weight
    return {
        "kind": "student",
        "benchmark": f"ladder row {result['row']} (seed {result.get('seed', '?')})",
        "split": "test",
        "threshold_from": "dev",
        "metrics": named,
        **scales,
    }


def collect_evals(
    run_dir: Path, extra: list[Path] | tuple[Path, ...] = ()
) -> list[tuple[Path, dict]]:
    """Explicit eval JSONs first (in the order given), then ``RUN/eval/*.json`` by name,
    then a ladder row's ``RUN/result.json`` (written by ``flipkd reproduce``)."""
    paths = [Path(p) for p in extra] + sorted((Path(run_dir) / "eval").glob("*.json"))
    ladder = Path(run_dir) / "result.json"
    if ladder.is_file():
        paths.append(ladder)
    seen, out = set(), []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            data = _read_json(path)
            # a ladder row's result.json, wherever it is given (``--eval RUN/result.json``
            # too): its bare ``threshold`` is gen's only once converted
            converted = ladder_eval(data) if _is_ladder_result(data) else data
            if converted is not None:
                out.append((path, converted))
    return out


def _is_ladder_result(data: dict[str, Any]) -> bool:
    """A ``flipkd reproduce`` row's result.json: a row name and metrics, no eval ``kind``."""
    return "row" in data and "metrics" in data and "kind" not in data


def eval_thresholds(result: dict[str, Any]) -> dict[str, float]:
    """Dev-chosen thresholds in one eval JSON, on the scale the scores have (``flipkd.modes``).

    Recognised: ``{"mode": "gen"|"rep", "metrics": {"threshold": t}}`` (an
    ``evaluate_run`` result with the scoring mode recorded) and metrics named per
    mode (``gen_threshold``, ``rep_threshold``). A rep threshold is a cosine, as
    everywhere. Teacher results carry no student threshold and give ``{}``.
    """
    if result.get("kind") not in (None, "student"):
        return {}
    metrics = result.get("metrics") or {}
    found = {m: metrics[f"{m}_threshold"] for m in MODES if f"{m}_threshold" in metrics}
    if result.get("mode") in MODES and "threshold" in metrics:
        found[result["mode"]] = metrics["threshold"]
    return {m: float(t) for m, t in found.items()}


def eval_mix(result: dict[str, Any]) -> dict[str, float] | None:
    """The ``mix`` mode one eval JSON fixes, or None: its dev scales (``mix_scales``, written
    by ``flipkd eval --mode mix`` and read from a ladder row's dev scores) with the threshold
    chosen on the mixed dev scores."""
    if result.get("kind") not in (None, "student") or "mix_scales" not in result:
        return None
    metrics = result.get("metrics") or {}
    threshold = metrics.get("threshold") if result.get("mode") == "mix" else None
    threshold = metrics.get("mix_threshold", threshold)
    if threshold is None:
        return None
    return {**{k: float(v) for k, v in result["mix_scales"].items()}, "threshold": float(threshold)}


def choose_mix(evals: list[tuple[Path, dict]]) -> dict[str, Any]:
    """``{"mix": ...}`` — the first eval JSON's ``mix`` mode (scales, threshold, where it came
    from), as ``flipkd.json`` holds it — or ``{}`` when no eval fixed one (the model then
    serves gen and rep only)."""
    for path, result in evals:
        found = eval_mix(result)
        if found is not None:
            source = f"{path.name} (chosen on {result.get('threshold_from', 'dev')})"
            return {"mix": {**found, "source": source}}
    return {}


def choose_thresholds(
    evals: list[tuple[Path, dict]], explicit: int = 0
) -> tuple[dict[str, float], dict[str, str]]:
    """Per mode: the first eval JSON's dev threshold, else the default; and where each came from.

    Args:
        evals: ``(path, result)`` pairs, explicit ones first.
        explicit: How many leading entries the user named; each must give a threshold.
    """
    values, sources = dict(DEFAULT_THRESHOLD), {}
    for i, (path, result) in enumerate(evals):
        found = eval_thresholds(result)
        if i < explicit and not found and eval_mix(result) is None:
            raise FlipkdError(
                "no student threshold: needs 'mode' (gen/rep/mix) with metrics.threshold, "
                "or metrics.gen_threshold / metrics.rep_threshold",
                where=str(path),
            )
        for mode, value in found.items():
            if mode not in sources:
                origin = result.get("threshold_from", "dev")
                values[mode], sources[mode] = value, f"{path.name} (chosen on {origin})"
    for mode in MODES:
        if mode not in sources:
            what = "P(positive word) = 0.5" if mode == "gen" else "cosine 0"
            sources[mode] = f"default {DEFAULT_THRESHOLD[mode]} ({what}; no dev threshold found)"
    return values, sources
