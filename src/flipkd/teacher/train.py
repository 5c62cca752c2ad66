"""Fine-tune the teacher bi-encoder with sentence-transformers' own trainer and losses.

Nothing here re-implements a loss or a loop: the losses come from
``sentence_transformers.losses`` through :data:`LOSSES`, training from
``SentenceTransformerTrainer``. This module chooses the data columns, the
schedule (evaluate and checkpoint a whole number of times, at least once per
epoch), keeps the best dev checkpoint — or the base model, when it beat them clearly
(:mod:`flipkd.teacher.selection`) — and writes the run directory::

    RUN/run.json       {"kind": "teacher", model, model_dir, finetuned, query_prefix, args...}
    RUN/model/         the fine-tuned sentence-transformers model (absent when zero-shot)
    RUN/metrics.json   dev metrics of the kept model, dev history, sizes, timings

A zero-shot run (``teacher.finetune: false``) only records the base model's directory.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flipkd.config.schema import TeacherConfig
from flipkd.errors import ConfigError, DataError
from flipkd.paths import atomic_dir, write_json
from flipkd.teacher import encoder, selection, speed, trainer_log
from flipkd.teacher.workflow import dev_metrics

log = logging.getLogger(__name__)


def _loss_table() -> dict[str, Callable[[Any], Any]]:
    from sentence_transformers.sentence_transformer import losses

    return {
        "cosent": losses.CoSENTLoss,
        "angle": losses.AnglELoss,
        "mnrl": losses.MultipleNegativesRankingLoss,
        "contrastive": losses.ContrastiveLoss,
    }


LOSSES = ("cosent", "angle", "mnrl", "contrastive")
POSITIVES_ONLY = {"mnrl"}  # losses trained on (anchor, positive) pairs with in-batch negatives
NEEDS_BINARY = {"mnrl", "contrastive"}


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


def _target(pair: Any, loss: str) -> float:
    if pair.label is not None:
        return float(pair.label)
    if loss in NEEDS_BINARY or pair.score is None:
        raise DataError(f"loss {loss!r} needs 0/1 labels", where=f"{pair.source}:{pair.line}")
    return float(pair.score)


def pair_dataset(pairs: Sequence[Any], loss: str) -> Any:
    """The ``datasets.Dataset`` a loss expects: (sentence1, sentence2, label) or, for
    positives-only losses, (anchor, positive) from the label-1 pairs."""
    from datasets import Dataset

    if loss in POSITIVES_ONLY:
        pos = [p for p in pairs if _target(p, loss) == 1]
        return Dataset.from_dict(
            {"anchor": [p.text_a for p in pos], "positive": [p.text_b for p in pos]}
        )
    return Dataset.from_dict(
        {
            "sentence1": [p.text_a for p in pairs],
            "sentence2": [p.text_b for p in pairs],
            "label": [_target(p, loss) for p in pairs],
        }
    )


def subsample(pairs: Sequence[Any], fraction: float, seed: int) -> list[Any]:
    """A seeded random ``fraction`` of the pairs (at least one), in original order."""
    if fraction >= 1:
        return list(pairs)
    k = max(1, round(fraction * len(pairs)))
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), k))
    return [pairs[i] for i in chosen]


def _dev_evaluator(dev: Sequence[Any], batch_size: int) -> tuple[Any, str]:
    """The sentence-transformers dev evaluator and the metric that picks the checkpoint:
    average precision for 0/1 labels, Spearman for graded scores (cosine similarity)."""
    from sentence_transformers.sentence_transformer import evaluation

    a, b = [p.text_a for p in dev], [p.text_b for p in dev]
    common = dict(
        name="dev", batch_size=batch_size, write_csv=False, similarity_fn_names=["cosine"]
    )
    if all(p.label is not None for p in dev):
        labels = [p.label for p in dev]
        return evaluation.BinaryClassificationEvaluator(a, b, labels, **common), "dev_cosine_ap"
    scores = [p.score for p in dev]
    return evaluation.EmbeddingSimilarityEvaluator(a, b, scores, **common), "dev_spearman_cosine"


def schedule(n_train: int, batch_size: int, epochs: float) -> tuple[int, int]:
    """(eval_steps, max_steps): ``ceil(epochs)`` evaluations at equal intervals.

    The length is rounded up to a whole number of intervals so the last step is
    evaluated too (it may exceed ``epochs`` by fewer than ``ceil(epochs)`` steps).
    """
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    n_evals = max(1, math.ceil(epochs))
    eval_steps = max(1, math.ceil(epochs * steps_per_epoch / n_evals))
    return eval_steps, eval_steps * n_evals


def _fit(
    model: Any,
    train: Sequence[Any],
    dev: Sequence[Any],
    ckpt_dir: Path,
    cfg: TeacherConfig,
    query_prefix: str,
    progress: bool,
) -> tuple[list[dict[str, float]], dict[str, Any], Path | None]:
    """Run SentenceTransformerTrainer: (dev history, training info, the best dev checkpoint's
    directory). ``info["best_step"]`` is 0 when the base model beat every checkpoint."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers

    evaluator, primary = _dev_evaluator(dev, cfg.encode_batch_size)
    train_ds, dev_ds = pair_dataset(train, cfg.loss), pair_dataset(dev, cfg.loss)
    frozen = speed.freeze_word_embeddings(model) if cfg.freeze_embeddings else 0
    eval_steps, max_steps = schedule(len(train_ds), cfg.batch_size, cfg.epochs)
    best_metric = f"eval_{primary}"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        warmup_steps=int(round(cfg.warmup_ratio * max_steps)),
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,  # the trainer's rotation always keeps the best one too
        save_only_model=True,
        # loaded below by our own loader: the trainer's in-place load fails on models whose
        # checkpoint gains weights the base lacked (e5's unused pooler) and only logs it
        load_best_model_at_end=False,
        metric_for_best_model=best_metric,
        greater_is_better=True,
        logging_steps=eval_steps,
        report_to="none",
        dataloader_pin_memory=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=not progress,
        prompts=query_prefix or None,
        batch_sampler=_batch_sampler(model, cfg, query_prefix, BatchSamplers),
    )
    clock = speed.StepClock()
    trainer_log.set_card_examples(model, dev)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        loss=_loss_table()[cfg.loss](model),
        evaluator=evaluator,
        callbacks=[clock],
    )
    if not progress:
        trainer_log.log_lines_instead_of_prints(trainer)
    history = [{"step": 0, **trainer.evaluate()}]
    start = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - start
    best = trainer.state.best_model_checkpoint
    history += [
        {k: v for k, v in entry.items() if k.startswith("eval_") or k in ("step", "epoch")}
        for entry in trainer.state.log_history
        if "eval_loss" in entry
    ]
    info = {
        "train_pairs": len(train),
        "train_seconds": round(seconds, 2),
        "train_pairs_per_second": round(max_steps * cfg.batch_size / max(seconds, 1e-9), 1),
        "step_seconds": round(clock.seconds, 2),
        "step_cpu_seconds": round(clock.cpu_seconds, 2),
        "step_pairs_per_second": round(max_steps * cfg.batch_size / max(clock.seconds, 1e-9), 2),
        "frozen_parameters": frozen,
        "steps": max_steps,
        "eval_steps": eval_steps,
        "train_loss": out.training_loss,
        "best_metric": best_metric,
        "best_value": trainer.state.best_metric,
        "best_step": _step_of(trainer.state.best_model_checkpoint),
    }
    info["base_value"] = history[0][best_metric]
    return history, info, Path(best) if best else None


def _batch_sampler(model: Any, cfg: TeacherConfig, query_prefix: str, kinds: Any) -> Any:
    """No duplicates for in-batch-negative losses; length-grouped batches when asked; else
    sentence-transformers' random batches."""
    if cfg.loss in POSITIVES_ONLY:
        return kinds.NO_DUPLICATES
    if not cfg.group_by_length:
        return kinds.BATCH_SAMPLER
    return speed.LengthGroupedBatches(model.tokenizer, query_prefix, cfg.max_length)


def _step_of(checkpoint: str | None) -> int | None:
    if not checkpoint:
        return None
    return int(checkpoint.rsplit("-", 1)[-1])


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
        train = subsample(pairs_train, cfg.train_fraction, cfg.seed)
        if not train:
            raise DataError("no training pairs for the teacher (train split empty?)")
        history, info, best = _fit(
            model, train, pairs_dev, run_dir / ".checkpoints", cfg, query_prefix, progress
        )
        # the base model is a candidate too
        if selection.keep_base(base, best, pairs_dev, cfg, info):
            info.update(best_step=0, best_value=info["base_value"])
            model = encoder.load_encoder(base)
        elif best is not None:  # the trainer leaves the last step's weights in memory
            encoder.carry_load_kwargs(base.model_dir, best)
            model = encoder.load_encoder(replace(base, model_dir=best))
        model_dir = _save_model(model, run_dir, base.model_dir)
    args = _args_record(cfg, query_prefix, progress)
    metrics = _record(
        run_dir,
        model,
        base,
        model_dir,
        pairs_dev,
        cfg.encode_batch_size,
        args,
        info,
        history,
        cfg.finetune,
    )
    return TeacherRun(run_dir, model_dir, cfg.finetune, metrics, history)


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
