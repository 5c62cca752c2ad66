"""Checkpoints a resume can trust: written into a temporary directory, renamed when complete.

A checkpoint holds the trainable (LoRA) weights, optimizer, scheduler, every RNG
state and the step (the data position follows from the step). ``COMPLETE`` is
written last inside the temporary directory; a directory without it, or any
``.tmp`` leftover from a kill or full disk, is never loaded.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from flipkd.errors import ConfigError
from flipkd.paths import atomic_dir

COMPLETE = "COMPLETE"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states (CUDA too when present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    ckpt_dir: Path,
    *,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer,
    scheduler,
    config_hash: str,
    extra: dict,
) -> Path:
    """Write ``ckpt_dir/step-NNNNNNN`` atomically; returns its path.

    ``weights`` are the trainable parameters by name (gathered by the engine when
    the model is sharded).
    """
    target = Path(ckpt_dir) / f"step-{step:07d}"
    with atomic_dir(target) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        state = {"step": step, "config_hash": config_hash, **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        (tmp / COMPLETE).write_text("ok\n")
    return target


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
    for tmp in Path(ckpt_dir).glob(".step-*.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(path: Path, *, model, optimizer, scheduler, config_hash: str) -> dict:
    """Restore a checkpoint into live objects; refuses one made by another config."""
    state = json.loads((path / "state.json").read_text())
    if state["config_hash"] != config_hash:
        raise ConfigError(
            f"{path}: checkpoint was made with config {state['config_hash']}, this run's config is "
            f"{config_hash}; resume with the same config or start a new run directory"
        )
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return state
