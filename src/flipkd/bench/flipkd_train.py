"""flipkd's training throughput: the real trainer on real batches, timed per step.

The student is trained through :func:`flipkd.trainer.train_student` (the same loop a
user runs), at the ``cpu`` profile's student settings. The teacher's work is not
part of a student step (its scores come from a cache built once), so the bench uses
a synthetic teacher cache: seeded unit vectors for every text, calibrated on the
gold labels. Per-step wall times come from the trainer's own step log; useful
FLOPs are counted per step from the exact batches the trainer saw.
"""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flipkd.bench.flops import PassCost, pass_cost, trace_modules
from flipkd.config import FlipkdConfig, apply_overrides
from flipkd.config.loader import validate
from flipkd.reproduce.profiles import PROFILES
from flipkd.student import Student
from flipkd.student.lora import lora_a
from flipkd.trainer import train_student
from flipkd.trainer.sampler import batch_indices

MODES: dict[str, dict[str, Any]] = {
    "rep": {"loss.gen": False},  # representation-only: MCL + L_dist
    "full": {"loss.gen": True},  # flipped distillation: L_gen + MCL + L_dist
}
PASSES: dict[str, tuple[str, ...]] = {"rep": ("rep",), "full": ("gen", "rep")}
_PROFILE_KEYS = ("student.", "train.batch_size", "train.lr", "train.threads")


def bench_config(
    student: str,
    benchmark: str,
    mode: str,
    steps: int,
    threads: int | None = None,
    overrides: list[str] | None = None,
) -> FlipkdConfig:
    """The ``cpu`` profile's student and batch settings, for ``steps`` steps of ``mode``.

    ``overrides`` (``dotted.key=value``) apply last, e.g. ``student.lora.layers=[-1]``.
    """
    layers = {k: v for k, v in PROFILES["cpu"].overrides.items() if k.startswith(_PROFILE_KEYS)}
    layers.update(MODES[mode])
    layers.update(
        {
            "student.model": student,
            "data.benchmark": benchmark,
            "train.steps": steps,
            "train.save_every": 0,
            "train.eval_every": 0,
            "train.warmup_ratio": 0.0,
            "train.mixed_precision": "no",
            # the useful-FLOP count assumes every layer runs: no frozen-prefix cache here
            # (its effect shows in the ladder's per-row train seconds instead)
            "train.prefix_cache_gb": 0,
        }
    )
    if threads is not None:
        layers["train.threads"] = threads
    items = [f"{k}={json.dumps(v)}" for k, v in layers.items()] + list(overrides or [])
    raw = apply_overrides({}, items)
    return validate(raw, "bench config")


def synthetic_cache(path: Path, pairs: list, dim: int = 32, seed: int = 0):
    """A teacher cache of seeded random unit vectors (the teacher's cost is not benched)."""
    from flipkd.teacher.cache import cache_from_embeddings

    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    gen = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(len(texts), dim, generator=gen), dim=-1)
    return cache_from_embeddings(path, texts, emb, pairs)


def student_costs(student: Student) -> dict[str, PassCost]:
    """Traced :class:`PassCost` of the generated-label pass and the A-tap pass."""
    model, head = student.model, student.head
    gen = trace_modules(model, lambda: student.gen_forward([("a b", "c d")]), head)
    rep = trace_modules(model, lambda: student.rep_forward(["a b"]), head)
    tap_a = sum(lora_a(layer, student.tap.adapter).weight.numel() for layer in student.tap.layers)
    return {"gen": pass_cost(gen), "rep": pass_cost(rep, tap_a=tap_a)}


def batch_tokens(student: Student, pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Real and padded token counts of the exact batches each pass builds for ``pairs``."""
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))  # the trainer dedupes
    batches = {
        "gen": student._batch(student.prompts(pairs), student.max_length),
        "rep": student._batch(texts, student.max_text_length),
    }
    out = {}
    for name, batch in batches.items():
        mask, packed = batch["attention_mask"], student.body.layout(batch)
        shape = mask.shape if packed is None else packed.input_ids.shape  # what the layers see
        out[name] = {
            "tokens": int(mask.sum()),
            "padded": shape[0] * shape[1],
            "sequences": mask.shape[0],
        }
    return out


def step_flops(costs: dict[str, PassCost], tokens: dict[str, dict[str, int]], mode: str) -> float:
    """Useful FLOPs of one training step (forward and backward of every pass of ``mode``)."""
    return sum(
        costs[p].flops(tokens[p]["tokens"], tokens[p]["sequences"], backward=True)
        for p in PASSES[mode]
    )


def peak_rss_gb() -> float:
    """This process's peak resident set size so far, in GB (10^9 bytes; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _step_seconds(run_dir: Path) -> list[float]:
    rows = [
        json.loads(line) for line in (run_dir / "logs" / "train.jsonl").read_text().splitlines()
    ]
    return [r["step_seconds"] for r in rows if r.get("kind") == "train"]


def time_training(
    student: Student, cfg: FlipkdConfig, pairs: list, cache, warmup: int, mode: str
) -> dict[str, Any]:
    """Train ``cfg.train.steps`` steps; report the steps after ``warmup``."""
    tc = cfg.train
    with tempfile.TemporaryDirectory(prefix="flipkd-bench-") as tmp:
        train_student(
            cfg, Path(tmp), cache=cache, train_pairs=pairs, student=student, progress=False
        )
        seconds = _step_seconds(Path(tmp))
    costs = student_costs(student)
    timed = list(range(warmup, tc.steps))
    batches = [
        [
            (pairs[i].text_a, pairs[i].text_b)
            for i in batch_indices(len(pairs), tc.batch_size, tc.seed, s)
        ]
        for s in timed
    ]
    tokens = [batch_tokens(student, b) for b in batches]
    total_s = sum(seconds[s] for s in timed)
    flops = sum(step_flops(costs, t, mode) for t in tokens)
    real = sum(t[p]["tokens"] for t in tokens for p in PASSES[mode])
    padded = sum(t[p]["padded"] for t in tokens for p in PASSES[mode])
    return {
        "mode": mode,
        "passes": list(PASSES[mode]),
        "threads": tc.threads,
        "batch_size": tc.batch_size,
        "warmup_steps": warmup,
        "timed_steps": len(timed),
        "step_seconds": [round(seconds[s], 4) for s in timed],
        "mean_step_s": total_s / len(timed),
        "median_step_s": float(np.median([seconds[s] for s in timed])),
        "pairs_per_s": tc.batch_size * len(timed) / total_s,
        "tokens_per_s": real / total_s,
        "padding_fraction": 1 - real / padded,
        "useful_flops_per_step": flops / len(timed),
        "useful_flop_per_s": flops / total_s,
        "pass_costs": {p: costs[p].as_dict() for p in PASSES[mode]},
        "tokens_per_step": {
            p: sum(t[p]["tokens"] for t in tokens) / len(tokens) for p in PASSES[mode]
        },
        "peak_rss_gb": peak_rss_gb(),
    }
