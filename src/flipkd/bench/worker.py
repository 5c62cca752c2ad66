"""One bench task in its own process, so each peak RSS is that task's alone.

``python -m flipkd.bench.worker SPEC_JSON OUT_JSON`` runs the task named in the spec
(``peak``, ``train``, ``peer`` or ``encode``) and writes its result as JSON.
:func:`flipkd.bench.runner.run_task` builds the spec and starts the process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flipkd.bench.flipkd_train import bench_config, peak_rss_gb, synthetic_cache, time_training
from flipkd.errors import FlipkdError
from flipkd.paths import write_json

log = logging.getLogger(__name__)

TRAIN_PAIRS = 1000  # the cpu profile's data.max_train_pairs
ENCODE_TEXTS = 256
ENCODE_BATCH = 32


def _pairs(spec: dict[str, Any]) -> list:
    from flipkd.data import load_split

    return load_split(spec["benchmark"], "train", max_pairs=TRAIN_PAIRS, seed=0)


def _config(spec: dict[str, Any], mode: str):
    return bench_config(
        spec["student"],
        spec["benchmark"],
        mode,
        spec["warmup"] + spec["steps"],
        spec.get("threads"),
        spec.get("overrides"),
    )


def _student(spec: dict[str, Any]):
    from flipkd.student import build_student

    cfg = _config(spec, "rep")
    t0 = time.perf_counter()
    student = build_student(cfg.student, benchmark=spec["benchmark"])
    return student, cfg, time.perf_counter() - t0


def _peer(spec: dict[str, Any], cfg):
    from flipkd.bench.peer import build_peer
    from flipkd.models import resolve_student

    sc = cfg.student
    return build_peer(
        resolve_student(sc.model).path,
        rank=sc.lora.rank,
        alpha=sc.lora.alpha,
        dropout=sc.lora.dropout,
        layers=sc.lora.layers,
        max_seq_length=sc.max_text_length,
    )


def _peak(spec: dict[str, Any]) -> dict[str, Any]:
    from flipkd.bench.peak import matmul_peak

    return matmul_peak(tuple(spec.get("sizes", (2048, 4096))), repeats=spec.get("repeats", 3))


def task_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """The fp32 matmul peak at the bench's thread count."""
    return _peak(spec)


def task_train(spec: dict[str, Any]) -> dict[str, Any]:
    """flipkd's trainer: representation-only, then full flipped distillation.

    The matmul peak is measured again right before and after each mode's steps
    (``matmul_peak_adjacent``), so each mode's FLOP ratio can be taken against what the
    machine delivered at that time, not minutes earlier or later.
    """
    import tempfile

    from flipkd.student.lora import count_parameters

    pairs = _pairs(spec)
    student, cfg, load_s = _student(spec)
    out: dict[str, Any] = {"load_seconds": load_s, "settings": cfg.student.model_dump(mode="json")}
    out["pack_tokens"] = cfg.student.pack_tokens  # the trainer's packing rows (0: padded)
    out["trainable_parameters"] = count_parameters(student.model)[0]
    peak_spec = spec.get("peak", {})
    before = _peak(peak_spec)
    modes = spec.get("modes", ("rep", "full"))
    with tempfile.TemporaryDirectory() as tmp:
        cache = synthetic_cache(Path(tmp) / "cache", pairs)
        for i, mode in enumerate(modes):
            out[mode] = time_training(
                student, _config(spec, mode), pairs, cache, spec["warmup"], mode
            )
            if i == len(modes) - 1:  # before the last peak's matrices are allocated
                out["peak_rss_gb"] = peak_rss_gb()
            after = _peak(peak_spec)
            out[mode]["matmul_peak_adjacent"] = {
                "before": before,
                "after": after,
                "peak_gflops": max(before["peak_gflops"], after["peak_gflops"]),
            }
            before = after
    return out


def task_peer(spec: dict[str, Any]) -> dict[str, Any]:
    """The sentence-transformers + peft peer, CoSENT training on the same batches."""
    from flipkd.bench.peer import time_peer_training

    pairs = _pairs(spec)
    cfg = _config(spec, "rep")
    torch.manual_seed(cfg.train.seed)
    model = _peer(spec, cfg)
    out = time_peer_training(
        model,
        pairs,
        batch_size=cfg.train.batch_size,
        steps=cfg.train.steps,
        warmup=spec["warmup"],
        lr=cfg.train.lr,
        seed=cfg.train.seed,
        max_grad_norm=cfg.train.max_grad_norm,
    )
    out["peak_rss_gb"] = peak_rss_gb()
    return out


def task_encode(spec: dict[str, Any]) -> dict[str, Any]:
    """flipkd's A-tap encode against ``SentenceTransformer.encode`` on the same texts."""
    from flipkd.bench.encode import compare_encode

    pairs = _pairs(spec)
    texts = list(dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)))
    texts = texts[: spec.get("texts", ENCODE_TEXTS)]
    student, cfg, _ = _student(spec)
    peer = _peer(spec, cfg)
    return compare_encode(student, peer, texts, spec.get("batch_size", ENCODE_BATCH))


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "peak": task_peak,
    "train": task_train,
    "peer": task_peer,
    "encode": task_encode,
}


def main(argv: list[str]) -> int:
    """Run the task of ``argv[0]`` (a JSON spec) and write its result to ``argv[1]``."""
    logging.basicConfig(level=logging.WARNING)
    spec = json.loads(argv[0])
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    load_start = list(os.getloadavg())
    t0 = time.perf_counter()
    try:
        result = TASKS[spec["task"]](spec)
    except FlipkdError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    result.update(
        task=spec["task"],
        wall_seconds=time.perf_counter() - t0,
        threads=torch.get_num_threads(),
        load_average_start=load_start,
        load_average_end=list(os.getloadavg()),
    )
    write_json(Path(argv[1]), result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
