"""Padded against packed inference on server-like micro-batches (random FAQ questions).

    python benchmarks/packing_ab.py MODEL_DIR --faq FAQ.csv --out results/serve/packing_ab

A server's micro-batch holds whatever queries arrived together, so it is not sorted by
length. This times ``encode`` on the same random batches with inference packing off
(``pack_inference_above = None``: padded to the longest query) and on (the default), in
alternation, and checks the two give the same representations. Writes ``OUT.json`` and
``OUT.md`` with the command, git commit, versions and machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

import flipkd
from flipkd.errors import run_script
from flipkd.provenance import provenance
from flipkd.serve.faq import load_faq


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="exported model directory")
    parser.add_argument("--faq", type=Path, required=True, help="FAQ CSV/JSONL (questions)")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--batch", type=int, default=16, help="queries per micro-batch")
    parser.add_argument("--batches", type=int, default=8, help="micro-batches per timing")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timings per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def padding_share(student, batch: list[str]) -> float:
    """Share of padding slots when ``batch`` is padded to its longest text."""
    ids = student.tokenizer(batch, add_special_tokens=False, truncation=True,
                            max_length=student.max_text_length)["input_ids"]  # fmt: skip
    lengths = [len(i) for i in ids]
    return 1.0 - sum(lengths) / (len(lengths) * max(lengths))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    matcher = flipkd.load(args.model_dir)
    student = matcher.student
    questions = [e.question for e in load_faq(args.faq)]
    rng = random.Random(args.seed)
    batches = [rng.sample(questions, args.batch) for _ in range(args.batches)]
    settings = {"padded": None, "packed": student.body.pack_inference_above}
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    outputs: dict[str, list[np.ndarray]] = {}
    for above in settings.values():  # warm-up
        student.body.pack_inference_above = above
        matcher.encode(batches[0], batch_size=args.batch)
    for _ in range(args.repeats):
        for name, above in settings.items():
            student.body.pack_inference_above = above
            t0 = time.perf_counter()
            outputs[name] = [matcher.encode(b, batch_size=args.batch) for b in batches]
            seconds[name].append(round(time.perf_counter() - t0, 4))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*outputs.values(), strict=True))
    per_batch = {k: min(v) / len(batches) * 1000 for k, v in seconds.items()}
    result = {
        **provenance(["python", "benchmarks/packing_ab.py", *(argv or sys.argv[1:])]),
        "model_dir": str(args.model_dir),
        "batch": args.batch,
        "batches": args.batches,
        "threads": args.threads,
        "padding_share": [round(padding_share(student, b), 3) for b in batches],
        "seconds": seconds,
        "ms_per_batch_best": {k: round(v, 1) for k, v in per_batch.items()},
        "speedup": round(per_batch["padded"] / per_batch["packed"], 3),
        "max_abs_difference": diff,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    Path(f"{args.out}.md").write_text(
        "# Padded vs packed inference on server-like micro-batches\n\n"
        f"Command: `{result['command']}` at `{result['git_commit']}`, {result['date']}; "
        f"machine {json.dumps(result['machine'])}.\n\n"
        f"{args.batches} random batches of {args.batch} FAQ questions, {args.threads} threads; "
        f"padding share when padded: {min(result['padding_share']):.0%}–"
        f"{max(result['padding_share']):.0%}.\n\n"
        "| setting | ms per batch (best of "
        f"{args.repeats}) |\n|---|---|\n"
        + "".join(f"| {k} | {v:.1f} |\n" for k, v in result["ms_per_batch_best"].items())
        + f"\nSpeed-up {result['speedup']}×; largest difference between the two: {diff:.1e}.\n",
        encoding="utf-8",
    )
    print(f"packed {result['speedup']}x faster than padded; max difference {diff:.1e}")
    return 0


if __name__ == "__main__":
    run_script(main)
