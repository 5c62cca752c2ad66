"""``flipkd export RUN --out DIR``: a trained student as files that load anywhere.

The export directory holds::

    DIR/flipkd.json     what flipkd.load needs: base pointer + hashes, tap, prompt,
                        thresholds (and where they came from), teacher, versions
    DIR/adapter/        the peft adapter (PeftModel.from_pretrained(base, DIR/adapter))
    DIR/tokenizer/      the tokenizer the student used (pad token set)
    DIR/embedder/       the A-tap: its A matrices (safetensors) + embedder.json
    DIR/merged/         optional: base with B·A folded in, for AutoModelForCausalLM alone
    DIR/config.yaml     the run's resolved config (for reference)
    DIR/eval/, plots/   the run's evaluation JSONs and plots, copied
    DIR/README.md       the model card

The embedder does not copy the base layers below the tapped module: the tap
reads the input of a module in the *adapted* model, so it needs the base plus
the adapter's LoRA layers up to that point anyway, and for the default tap (last
layer) a copy would be the whole model again. It stores the tapped A matrices,
how to pool and combine them, and a pointer (name, path, hashes) to the base.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flipkd.config import FlipkdConfig, load_config
from flipkd.errors import FlipkdError
from flipkd.export.card import copy_plots, write_card
from flipkd.export.spec import EXPORT_FILE, FORMAT, FORMAT_VERSION, ExportSpec
from flipkd.export.thresholds import choose_mix, choose_thresholds, collect_evals
from flipkd.models.layers import layer_index
from flipkd.modes import MEANING, MODES
from flipkd.paths import atomic_dir, hash_files, write_json

log = logging.getLogger(__name__)


@dataclass
class StudentRun:
    """A student run directory: its run.json, resolved config and chosen adapter."""

    path: Path
    info: dict[str, Any]
    config: FlipkdConfig
    adapter_dir: Path


def read_student_run(run_dir: str | Path) -> StudentRun:
    """Read a student run directory, or raise a one-line :class:`FlipkdError` naming it."""
    from flipkd.evaluation import read_run_info

    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    kind = info.get("kind")
    if kind != "student":
        raise FlipkdError(
            f"is a {kind!r} run, not a student run; export a run made by the student trainer",
            where=str(run_dir),
        )
    if not (run_dir / "config.yaml").is_file():
        raise FlipkdError("student run without config.yaml", where=str(run_dir))
    adapter = run_dir / info.get("adapter", "adapter")
    if not (adapter / "adapter_config.json").is_file():
        raise FlipkdError(
            f"no peft adapter in {adapter.name}/ (training did not finish?)", where=str(run_dir)
        )
    return StudentRun(run_dir, info, load_config(run_dir / "config.yaml"), adapter)


# --- base model pointer ---------------------------------------------------------------------
def describe_base(name: str, *, hash_weights: bool = True) -> dict[str, Any]:
    """Where the student's base model is and what it hashes to.

    ``config_hash`` hashes ``config.json``'s bytes; ``weights_hash`` is SHA-256
    (first 16 hex digits) over the ``*.safetensors`` files in name order.
    """
    from flipkd.models import REGISTRY, resolve_student

    resolved = resolve_student(name)
    path = Path(resolved.path)
    base: dict[str, Any] = {
        "name": name,
        "registered": name in REGISTRY,
        "path": str(path.resolve()) if path.is_dir() else resolved.path,
    }
    if path.is_dir():
        base.update(base_hashes(path, hash_weights=hash_weights))
    return base


def base_hashes(path: Path, *, hash_weights: bool = True) -> dict[str, Any]:
    """``config_hash``, ``weights_files`` and (optionally) ``weights_hash`` of a model dir."""
    weights = sorted(path.glob("*.safetensors"))
    config = path / "config.json"
    out: dict[str, Any] = {
        "config_hash": hash_files([config]) if config.is_file() else None,
        "weights_files": [w.name for w in weights],
    }
    if hash_weights:
        out["weights_hash"] = hash_files(weights) if weights else None
    return out


# --- the embedder -----------------------------------------------------------------------------
def _base_params(module) -> int:
    """Parameters of ``module`` that belong to the base model (LoRA matrices excluded)."""
    return sum(p.numel() for n, p in module.named_parameters() if "lora_" not in n)


def _base_params_upto(model, last_layer: int) -> int:
    """Base parameters an encode pass runs through: embeddings and layers ``0..last_layer``."""
    decoder = model.get_base_model().get_decoder()
    layers = decoder.layers[: last_layer + 1]
    return _base_params(decoder.get_input_embeddings()) + sum(_base_params(x) for x in layers)


def write_embedder(student, target: Path, base: dict[str, Any]) -> dict[str, Any]:
    """Write the tapped A matrices (adapter key names) and ``embedder.json``; return the latter."""
    from safetensors.torch import save_file

    from flipkd.student.lora import lora_a, lora_a_weights

    tap = student.tap
    weights = lora_a_weights(dict(zip(tap.names, tap.layers, strict=True)), tap.adapter)
    target.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(target / "tap_A.safetensors"))
    last = max(layer_index(n) for n in tap.names)
    total = _base_params(student.model.get_base_model())
    needed = _base_params_upto(student.model, last)
    spec = {
        "weights": "tap_A.safetensors",
        "modules": list(tap.names),
        "ranks": [lora_a(layer, tap.adapter).out_features for layer in tap.layers],
        "pool": tap.pool_how,
        "combine": tap.combine,
        "dim": tap.dim,
        "stop_after_layer": last,
        "representation": (
            "for each module: A · x, x = the module's input in base+adapter (LoRA active in "
            "every layer, dropout off); pool over the text's real tokens (mean, or the last "
            "one); combine=concat: L2-normalise each and concatenate, combine=mean: average; "
            "then L2-normalise"
        ),
        "needs": {"base_model": base, "adapter": "../adapter"},
        "base_params_needed": needed,
        "base_params_total": total,
        "base_layers_copied": False,
    }
    write_json(target / "embedder.json", spec)
    return spec


# --- flipkd.json ------------------------------------------------------------------------------
def prompt_spec(student) -> dict[str, Any]:
    """The prompt as the student renders it (resolved language, template, label words)."""
    chat = getattr(student.tokenizer, "chat_template", None) if student.use_chat_template else None
    return {
        "language": student.prompt.language,
        "template": student.prompt.template,
        "label_words": list(student.prompt.label_words),
        "label_token_ids": list(student.label_ids),
        "use_chat_template": student.use_chat_template,
        "chat_template": chat,
        "answer_suffix": None if student.use_chat_template else student.prompt.answer_suffix,
        "label_prefix": None if student.use_chat_template else student.prompt.label_prefix,
    }


def tap_spec(student, layers: list[int], modules: list[str]) -> dict[str, Any]:
    """The tap as configured (``layers``, ``modules``) and as resolved (names, dimension)."""
    return {
        "layers": list(layers),
        "modules": list(modules),
        "pool": student.tap.pool_how,
        "combine": student.tap.combine,
        "module_names": list(student.tap.names),
        "dim": student.tap.dim,
    }


def build_spec(
    run: StudentRun,
    student,
    base: dict[str, Any],
    thresholds: dict[str, float],
    sources: dict[str, str],
    mix: dict[str, Any] | None = None,
) -> ExportSpec:
    """The content of ``flipkd.json`` (embedder, plots and merged are added while writing)."""
    import flipkd

    cfg, info = run.config, run.info
    return ExportSpec(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        flipkd_version=flipkd.__version__,
        name=cfg.name,
        benchmark=info.get("benchmark", cfg.data.benchmark),
        base_model=base,
        adapter={
            "dir": "adapter",
            "from_run": run.adapter_dir.name,
            **cfg.student.lora.model_dump(mode="json"),
        },
        tap=tap_spec(student, cfg.student.tap.layers, cfg.student.tap.modules),
        prompt=prompt_spec(student),
        max_length=student.max_length,
        max_text_length=student.max_text_length,
        thresholds=thresholds,
        threshold_sources=sources,
        scores={mode: MEANING[mode] for mode in (*MODES, *(["mix"] if mix else []))},
        teacher={
            "model": info.get("teacher_model"),
            "weights_hash": info.get("teacher_weights_hash"),
            "cache": info.get("teacher_cache"),
        },
        config_hash=info.get("config_hash"),
        run=str(run.path.resolve()),
        **({"mix": mix} if mix else {}),
    )


# --- writing ----------------------------------------------------------------------------------
def _copy_adapter(src: Path, target: Path, base: dict[str, Any]) -> None:
    shutil.copytree(src, target)
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base["path"]
    write_json(config_path, config)


def _write_merged(student, target: Path) -> None:
    """Fold B·A into the base (consumes the student's model) and save it with the tokenizer."""
    from flipkd.student.lora import merged_base

    student.tap.remove()
    model = merged_base(student.model)
    model.config.use_cache = True
    model.save_pretrained(str(target))
    student.tokenizer.save_pretrained(str(target))


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier export (the write replaces ``out`` whole)."""
    if out.exists() and not out.is_dir():
        raise FlipkdError("is a file, not a directory; choose a new or empty --out", where=str(out))
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_FILE).is_file():
        raise FlipkdError(
            "exists and is not a flipkd export; choose an empty or new --out", where=str(out)
        )


def load_run_student(run: StudentRun):
    """Base + the run's chosen adapter, frozen, in eval mode (the in-memory student)."""
    from flipkd.student import build_student

    student = build_student(
        run.config.student, benchmark=run.config.data.benchmark, adapter_dir=run.adapter_dir,
        trainable=False,
    )  # fmt: skip
    student.model.eval()
    return student


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    merged: bool = False,
    eval_paths: list[Path] | tuple[Path, ...] = (),
    hash_weights: bool = True,
) -> dict[str, Any]:
    """Export a student run; returns the written ``flipkd.json`` content.

    Args:
        run_dir: A student run directory (run.json kind "student").
        out: The export directory (replaced atomically if it is an older export).
        merged: Also write ``merged/``, the base with the adapter folded in.
        eval_paths: Eval JSONs whose dev thresholds win over the run's own ``eval/*.json``.
        hash_weights: Hash the base weights (slow for big models; needed for load-time checks).
    """
    run, out = read_student_run(run_dir), Path(out)
    _check_out(out)
    evals = collect_evals(run.path, list(eval_paths))
    explicit = len({Path(e).resolve() for e in eval_paths})
    thresholds, sources = choose_thresholds(evals, explicit=explicit)
    base = describe_base(run.config.student.model, hash_weights=hash_weights)
    student = load_run_student(run)
    spec = build_spec(run, student, base, thresholds, sources, choose_mix(evals).get("mix"))
    with atomic_dir(out) as tmp:
        _copy_adapter(run.adapter_dir, tmp / "adapter", base)
        student.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        spec.embedder = {"dir": "embedder", **write_embedder(student, tmp / "embedder", base)}
        shutil.copy2(run.path / "config.yaml", tmp / "config.yaml")
        for path, result in evals:
            if not (tmp / "eval" / path.name).exists():  # an explicit JSON wins a name clash
                write_json(tmp / "eval" / path.name, result)
        spec.plots = copy_plots(run.path, tmp / "plots")
        spec.merged = "merged" if merged else None
        if merged:
            _write_merged(student, tmp / "merged")
        content = spec.to_json()
        write_json(tmp / EXPORT_FILE, content)
        write_card(tmp, content, run.path, evals)
    log.info("exported %s to %s", run.path, out)
    return content
