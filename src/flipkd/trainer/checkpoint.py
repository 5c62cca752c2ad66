"""Checkpoints a resume can trust, saved and loaded by accelerate.

``accelerate``'s ``save_state``/``load_state`` own what depends on the engine: the
optimizer (written whole under DDP, sharded under FSDP, by the engine under
DeepSpeed), every process's RNG states, the scheduler (registered for
checkpointing) and the AMP scaler. Unsharded, only the trainable (LoRA) weights are
written (``trainable.safetensors``, through save/load pre-hooks) instead of the
whole frozen base model; under FSDP and DeepSpeed the engine writes its own shards.

Every process writes into ``.step-NNNNNNN.tmp``; the main process then adds
``state.json`` (step, config hash) and ``COMPLETE`` last, and renames the directory
to ``step-NNNNNNN``. A directory without ``COMPLETE``, or a ``.tmp`` leftover from a
kill or a full disk, is never loaded. Checkpoints of the earlier format
(``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` written by hand) still load in a
single process.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import extract_model_from_parallel
from safetensors.torch import load_file, save_file

from flipkd.errors import ConfigError
from flipkd.paths import atomic_dir

COMPLETE = "COMPLETE"
STATE = "state.json"
TRAINABLE = "trainable.safetensors"
RNG_FILE = "random_states_{}.pkl"  # accelerate's name (``RNG_STATE_NAME``) for each process
ENGINE_SAVED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # the engine writes the model itself


def _trainable_file(index: int) -> str:
    return TRAINABLE if index == 0 else f"trainable_{index}.safetensors"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name, as contiguous CPU tensors."""
    return {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    """Copy saved trainable weights into ``model``; the names must be exactly the trainable ones."""
    weights = load_file(str(path))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if weights.keys() != params.keys():
        missing, extra = sorted(params.keys() - weights.keys()), sorted(weights.keys() - params)
        raise ConfigError(
            f"{path}: the saved weights do not match this model's trainable parameters "
            f"(missing {missing[:3]}, unexpected {extra[:3]}); resume with the same config"
        )
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def attach(acc: Accelerator, scheduler) -> None:
    """Register what ``save``/``resume`` need with the accelerator (call once, after prepare).

    The scheduler is registered rather than prepared: a prepared scheduler steps once
    per process, which would change the schedule under several processes.
    """
    acc.register_for_checkpointing(scheduler)
    if acc.distributed_type.name in ENGINE_SAVED:
        return

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        for i, model in enumerate(models):
            state = trainable_state(extract_model_from_parallel(model))
            if acc.is_main_process:
                save_file(state, str(Path(output_dir) / _trainable_file(i)))
        weights.clear()  # accelerate writes no whole-model file

    def load_hook(models: list, input_dir: str) -> None:
        for i, model in enumerate(models):
            load_trainable(extract_model_from_parallel(model), Path(input_dir) / _trainable_file(i))
        models.clear()  # loaded here, not by accelerate

    acc.register_save_state_pre_hook(save_hook)
    acc.register_load_state_pre_hook(load_hook)


def save(acc: Accelerator, ckpt_dir: Path, *, step: int, config_hash: str, extra: dict) -> Path:
    """Write ``ckpt_dir/step-NNNNNNN`` from every process; returns its path.

    Collective: every process must call it at the same step.
    """
    target = Path(ckpt_dir) / f"step-{step:07d}"
    tmp_name = f".{target.name}.tmp"  # one name for every process
    main = acc.is_main_process
    writing = atomic_dir(target, tmp_name=tmp_name) if main else contextlib.nullcontext()
    with writing:
        acc.wait_for_everyone()  # the main process has made the directory
        tmp = target.parent / tmp_name
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # every process has written its part
        if main:
            state = {"step": step, "config_hash": config_hash, "format": 2, **extra}
            (tmp / STATE).write_text(json.dumps(state, indent=2))
            (tmp / COMPLETE).write_text("ok\n")
    acc.wait_for_everyone()  # renamed before anyone reads it
    return target


def read_state(path: Path, config_hash: str) -> dict:
    """A checkpoint's ``state.json``; refuses one made by another config."""
    state = json.loads((Path(path) / STATE).read_text())
    if state["config_hash"] != config_hash:
        raise ConfigError(
            f"{path}: checkpoint was made with config {state['config_hash']}, this run's config is "
            f"{config_hash}; resume with the same config or start a new run directory"
        )
    return state


def resume(acc: Accelerator, path: Path, *, model, optimizer, scheduler, config_hash: str) -> dict:
    """Restore the checkpoint at ``path`` into the live objects; returns its ``state.json``.

    accelerate's ``load_state`` only logs when a process's RNG file cannot be read; a
    resume that would not replay the same random draws is refused here instead.
    """
    path = Path(path)
    state = read_state(path, config_hash)
    if state.get("format", 1) == 1:
        if acc.num_processes > 1:
            raise ConfigError(
                f"{path}: a checkpoint of flipkd's first format resumes in one process only"
            )
        _load_format1(path, extract_model_from_parallel(model).peft, optimizer, scheduler)
        return state
    acc.load_state(str(path))
    rng_file = path / RNG_FILE.format(acc.process_index)
    saved = torch.load(rng_file, weights_only=False) if rng_file.is_file() else {}
    if "torch_manual_seed" not in saved or not torch.equal(
        saved["torch_manual_seed"], torch.get_rng_state()
    ):
        raise ConfigError(f"{rng_file}: the RNG state of process {acc.process_index} did not load")
    return state


def _load_format1(path: Path, peft_model, optimizer, scheduler) -> None:
    """The first format: trainable weights, optimizer, scheduler and RNG written by hand."""
    load_trainable(peft_model, path / TRAINABLE)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng: dict[str, Any] = torch.load(path / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    done = [p for p in Path(ckpt_dir).glob("step-*") if (p / COMPLETE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def prune(ckpt_dir: Path, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and stale temporaries."""
    done = sorted(
        (p for p in Path(ckpt_dir).glob("step-*") if (p / COMPLETE).is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in Path(ckpt_dir).glob(".step-*.tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)
