"""What a run's results say: dev thresholds, and the model card (``README.md``) of an export.

Everything is read from the run directory: evaluation JSONs (``RUN/eval/*.json``
and any given with ``--eval``) give the per-mode thresholds and the metrics
table; ``best.json`` the dev metrics during training; ``logs/train.jsonl`` the
distillation report (teacher agreement, mask statistics and loss terms,
averaged over the last logged steps); ``RUN/plots/*.png`` the plots.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from flipkd.errors import FlipkdError
from flipkd.modes import MODES

DEFAULT_THRESHOLD = {"gen": 0.5, "rep": 0.5}
COLUMNS = ("accuracy", "f1", "precision", "recall", "ap", "roc_auc", "spearman", "threshold", "n")
REPORT_PREFIXES = ("agree/", "mask/")
LOSS_TERMS = ("loss", "gen", "contrast", "dist")
THRESHOLD_NOTE = (
    "Scores are in [0, 1]; a pair matches when score >= threshold. Rep thresholds chosen in "
    "evaluation are cosines and are mapped to (cos + 1) / 2.\n\n"
)
TAGS = ["flipkd", "knowledge-distillation", "text-matching", "lora", "peft"]


# --- thresholds -------------------------------------------------------------------------------
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

    ``flipkd reproduce`` names gen metrics bare (``threshold``, ``f1``) and rep metrics
    ``rep_*``, both chosen on dev and read on test; here they become ``gen_*`` / ``rep_*``.
    """
    if result.get("row") in (None, "teacher"):
        return None
    metrics = _flat(result.get("metrics") or {})
    named = {k if k.startswith("rep_") else f"gen_{k}": v for k, v in metrics.items()}
    return {
        "kind": "student",
        "benchmark": f"ladder row {result['row']} (seed {result.get('seed', '?')})",
        "split": "test",
        "threshold_from": "dev",
        "metrics": named,
    }


def collect_evals(
    run_dir: Path, extra: list[Path] | tuple[Path, ...] = ()
) -> list[tuple[Path, dict]]:
    """Explicit eval JSONs first (in the order given), then ``RUN/eval/*.json`` by name,
    then a ladder row's ``RUN/result.json`` (written by ``flipkd reproduce``)."""
    paths = [Path(p) for p in extra] + sorted((Path(run_dir) / "eval").glob("*.json"))
    seen, out = set(), []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append((path, _read_json(path)))
    ladder = Path(run_dir) / "result.json"
    if ladder.is_file() and ladder.resolve() not in seen:
        converted = ladder_eval(_read_json(ladder))
        if converted is not None:
            out.append((ladder, converted))
    return out


def eval_thresholds(result: dict[str, Any]) -> dict[str, float]:
    """Dev-chosen thresholds in one eval JSON, on the serving scale [0, 1].

    Recognised: ``{"mode": "gen"|"rep", "metrics": {"threshold": t}}`` (an
    ``evaluate_run`` result with the scoring mode recorded) and metrics named per
    mode (``gen_threshold``, ``rep_threshold``). A rep threshold there is a
    cosine (what ``flipkd.student.score_pairs`` returns) and is mapped to
    ``(t + 1) / 2``, the scale of ``FlipkdMatcher.score_pairs(mode="rep")``.
    Teacher results carry no student threshold and give ``{}``.
    """
    if result.get("kind") not in (None, "student"):
        return {}
    metrics = result.get("metrics") or {}
    found = {m: metrics[f"{m}_threshold"] for m in MODES if f"{m}_threshold" in metrics}
    if result.get("mode") in MODES and "threshold" in metrics:
        found[result["mode"]] = metrics["threshold"]
    return {m: cosine_to_unit(float(t)) if m == "rep" else float(t) for m, t in found.items()}


def cosine_to_unit(cosine: float) -> float:
    """Map a cosine in [-1, 1] to [0, 1] as ``(cos + 1) / 2`` (clipped)."""
    return min(1.0, max(0.0, (cosine + 1.0) / 2.0))


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
        if i < explicit and not found:
            raise FlipkdError(
                "no student threshold: needs 'mode' (gen/rep) with metrics.threshold, "
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


# --- the card -------------------------------------------------------------------------------
def copy_plots(run_dir: Path, target: Path) -> list[str]:
    """Copy ``RUN/plots/*.png`` to ``target``; return the copied names."""
    names = []
    for png in sorted((Path(run_dir) / "plots").glob("*.png")):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, target / png.name)
        names.append(png.name)
    return names


def _flat(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not isinstance(v, Mapping | list)}


def _split_modes(label: str, metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per mode when metrics are named ``gen_*`` / ``rep_*``; else one row."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in _flat(metrics).items():
        mode, sep, rest = key.partition("_")
        if sep and mode in MODES:
            rows.setdefault(f"{label} [{mode}]", {})[rest] = value
    return rows or {label: _flat(metrics)}


def metric_rows(evals: list[tuple[Path, dict]], run_dir: Path) -> dict[str, dict[str, Any]]:
    """Table rows: each eval JSON (per mode), then the best dev evaluation during training."""
    rows: dict[str, dict[str, Any]] = {}
    for path, result in evals:
        label = f"{result.get('benchmark', path.stem)}/{result.get('split', '?')}"
        if result.get("mode"):
            label += f" [{result['mode']}]"
        rows.update(_split_modes(label, result.get("metrics") or {}))
    best = Path(run_dir) / "best.json"
    if best.is_file():
        data = json.loads(best.read_text(encoding="utf-8"))
        rows.update(_split_modes(f"dev during training (step {data.get('step', '?')})", data))
    return rows


def render_metrics(rows: dict[str, dict[str, Any]]) -> str:
    """A markdown table over the known columns any row has."""
    from flipkd.evaluation import metrics_table

    cols = [c for c in COLUMNS if any(c in r for r in rows.values())]
    return metrics_table(rows, cols) if rows and cols else ""


def distillation_report(log_path: Path, last: int = 10) -> dict[str, Any]:
    """Means of agreement, mask counts and loss terms over the last ``last`` logged train steps."""
    if not Path(log_path).is_file():
        return {}
    lines = Path(log_path).read_text(encoding="utf-8").splitlines()
    rows = [r for r in map(json.loads, filter(None, lines)) if r.get("kind") == "train"][-last:]
    if not rows:
        return {}
    keys = [k for k in rows[-1] if k.startswith(REPORT_PREFIXES) or k in LOSS_TERMS]
    means = {k: sum(float(r.get(k, 0.0)) for r in rows) / len(rows) for k in keys}
    return {"steps": [rows[0]["step"], rows[-1]["step"]], "values": means}


def _report_table(report: dict[str, Any]) -> str:
    lo, hi = report["steps"]
    lines = [f"| quantity | mean over steps {lo}–{hi} |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in report["values"].items()]
    return "\n".join(lines) + "\n"


def _front_matter(spec: dict[str, Any]) -> str:
    meta = {
        "base_model": spec["base_model"]["name"],
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": TAGS + [f"benchmark:{spec.get('benchmark')}"],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _usage(spec: dict[str, Any]) -> str:
    base = spec["base_model"]["path"]
    text = (
        '```python\nimport flipkd\n\nm = flipkd.load("THIS_DIR")\n'
        'm.score_pairs([("text a", "text b")], mode="gen")  # P(positive word), 0..1\n'
        'm.score_pairs([("text a", "text b")], mode="rep")  # (cos + 1) / 2\n'
        'm.encode(["text a"])  # A-tap representations, L2-normalised\n```\n\n'
        "With peft alone (the prompt and label words are in `flipkd.json`):\n\n"
        "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n\n"
        f"base = AutoModelForCausalLM.from_pretrained({base!r})\n"
        'model = PeftModel.from_pretrained(base, "THIS_DIR/adapter")\n```\n'
    )
    if spec.get("merged"):
        text += (
            "\nWith transformers alone: "
            '`AutoModelForCausalLM.from_pretrained("THIS_DIR/merged")` (tokenizer included).\n'
        )
    return text


MERGED_LINE = "- `merged/`: the base with B·A folded in (safetensors + tokenizer).\n"


def _files(spec: dict[str, Any]) -> str:
    emb = spec["embedder"]
    share = emb["base_params_needed"] / max(1, emb["base_params_total"])
    return (
        "- `adapter/`: the peft LoRA adapter (rank {r}, alpha {a}).\n"
        "- `tokenizer/`: the tokenizer the student used.\n"
        "- `embedder/`: the A-tap ({n} module(s), dim {d}, pool {p}, combine {c}): the tapped "
        "A matrices (`tap_A.safetensors`, named as in the adapter) and `embedder.json`. The base "
        "layers up to layer {L} are not copied: the tap needs base + adapter up to there "
        "({share:.0%} of the base's parameters), so the embedder points to the base by name, "
        "path and hash instead of duplicating it.\n"
        "- `flipkd.json`: base pointer and hashes, tap, prompt, thresholds, teacher, versions.\n"
    ).format(
        r=spec["adapter"]["rank"], a=spec["adapter"]["alpha"], n=len(emb["modules"]), d=emb["dim"],
        p=emb["pool"], c=emb["combine"], L=emb["stop_after_layer"], share=share,
    ) + (MERGED_LINE if spec.get("merged") else "")  # fmt: skip


def _thresholds(spec: dict[str, Any]) -> str:
    lines = ["| mode | threshold | from |", "|---|---|---|"]
    for mode, value in spec["thresholds"].items():
        lines.append(f"| {mode} | {value:.4f} | {spec['threshold_sources'][mode]} |")
    return "\n".join(lines) + "\n"


def render_card(spec: dict[str, Any], run_dir: Path, evals: list[tuple[Path, dict]]) -> str:
    """The card's markdown text."""
    base, teacher, tap = spec["base_model"], spec["teacher"], spec["tap"]
    yes, no = spec["prompt"]["label_words"]
    table = render_metrics(metric_rows(evals, run_dir))
    report = distillation_report(Path(run_dir) / "logs" / "train.jsonl")
    parts = [
        _front_matter(spec),
        f"# {spec['name']}: a flipkd student\n",
        f"A LoRA adapter for `{base['name']}` trained by flipped knowledge distillation "
        f"(arXiv 2507.05617) from the teacher `{teacher['model']}` "
        f"(weights {teacher['weights_hash']}) on `{spec['benchmark']}`. It answers by generating "
        f"`{yes}` or `{no}` (gen mode) and embeds texts with the A matrices of "
        f"{', '.join(tap['modules'])} in layer(s) {tap['layers']} (rep mode). "
        f"Config hash {spec['config_hash']}, flipkd {spec['flipkd_version']}.\n",
        "## Use\n", _usage(spec),
        "## Files\n", _files(spec),
        "## Thresholds\n", THRESHOLD_NOTE, _thresholds(spec),
        "## Metrics\n",
        table or "No evaluation results were found in the run (run `flipkd eval RUN`).\n",
        "\n## Distillation report\n",
        _report_table(report) if report else "No training log was found.\n",
    ]  # fmt: skip
    if spec.get("plots"):
        parts += ["\n## Plots\n"] + [f"![{n}](plots/{n})\n" for n in spec["plots"]]
    return "\n".join(parts)


def write_card(
    out_dir: Path, spec: dict[str, Any], run_dir: Path, evals: list[tuple[Path, dict]]
) -> Path:
    """Write ``out_dir/README.md``."""
    target = Path(out_dir) / "README.md"
    target.write_text(render_card(spec, run_dir, evals), encoding="utf-8")
    return target
