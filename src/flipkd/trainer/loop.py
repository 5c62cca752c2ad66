"""The training loop, read top to bottom. Only this package talks to accelerate.

config → student + optimizer + schedule → (resume) → for each step:
    global batch (a pure function of seed and step) → this process's slice →
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

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from flipkd.config import FlipkdConfig, config_hash, save_resolved
from flipkd.errors import ConfigError
from flipkd.paths import write_json
from flipkd.student import Student, build_student
from flipkd.student.lora import lora_a
from flipkd.trainer import checkpoint as ckpt
from flipkd.trainer.devset import evaluate_dev
from flipkd.trainer.diagnose import margin_stats, term_grad_norms
from flipkd.trainer.logs import StepLog
from flipkd.trainer.sampler import batch_indices, shard
from flipkd.trainer.step import LossSet, StudentStep, batch_loss, build_losses, gen_targets
from flipkd.trainer.validate import nonfinite_loss, validate_setup

log = logging.getLogger(__name__)

SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # layers are wrapped: no prefix cache
PACK_TOKENS = 512  # training packs texts into rows of ~512 tokens (measured: results/perf)


@dataclass
class TrainResult:
    """Where the trained adapter is and what the run saw."""

    run_dir: Path
    adapter_dir: Path
    best_adapter_dir: Path | None
    steps: int
    seconds: float
    last_log: dict


def _precision(choice: str) -> str:
    if choice == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return choice


def _gather(acc: Accelerator, reps: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's representations, keeping gradients to the local part."""
    if acc.num_processes == 1:
        return reps
    import warnings

    from torch.distributed.nn.functional import all_gather  # public, differentiable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(reps.contiguous()), dim=0)


def _micro_step(
    acc, model, losses: LossSet, records, cache, diagnose: bool = False
) -> tuple[torch.Tensor, dict]:
    """Forward and loss for one global micro-batch; this process handles its slice.

    ``diagnose`` adds the batch's diagnostics (``diagnose.py``) to the returned values,
    per-term gradient norms included (one extra backward per term).
    """
    rank, world = acc.process_index, acc.num_processes
    labels = torch.tensor([r.label if r.label is not None else -1 for r in records])
    local = shard(list(range(len(records))), rank, world)
    pairs = [(records[i].text_a, records[i].text_b) for i in local]
    texts = list(dict.fromkeys(t for r in records for t in (r.text_a, r.text_b)))
    padded = texts + texts[-1:] * (-len(texts) % world)
    a_texts, b_texts = [r.text_a for r in records], [r.text_b for r in records]
    teacher_cos = cache.sim(a_texts, b_texts)
    pair_prob = cache.prob(teacher_cos.diagonal()).cpu()
    targets = gen_targets(losses, labels, pair_prob)[local].to(acc.device)
    out = model(
        pairs, targets if losses.gen else None,
        shard(padded, rank, world), need_gen=losses.gen, need_rep=losses.needs_rep,
    )  # fmt: skip
    rep_a = rep_b = None
    if losses.needs_rep:
        reps = _gather(acc, out["reps"])[: len(texts)]
        row = {t: i for i, t in enumerate(texts)}
        rep_a = reps[[row[r.text_a] for r in records]]
        rep_b = reps[[row[r.text_b] for r in records]]
    terms: dict | None = {} if diagnose else None
    total, values = batch_loss(
        losses, out.get("gen_loss"), rep_a, rep_b, teacher_cos, cache.prob(teacher_cos),
        labels.to(teacher_cos.device), terms_out=terms,
    )  # fmt: skip
    if terms is not None:
        values.update(term_grad_norms(terms, losses.weights, model.named_parameters()))
        if "label_logits" in out:
            values.update(margin_stats(out["label_logits"], labels[local]))
    if "label_logits" in out:
        gen_pos = out["label_logits"].argmax(-1) == 0
        values["agree/gen_teacher"] = float(
            (gen_pos.cpu() == (pair_prob[local] >= 0.5)).float().mean()
        )
    return total, values


def clip_groups(student: Student, params: list, scope: str) -> list[list]:
    """The parameter sets whose gradient norms are clipped one by one (``train.clip_scope``)."""
    if scope == "global":
        return [params]
    tap = {id(lora_a(layer, student.tap.adapter).weight) for layer in student.tap.layers}
    sets = [[p for p in params if id(p) in tap], [p for p in params if id(p) not in tap]]
    return [s for s in sets if s]


def _gathered_state(acc: Accelerator, model, trainable_only: bool) -> dict[str, torch.Tensor]:
    """The peft model's state dict, gathered by the engine (DDP, FSDP, DeepSpeed ZeRO-3)."""
    state = {k.removeprefix("peft."): v for k, v in acc.get_state_dict(model).items()}
    if not trainable_only:
        return state
    names = {n for n, p in acc.unwrap_model(model).peft.named_parameters() if p.requires_grad}
    return {k: v for k, v in state.items() if k in names}


def _save_adapter(acc: Accelerator, model, target: Path) -> None:
    """A peft adapter directory any peft user can load."""
    state = _gathered_state(acc, model, trainable_only=False)
    if acc.is_main_process:
        acc.unwrap_model(model).peft.save_pretrained(str(target), state_dict=state)


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
    tc, run_dir = cfg.train, Path(run_dir)
    validate_setup(cfg, train_pairs, cache, run_dir, resume)
    losses = build_losses(cfg.loss)
    acc = Accelerator(
        cpu=not torch.cuda.is_available(),  # lets torchrun / accelerate launch use gloo on CPU
        mixed_precision=_precision(tc.mixed_precision),
        gradient_accumulation_steps=tc.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=not losses.gen)],
    )
    if tc.threads:
        torch.set_num_threads(tc.threads)
    set_seed(tc.seed)
    student = student or build_student(
        cfg.student, benchmark=cfg.data.benchmark,
        gradient_checkpointing=tc.gradient_checkpointing, init_seed=tc.seed,
    )  # fmt: skip
    student.pack_tokens = PACK_TOKENS  # exact, and far less padding (student/packing.py)
    if tc.clip_scope != "global" and acc.distributed_type.name in SHARDED:
        raise ConfigError(
            f"train.clip_scope {tc.clip_scope!r} needs unsharded parameters; "
            f"{acc.distributed_type.name} clips one global norm: use clip_scope global"
        )
    if student.prefix is None and acc.distributed_type.name not in SHARDED:
        depth = student.enable_prefix_cache(cfg.student.model, tc.prefix_cache_gb)
        log.info("frozen-prefix cache: %s", f"layers 0-{depth - 1}" if depth else "off")
    module = StudentStep(student, gen_vocab=cfg.loss.gen_vocab)
    params = [p for p in module.parameters() if p.requires_grad]
    clip_sets = clip_groups(student, params, tc.clip_scope)
    optimizer = torch.optim.AdamW(
        params, lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, tc.adam_beta2)
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, int(tc.warmup_ratio * tc.steps), tc.steps
    )
    model, optimizer = acc.prepare(module, optimizer)
    chash, main = config_hash(cfg), acc.is_main_process
    ckpt_dir = run_dir / "checkpoints"

    start = 0
    if resume:
        latest = ckpt.latest_checkpoint(ckpt_dir)
        state = ckpt.load_checkpoint(
            latest, model=acc.unwrap_model(model).peft, optimizer=optimizer, scheduler=scheduler,
            config_hash=chash,
        )  # fmt: skip
        start = state["step"]
        log.info("resuming %s at step %d", run_dir, start)
    if main:
        save_resolved(cfg, run_dir)
    steplog = StepLog(run_dir / "logs", enabled=main)
    best, best_dir = float("-inf"), None
    if resume and (run_dir / "best.json").is_file():  # keep the best adapter found before the kill
        best = json.loads((run_dir / "best.json").read_text())[tc.select_metric]
        best_dir = run_dir / "best_adapter"
    values: dict = {}
    t0 = time.perf_counter()
    bar = tqdm(
        range(start, tc.steps), initial=start, total=tc.steps, disable=not (progress and main)
    )
    model.train()
    for step in bar:
        t_step = time.perf_counter()
        for k in range(tc.grad_accum):
            idx = batch_indices(len(train_pairs), tc.batch_size, tc.seed, step * tc.grad_accum + k)
            with acc.accumulate(model):
                diagnose = bool(tc.diagnose_every) and (
                    step % tc.diagnose_every == 0 or step + 1 == tc.steps
                )
                loss, values = _micro_step(
                    acc, model, losses, [train_pairs[i] for i in idx], cache, diagnose and k == 0
                )
                if acc.gather(torch.isfinite(loss.detach()).float().reshape(1)).min() < 1:
                    raise nonfinite_loss(step + 1, values, ckpt_dir)  # before any update
                acc.backward(loss)
                if acc.sync_gradients:
                    for group in clip_sets:
                        acc.clip_grad_norm_(group, tc.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        values.update(lr=scheduler.get_last_lr()[0], step_seconds=time.perf_counter() - t_step)
        if (step + 1) % tc.log_every == 0 or step + 1 == tc.steps:
            steplog.write(step + 1, values)
        bar.set_postfix(loss=f"{values['loss']:.3f}")
        if (
            tc.eval_every
            and dev_pairs
            and ((step + 1) % tc.eval_every == 0 or step + 1 == tc.steps)
        ):
            metrics = evaluate_dev(
                student, dev_pairs, need_rep=losses.needs_rep, max_pairs=tc.eval_max_pairs
            )
            steplog.write(step + 1, metrics, kind="dev")
            score = metrics.get(tc.select_metric, metrics.get("gen_roc_auc", float("-inf")))
            if score > best:
                best, best_dir = score, run_dir / "best_adapter"
                _save_adapter(acc, model, best_dir)
                if main:
                    write_json(
                        run_dir / "best.json",
                        {"step": step + 1, tc.select_metric: score, **metrics},
                    )
            model.train()
        if tc.save_every and ((step + 1) % tc.save_every == 0 or step + 1 == tc.steps):
            weights = _gathered_state(acc, model, trainable_only=True)
            if main:
                ckpt.save_checkpoint(
                    ckpt_dir, step=step + 1, weights=weights, optimizer=optimizer,
                    scheduler=scheduler, config_hash=chash, extra={"loss": values.get("loss")},
                )  # fmt: skip
                ckpt.prune(ckpt_dir, keep=tc.keep_checkpoints)
        acc.wait_for_everyone()
    seconds = time.perf_counter() - t0
    adapter_dir = run_dir / "adapter"
    _save_adapter(acc, model, adapter_dir)
    if main:
        write_json(run_dir / "run.json", _run_info(cfg, run_dir, cache, best_dir))
        prefix = student.prefix.stats() if student.prefix else None
        summary = {"steps": tc.steps, "seconds": seconds, "last": values, "prefix_cache": prefix}
        write_json(run_dir / "train_summary.json", summary)
    steplog.close()
    acc.wait_for_everyone()
    return TrainResult(run_dir, adapter_dir, best_dir, tc.steps, seconds, values)


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
