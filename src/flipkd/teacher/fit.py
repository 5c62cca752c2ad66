"""One ``SentenceTransformerTrainer`` run for the teacher: datasets, losses, schedule, arguments.

Nothing here re-implements a loss or a loop: the losses come from
``sentence_transformers.losses`` through :data:`LOSSES`, training from
``SentenceTransformerTrainer``. This module chooses the data columns and the schedule
(evaluate and checkpoint a whole number of times, at least once per epoch), and reports the
dev history and where the best dev checkpoint is; :mod:`flipkd.teacher.train` decides what
to keep and writes the run directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flipkd.config.schema import TeacherConfig
from flipkd.errors import DataError
from flipkd.teacher import speed, trainer_log


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


def fit(
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
    from sentence_transformers import SentenceTransformerTrainer

    evaluator, primary = _dev_evaluator(dev, cfg.encode_batch_size)
    train_ds, dev_ds = pair_dataset(train, cfg.loss), pair_dataset(dev, cfg.loss)
    frozen = speed.freeze_word_embeddings(model) if cfg.freeze_embeddings else 0
    eval_steps, max_steps = schedule(len(train_ds), cfg.batch_size, cfg.epochs)
    best_metric = f"eval_{primary}"
    clock = speed.StepClock()
    trainer_log.set_card_examples(model, dev)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=_training_args(
            model, cfg, ckpt_dir, query_prefix, progress, eval_steps, max_steps, best_metric
        ),
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
    history += _dev_history(trainer.state.log_history)
    pairs_seen = max_steps * cfg.batch_size
    info = {
        "train_pairs": len(train),
        "train_seconds": round(seconds, 2),
        "train_pairs_per_second": round(pairs_seen / max(seconds, 1e-9), 1),
        "step_seconds": round(clock.seconds, 2),
        "step_cpu_seconds": round(clock.cpu_seconds, 2),
        "step_pairs_per_second": round(pairs_seen / max(clock.seconds, 1e-9), 2),
        "frozen_parameters": frozen,
        "steps": max_steps,
        "eval_steps": eval_steps,
        "train_loss": out.training_loss,
        "best_metric": best_metric,
        "best_value": trainer.state.best_metric,
        "best_step": _step_of(best),
        "base_value": history[0][best_metric],
    }
    return history, info, Path(best) if best else None


def _dev_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The trainer's dev evaluations: their metrics, step and epoch."""
    return [
        {k: v for k, v in entry.items() if k.startswith("eval_") or k in ("step", "epoch")}
        for entry in log_history
        if "eval_loss" in entry
    ]


def _training_args(
    model: Any,
    cfg: TeacherConfig,
    ckpt_dir: Path,
    query_prefix: str,
    progress: bool,
    eval_steps: int,
    max_steps: int,
    best_metric: str,
) -> Any:
    """The trainer's arguments: evaluate and checkpoint every ``eval_steps``, keep the best
    checkpoint by ``best_metric`` on disk (our own loader reads it back)."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    return SentenceTransformerTrainingArguments(
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
        # loaded by our own loader: the trainer's in-place load fails on models whose
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
