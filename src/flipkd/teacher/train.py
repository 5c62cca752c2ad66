"""Fine-tune the teacher bi-encoder and write its run directory.

The training itself is one ``SentenceTransformerTrainer`` run (:mod:`flipkd.teacher.fit`,
sentence-transformers' own trainer and losses). This module sub-samples the training pairs,
keeps the best dev checkpoint — or the base model, when it beat them clearly
(:mod:`flipkd.teacher.selection`) — and writes the run directory::

    RUN/run.json       {"kind": "teacher", model, model_dir, finetuned, query_prefix, args...}
    RUN/model/         the fine-tuned sentence-transformers model (absent when zero-shot)
    RUN/metrics.json   dev metrics of the kept model, dev history, sizes, timings

A zero-shot run (``teacher.finetune: false``) only records the base model's directory.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flipkd.config.schema import TeacherConfig
from flipkd.errors import ConfigError, DataError
from flipkd.paths import atomic_dir, write_json
from flipkd.teacher import encoder, fit, selection
from flipkd.teacher.fit import LOSSES, POSITIVES_ONLY
from flipkd.teacher.workflow import dev_metrics

log = logging.getLogger(__name__)


@dataclass
class TeacherRun:
    """What :func:`train_teacher` produced.

    Attributes:
        run_dir: The run directory.
        model_dir: The sentence-transformers directory to load (the base model when zero-shot).
        finetuned: Whether the model was fine-tuned.
        metrics: Dev metrics of the kept model (threshold chosen on dev itself).
        history: Dev evaluations during training (step 0 first), as the trainer logged them.
    """

    run_dir: Path
    model_dir: Path
    finetuned: bool
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


def subsample(pairs: Sequence[Any], fraction: float, seed: int) -> list[Any]:
    """A seeded random ``fraction`` of the pairs (at least one), in original order."""
    if fraction >= 1:
        return list(pairs)
    k = max(1, round(fraction * len(pairs)))
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), k))
    return [pairs[i] for i in chosen]


def train_teacher(
    pairs_train: Sequence[Any],
    pairs_dev: Sequence[Any],
    cfg: TeacherConfig | None = None,
    *,
    model_path: str | Path,
    out_dir: str | Path,
    query_prefix: str = "",
    model_id: str | None = None,
    progress: bool = True,
) -> TeacherRun:
    """Fine-tune (or just record, when ``cfg.finetune`` is false) a teacher and write its run
    directory.

    The hyperparameters come from ``cfg``: ``loss`` (one of :data:`LOSSES`), ``epochs``
    (passes over the sub-sampled training pairs; fractions allowed), ``batch_size``, ``lr``
    (peak; linear warmup and decay), ``warmup_ratio``, ``train_fraction`` (seeded share of
    ``pairs_train`` used: the teacher-strength control), ``finetune`` (false records the base
    model as a zero-shot teacher), ``max_length`` (tokens per text), ``seed`` (sub-sampling,
    shuffling and initialisation), ``encode_batch_size`` (texts per batch when encoding for
    evaluation), ``freeze_embeddings`` (see :mod:`flipkd.teacher.speed`) and
    ``group_by_length``. ``cfg.model``, ``cfg.run`` and ``cfg.noise`` are not read here: the
    caller resolves the model into ``model_path``, ``query_prefix`` and ``model_id``.

    Args:
        pairs_train: Training pairs (``text_a``, ``text_b``, ``label`` or ``score``).
        pairs_dev: Dev pairs: per-interval evaluation and checkpoint choice (dev AP, or
            Spearman for graded data).
        cfg: The teacher section of the config (None: :class:`TeacherConfig` defaults).
        model_path: The base sentence-transformers directory.
        out_dir: The run directory.
        query_prefix: Prefix of every input ("query: " for e5).
        model_id: Readable base model name for the records (default: the directory name).
        progress: Show progress bars.
    """
    cfg = TeacherConfig() if cfg is None else cfg
    _check(cfg, pairs_dev)
    from transformers import set_seed

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = encoder.TeacherSource(
        model_id or Path(model_path).name, Path(model_path), query_prefix, cfg.max_length
    )
    set_seed(cfg.seed)
    model = encoder.load_encoder(base)
    history: list[dict[str, float]] = []
    info: dict[str, Any] = {"train_pairs": 0}
    model_dir = base.model_dir.resolve()
    if cfg.finetune:
        model, model_dir, history, info = _finetune(
            model, base, pairs_train, pairs_dev, cfg, run_dir, progress
        )
    args = _args_record(cfg, query_prefix, progress)
    metrics = _record(
        run_dir, model, base, model_dir, pairs_dev, cfg.encode_batch_size, args, info, history,
        cfg.finetune,
    )  # fmt: skip
    return TeacherRun(run_dir, model_dir, cfg.finetune, metrics, history)


def _check(cfg: TeacherConfig, pairs_dev: Sequence[Any]) -> None:
    """Fail on settings that cannot work together, before any model is loaded."""
    # configs copied without validation (model_copy(update=...)) get here unchecked
    if cfg.loss not in LOSSES:
        raise ConfigError(
            f"teacher.loss: unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}"
        )
    if cfg.group_by_length and cfg.loss in POSITIVES_ONLY:
        raise ConfigError(
            f"teacher.group_by_length: loss {cfg.loss!r} needs batches without duplicate texts; "
            "set teacher.group_by_length=false"
        )
    if not pairs_dev:
        raise DataError("the dev split is empty; the teacher needs it to choose a checkpoint")


def _finetune(
    model: Any,
    base: encoder.TeacherSource,
    pairs_train: Sequence[Any],
    pairs_dev: Sequence[Any],
    cfg: TeacherConfig,
    run_dir: Path,
    progress: bool,
) -> tuple[Any, Path, list[dict[str, float]], dict[str, Any]]:
    """Train ``model`` (the base, loaded) on the sub-sampled pairs; keep the best dev checkpoint
    or the base model, and save it.

    Returns the kept model, where it was saved, the evaluation history and the training info.
    """
    train = subsample(pairs_train, cfg.train_fraction, cfg.seed)
    if not train:
        raise DataError("no training pairs for the teacher (train split empty?)")
    history, info, best = fit.fit(
        model, train, pairs_dev, run_dir / ".checkpoints", cfg, base.query_prefix, progress
    )
    # the base model is a candidate too
    if selection.keep_base(base, best, pairs_dev, cfg, info):
        info.update(best_step=0, best_value=info["base_value"])
        model = encoder.load_encoder(base)
    elif best is not None:  # the trainer leaves the last step's weights in memory
        encoder.carry_load_kwargs(base.model_dir, best)
        model = encoder.load_encoder(replace(base, model_dir=best))
    return model, _save_model(model, run_dir, base.model_dir), history, info


def _args_record(cfg: TeacherConfig, query_prefix: str, progress: bool) -> dict[str, Any]:
    """The ``args`` of ``run.json``: the training settings, keys and order as they always were."""
    keys = (
        "loss", "epochs", "batch_size", "lr", "warmup_ratio", "train_fraction", "max_length",
        "seed", "query_prefix", "encode_batch_size", "progress", "freeze_embeddings",
        "group_by_length",
    )  # fmt: skip
    given = {"query_prefix": query_prefix, "progress": progress}
    return {k: given[k] if k in given else getattr(cfg, k) for k in keys}


def _save_model(model: Any, run_dir: Path, base_dir: Path) -> Path:
    """Write ``RUN/model`` atomically (loaded as ``base_dir`` is) and drop the checkpoints."""
    with atomic_dir(run_dir / "model") as tmp:
        model.save(str(tmp))
        encoder.carry_load_kwargs(base_dir, tmp)
    shutil.rmtree(run_dir / ".checkpoints", ignore_errors=True)
    return run_dir / "model"


def _record(
    run_dir: Path,
    model: Any,
    base: encoder.TeacherSource,
    model_dir: Path,
    dev: Sequence[Any],
    encode_batch_size: int,
    args: dict[str, Any],
    info: dict[str, Any],
    history: list[dict[str, float]],
    finetuned: bool,
) -> dict[str, Any]:
    """Score dev with the kept model; write ``metrics.json`` and ``run.json``."""
    scores, rate = selection.dev_scores(model, dev, encode_batch_size)
    metrics = {
        "dev": dev_metrics(scores, dev),
        "dev_pairs": len(dev),
        "encode_texts_per_second": round(rate, 1),
        **info,
        "history": history,
    }
    write_json(run_dir / "metrics.json", metrics)
    run_info = {
        "kind": "teacher",
        "model": base.model_id,
        "base_model_dir": str(base.model_dir.resolve()),
        "model_dir": "model" if finetuned else str(model_dir),
        "finetuned": finetuned,
        "query_prefix": base.query_prefix,
        "max_length": base.max_length,
        "args": args,
    }
    write_json(run_dir / "run.json", run_info)
    log.info("teacher run %s: dev %s", run_dir, _headline(metrics["dev"]))
    return metrics


def _headline(dev: dict[str, Any]) -> str:
    keys = [k for k in ("f1", "accuracy", "roc_auc", "spearman") if k in dev]
    return ", ".join(f"{k}={dev[k]:.4f}" for k in keys)
