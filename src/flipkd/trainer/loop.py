"""The training loop, read top to bottom. Only this package talks to accelerate.

config → student + optimizer + schedule → (resume) → for each step:
    global batch (a pure function of seed and step) → this process's slice (micro.py) →
    one forward (label pass + A-tap pass) → gather representations →
    L_gen + α·L_contrast + β·L_dist → backward → clip → step → log →
    dev evaluation (keep best adapter) → checkpoint (atomic)
→ final adapter, run.json, summary.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from flipkd.config import FlipkdConfig, TrainConfig, config_hash, save_resolved
from flipkd.errors import ConfigError
from flipkd.paths import write_json
from flipkd.student import Student, build_student
from flipkd.trainer import checkpoint as ckpt
from flipkd.trainer.clip import TermApart, clip, clip_groups
from flipkd.trainer.devset import evaluate_dev
from flipkd.trainer.diagnose import filter_coverage, filter_message
from flipkd.trainer.hard_batches import teacher_groups
from flipkd.trainer.logs import StepLog, trackers
from flipkd.trainer.micro import micro_step
from flipkd.trainer.precision import (
    precision_warning,
    prefix_dtype,
    resolve_precision,
    switch_precision,
)
from flipkd.trainer.sampler import batch_indices
from flipkd.trainer.step import LossSet, build_losses, class_weights
from flipkd.trainer.validate import nonfinite_loss, validate_setup

log = logging.getLogger(__name__)

SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # layers are wrapped: no prefix cache


@dataclass
class TrainResult:
    """Where the trained adapter is and what the run saw."""

    run_dir: Path
    adapter_dir: Path
    best_adapter_dir: Path | None
    steps: int
    seconds: float
    last_log: dict


def _save_adapter(acc: Accelerator, model, target: Path) -> None:
    """A peft adapter directory any peft user can load."""
    # gathered by the engine (DDP, FSDP, DeepSpeed ZeRO-3)
    state = {k.removeprefix("peft."): v for k, v in acc.get_state_dict(model).items()}
    if acc.is_main_process:
        acc.unwrap_model(model).peft.save_pretrained(str(target), state_dict=state)


@dataclass
class _Session:
    """Everything the steps of one training run share (built by :func:`_setup`)."""

    cfg: FlipkdConfig
    run_dir: Path
    acc: Accelerator
    student: Student
    model: torch.nn.Module  # the prepared (engine-wrapped) ``Student``
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    losses: LossSet
    clip_sets: list[list]
    term_apart: TermApart | None
    cache: object
    train_pairs: list
    dev_pairs: list | None
    chash: str
    groups: np.ndarray | None = None  # train.hard_batches: each training pair's cluster
    steplog: StepLog | None = None
    best: float = float("-inf")
    best_dir: Path | None = None
    start_step: int = 0
    # training seconds spent before this invocation (read from the checkpoint resumed); None
    # when that checkpoint predates the record, so the run's total time is unknown
    prior_seconds: float | None = 0.0
    t0: float = 0.0
    filter: dict | None = None  # what the dual-threshold filter keeps (diagnose.filter_coverage)

    def train_seconds(self) -> float | None:
        """Training seconds of the whole run so far, over every invocation (None: unknown)."""
        elapsed = time.perf_counter() - self.t0
        return None if self.prior_seconds is None else self.prior_seconds + elapsed

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def main(self) -> bool:
        return self.acc.is_main_process


def train_student(
    cfg: FlipkdConfig,
    run_dir: Path,
    *,
    cache,
    train_pairs: list,
    dev_pairs: list | None = None,
    resume: bool = False,
    student: Student | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the student's LoRA adapter with flipped distillation.

    Args:
        cfg: The resolved run config.
        run_dir: Output directory (config, logs, checkpoints, adapters).
        cache: The teacher cache (``TeacherCache``) covering every training text.
        train_pairs: Training ``PairRecord`` s.
        dev_pairs: Dev pairs for periodic evaluation (``train.eval_every``).
        resume: Continue from the newest complete checkpoint in ``run_dir``.
        student: An already-built student (tests); built from ``cfg.student`` otherwise.
        progress: Show a progress bar.
    """
    run_dir = Path(run_dir)
    validate_setup(cfg, train_pairs, cache, run_dir, resume)
    run = _setup(cfg, run_dir, cache, train_pairs, dev_pairs, student)
    _report_filter(run, train_pairs)
    start = run.start_step = _resume(run) if resume else 0
    if run.main:
        save_resolved(cfg, run_dir)
    run.steplog = StepLog(run.acc)
    tc, values = cfg.train, {}
    run.t0 = time.perf_counter()
    bar = tqdm(
        range(start, tc.steps), initial=start, total=tc.steps, disable=not (progress and run.main)
    )
    run.model.train()
    for step in bar:
        values = _train_step(run, step)
        done = step + 1
        if done % tc.log_every == 0 or done == tc.steps:
            run.steplog.write(done, values)
        bar.set_postfix(loss=f"{values['loss']:.3f}")
        if tc.eval_every and run.dev_pairs and (done % tc.eval_every == 0 or done == tc.steps):
            _evaluate(run, done)
        if tc.save_every and (done % tc.save_every == 0 or done == tc.steps):
            _checkpoint(run, done, values)
        run.acc.wait_for_everyone()
    return _finish(run, values)


def _setup(
    cfg: FlipkdConfig, run_dir: Path, cache, train_pairs: list, dev_pairs, student
) -> _Session:
    """Accelerator, student, optimizer, schedule and losses, prepared by the engine."""
    tc = cfg.train
    losses = _losses(cfg, train_pairs)
    acc = _accelerator(tc, run_dir, losses)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_seed(tc.seed)
    student = student or build_student(
        cfg.student, benchmark=cfg.data.benchmark,
        gradient_checkpointing=tc.gradient_checkpointing, init_seed=tc.seed,
    )  # fmt: skip
    student.pack_tokens = cfg.student.pack_tokens  # every pass packed: exact, less padding
    sharded = acc.distributed_type.name in SHARDED
    if tc.clip_scope != "global" and sharded:
        raise ConfigError(
            f"train.clip_scope {tc.clip_scope!r} needs unsharded parameters; "
            f"{acc.distributed_type.name} clips one global norm: use clip_scope global"
        )
    if student.prefix is None and not sharded:
        dtype = prefix_dtype(tc)
        depth = student.enable_prefix_cache(cfg.student.model, tc.prefix_cache_gb, dtype)
        where = f"layers 0-{depth - 1} in {dtype}" if depth else "off"
        log.info("frozen-prefix cache: %s", where)
    student.gen_vocab = cfg.loss.gen_vocab
    module = student  # the nn.Module the engine wraps
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    clip_sets = clip_groups(student, params, tc.clip_scope)
    split = tc.clip_scope == "term-apart" and losses.gen and losses.needs_rep
    term_apart = TermApart(params, [n for n, _ in named], tc.grad_route) if split else None
    optimizer = torch.optim.AdamW(
        params, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, tc.adam_beta2)
    )
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, int(tc.warmup_ratio * tc.steps), tc.steps, min_lr_rate=tc.min_lr_ratio
    )
    model, optimizer = acc.prepare(module, optimizer)
    ckpt.attach(acc, scheduler)
    # every process clusters the same pairs with the same seed: the same groups
    groups = None
    if tc.hard_batches:
        groups = teacher_groups(train_pairs, cache, tc.hard_batches, tc.seed)
    return _Session(
        cfg, run_dir, acc, student, model, optimizer, scheduler, losses, clip_sets, term_apart,
        cache, train_pairs, dev_pairs, config_hash(cfg), groups,
    )  # fmt: skip


def _losses(cfg: FlipkdConfig, train_pairs: list) -> LossSet:
    """The loss terms, with L_gen's class weights from the training pairs' share of positives
    when ``loss.gen_balance`` asks for them."""
    losses = build_losses(cfg.loss)
    if losses.gen and cfg.loss.gen_balance:
        share = sum(r.label == 1 for r in train_pairs) / len(train_pairs)
        losses.gen_class_weights = class_weights(cfg.loss.gen_balance, share)
        log.info(
            "L_gen class weights (loss.gen_balance=%g, %.0f%% positives): positive %.2f, "
            "negative %.2f", cfg.loss.gen_balance, 100 * share, *losses.gen_class_weights,
        )  # fmt: skip
    return losses


def _accelerator(tc: TrainConfig, run_dir: Path, losses: LossSet) -> Accelerator:
    """The engine: mixed precision as resolved for this machine, gradient accumulation,
    trackers under ``RUN/logs``."""
    mixed = resolve_precision(tc.mixed_precision)
    if warning := precision_warning(mixed):
        log.warning(warning)
    switch_precision(mixed)
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # lets torchrun / accelerate launch use gloo on CPU
        mixed_precision=mixed,
        gradient_accumulation_steps=tc.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=not losses.gen)],
        log_with=trackers(run_dir / "logs"),
        project_dir=str(run_dir / "logs"),
    )


def _resume(run: _Session) -> int:
    """Restore the newest complete checkpoint and the best adapter kept before it; its step."""
    latest = ckpt.latest_checkpoint(run.ckpt_dir)
    state = ckpt.resume(
        run.acc, latest, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
        config_hash=run.chash,
    )  # fmt: skip
    log.info("resuming %s at step %d", run.run_dir, state["step"])
    run.prior_seconds = state.get("train_seconds")
    summary = run.run_dir / "train_summary.json"
    if run.prior_seconds is None and state["step"] == run.cfg.train.steps and summary.is_file():
        run.prior_seconds = json.loads(summary.read_text()).get("seconds")  # an older finish
    if (run.run_dir / "best.json").is_file():  # keep the best adapter found before the kill
        run.best = json.loads((run.run_dir / "best.json").read_text())[run.cfg.train.select_metric]
        run.best_dir = run.run_dir / "best_adapter"
    return state["step"]


def _train_step(run: _Session, step: int) -> dict:
    """One optimizer step (``grad_accum`` micro-batches); the last micro-batch's log values."""
    tc, acc, model = run.cfg.train, run.acc, run.model
    t_step = time.perf_counter()
    diagnose = bool(tc.diagnose_every) and (step % tc.diagnose_every == 0 or step + 1 == tc.steps)
    values: dict = {}
    norms: dict = {}
    for k in range(tc.grad_accum):
        idx = batch_indices(
            len(run.train_pairs), tc.batch_size, tc.seed, step * tc.grad_accum + k, run.groups
        )
        with acc.accumulate(model):
            parts: dict | None = {} if run.term_apart else None
            loss, values = micro_step(
                acc, model, run.losses, [run.train_pairs[i] for i in idx], run.cache,
                diagnose and k == 0, parts,
            )  # fmt: skip
            if acc.gather(torch.isfinite(loss.detach()).float().reshape(1)).min() < 1:
                raise nonfinite_loss(step + 1, values, run.ckpt_dir)  # before any update
            if parts and parts["rep"] is not None and parts["gen"] is not None:
                run.term_apart.add(parts["rep"], 1.0 / tc.grad_accum)  # as backward scales
                acc.backward(parts["gen"])
            else:
                acc.backward(loss)
            if acc.sync_gradients:
                norms = (
                    run.term_apart.apply(acc, tc.max_grad_norm, tc.rep_max_grad_norm)
                    if run.term_apart
                    else clip(acc, run.clip_sets, tc.clip_scope, tc.max_grad_norm)
                )  # fmt: skip
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    values.update(norms)
    values.update(lr=run.scheduler.get_last_lr()[0], step_seconds=time.perf_counter() - t_step)
    return values


def _evaluate(run: _Session, step: int) -> None:
    """Score dev in both modes; keep the adapter when the selection metric improves."""
    tc = run.cfg.train
    metrics = evaluate_dev(
        run.student, run.dev_pairs, need_rep=run.losses.needs_rep, max_pairs=tc.eval_max_pairs
    )
    run.steplog.write(step, metrics, kind="dev")
    score = metrics.get(tc.select_metric, metrics.get("gen_roc_auc", float("-inf")))
    if score > run.best:
        run.best, run.best_dir = score, run.run_dir / "best_adapter"
        _save_adapter(run.acc, run.model, run.best_dir)
        if run.main:
            write_json(
                run.run_dir / "best.json", {"step": step, tc.select_metric: score, **metrics}
            )
    run.model.train()


def _checkpoint(run: _Session, step: int, values: dict) -> None:
    """An atomic checkpoint through accelerate (every process takes part); old ones pruned."""
    extra = {"loss": values.get("loss")}
    if (seconds := run.train_seconds()) is not None:
        extra["train_seconds"] = seconds
    ckpt.save(run.acc, run.ckpt_dir, step=step, config_hash=run.chash, extra=extra)
    if run.main:
        ckpt.prune(run.ckpt_dir, keep=run.cfg.train.keep_checkpoints)


def _report_filter(run: _Session, pairs: list) -> None:
    """Log what the filter keeps of the training pairs; a warning when it keeps almost no
    positive (the summary records the shares)."""
    run.filter = filter_coverage(run.losses, pairs, run.cache)
    if run.filter is None or not run.main:
        return
    text, few = filter_message(run.losses, run.filter)
    (log.warning if few else log.info)(text)


def _finish(run: _Session, values: dict) -> TrainResult:
    """The final adapter, ``run.json`` and the summary.

    ``seconds`` is the run's training time over every invocation (a resumed run adds the time
    recorded in its checkpoint); when a checkpoint predates that record only this
    invocation's time is known, and ``seconds_complete`` says so.
    """
    this_call = time.perf_counter() - run.t0
    total = None if run.prior_seconds is None else run.prior_seconds + this_call
    seconds = this_call if total is None else total
    adapter_dir = run.run_dir / "adapter"
    _save_adapter(run.acc, run.model, adapter_dir)
    if run.main:
        write_json(
            run.run_dir / "run.json", _run_info(run.cfg, run.run_dir, run.cache, run.best_dir)
        )
        prefix = run.student.prefix.stats() if run.student.prefix else None
        summary = {
            "steps": run.cfg.train.steps, "seconds": seconds, "seconds_complete": total is not None,
            "seconds_this_invocation": this_call, "resumed_at_step": run.start_step,
            "last": values, "prefix_cache": prefix, "mixed_precision": run.acc.mixed_precision,
            "filter": run.filter, "gen_class_weights": list(run.losses.gen_class_weights),
        }  # fmt: skip
        write_json(run.run_dir / "train_summary.json", summary)
    run.steplog.close()
    run.acc.wait_for_everyone()
    return TrainResult(run.run_dir, adapter_dir, run.best_dir, run.cfg.train.steps, seconds, values)


def _run_info(cfg: FlipkdConfig, run_dir: Path, cache, best_dir: Path | None) -> dict:
    return {
        "kind": "student",
        "model": cfg.student.model,
        "benchmark": cfg.data.benchmark,
        "adapter": "best_adapter" if best_dir else "adapter",
        "teacher_cache": str(cache.path),
        "teacher_model": cache.manifest.get("model_id"),
        "teacher_weights_hash": cache.manifest.get("weights_hash"),
        "config_hash": config_hash(cfg),
    }
