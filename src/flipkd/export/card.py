"""The model card (``README.md``) of an export.

Everything is read from the run directory: evaluation JSONs (``RUN/eval/*.json`` and any
given with ``--eval``, see ``thresholds.py``) give the metrics table; ``best.json`` the dev
metrics during training; ``logs/train.jsonl`` the distillation report (teacher agreement,
mask statistics and loss terms, averaged over the last logged steps); ``RUN/plots/*.png``
the plots.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flipkd.export.thresholds import flat_metrics
from flipkd.modes import PAIR_MODES

COLUMNS = ("accuracy", "f1", "precision", "recall", "ap", "roc_auc", "spearman", "threshold", "n")
REPORT_PREFIXES = ("agree/", "mask/")
LOSS_TERMS = ("loss", "gen", "label_rank", "contrast", "dist", "tap_rank")
THRESHOLD_NOTE = (
    "A pair matches when score >= threshold. Gen scores are probabilities in [0, 1]; rep "
    "scores are cosines in [-1, 1], as in training and evaluation.\n\n"
)
TAGS = ["flipkd", "knowledge-distillation", "text-matching", "lora", "peft"]


def copy_plots(run_dir: Path, target: Path) -> list[str]:
    """Copy ``RUN/plots/*.png`` to ``target``; return the copied names."""
    names = []
    for png in sorted((Path(run_dir) / "plots").glob("*.png")):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(png, target / png.name)
        names.append(png.name)
    return names


def _split_modes(label: str, metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per mode when metrics are named ``gen_*`` / ``rep_*`` / ``mix_*``; else one."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in flat_metrics(metrics).items():
        mode, sep, rest = key.partition("_")
        if sep and mode in PAIR_MODES:
            rows.setdefault(f"{label} [{mode}]", {})[rest] = value
    return rows or {label: flat_metrics(metrics)}


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
    """The Hub's metadata header, written by ``huggingface_hub.ModelCardData``."""
    from huggingface_hub import ModelCardData

    meta = ModelCardData(
        base_model=spec["base_model"]["name"],
        library_name="peft",
        pipeline_tag="text-generation",
        tags=TAGS + [f"benchmark:{spec.get('benchmark')}"],
    )
    return f"---\n{meta.to_yaml()}\n---\n"


def _usage(spec: dict[str, Any]) -> str:
    base = spec["base_model"]["path"]
    text = (
        '```python\nimport flipkd\n\nm = flipkd.load("THIS_DIR")\n'
        'm.score_pairs([("text a", "text b")], mode="gen")  # P(positive word), 0..1\n'
        'm.score_pairs([("text a", "text b")], mode="rep")  # A-tap cosine, -1..1\n'
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
