"""float32 against bf16 autocast for the student's two costs on a CPU: the frozen-prefix fill
and a training step through the adapted layers.

    python benchmarks/precision_speed.py --out results/perf/precision

Uses the ``demo`` profile's student (SmolLM2-135M, LoRA r=16 on the top 8 layers, two
A-taps) on real MQP training pairs. *Prefix fill*: the frozen bottom layers run over
``--texts`` training texts into an empty prefix cache of each precision
(``train.prefix_dtype``). *Step*: with the cache warm, one forward and backward of both
passes (label over ``--pairs`` pairs, A-tap over their texts), float32 or under bf16
autocast (what ``train.mixed_precision bf16`` does through accelerate). Settings alternate,
best of ``--repeats``; the outputs' differences are reported beside the times. Writes
``OUT.json`` and ``OUT.md`` with the command, git commit, versions and machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from flipkd.errors import run_script
from flipkd.provenance import provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--texts", type=int, default=256, help="texts for the prefix fill")
    parser.add_argument("--pairs", type=int, default=16, help="pairs per training step")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timings each")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def _setup(pairs_wanted: int, texts_wanted: int):
    from flipkd.recipes.pipeline import load_splits
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES
    from flipkd.student import build_student

    cfg = build_config(PROFILES["demo"], "mqp", "fip", 0, [])
    train = load_splits(cfg)["train"]
    student = build_student(cfg.student, benchmark="mqp", init_seed=0)
    student.pack_tokens = cfg.student.pack_tokens  # every pass packed, as the trainer runs it
    texts = list(dict.fromkeys(t for p in train for t in (p.text_a, p.text_b)))[:texts_wanted]
    pairs = [(p.text_a, p.text_b) for p in train[:pairs_wanted]]
    labels = torch.tensor([int(p.label) for p in train[:pairs_wanted]])
    return cfg, student, texts, pairs, labels


def _fill(student, texts: list[str], dtype: str) -> tuple[float, dict]:
    from flipkd.student.prefix import PrefixCache, frozen_depth

    depth = frozen_depth(student.peft, student.tap.names)
    student.prefix = PrefixCache(depth, 10**10, dtype)
    t0 = time.perf_counter()
    with torch.no_grad():
        student.rep_forward(texts)
    return time.perf_counter() - t0, dict(student.prefix.store)


def _step(student, pairs, labels, texts, bf16: bool) -> tuple[float, torch.Tensor]:
    student.peft.zero_grad(set_to_none=True)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    t0 = time.perf_counter()
    with cast:
        gen = student.gen_forward(pairs, labels)
        rep = student.rep_forward(texts)
    (gen.loss.float() + rep.float().pow(2).mean()).backward()
    return time.perf_counter() - t0, gen.label_logits.detach().float()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    _, student, texts, pairs, labels = _setup(args.pairs, args.texts)
    step_texts = list(dict.fromkeys(t for p in pairs for t in p))
    fill = {"float32": [], "bfloat16": []}
    states = {}
    for _ in range(args.repeats):
        for dtype in fill:
            seconds, states[dtype] = _fill(student, texts, dtype)
            fill[dtype].append(round(seconds, 3))
    prefix_diff = max(_relative(states["bfloat16"][k], v) for k, v in states["float32"].items())
    # a float32 cache of the texts; the warm-up step adds its prompts, so timed steps run
    # the top layers only
    _fill(student, [t for p in pairs for t in p] + texts, "float32")
    _step(student, pairs, labels, step_texts, False)  # warm-up
    step = {"float32": [], "bf16 autocast": []}
    logits = {}
    for _ in range(args.repeats):
        for name in step:
            seconds, logits[name] = _step(student, pairs, labels, step_texts, name != "float32")
            step[name].append(round(seconds, 3))
    best = {
        "prefix_fill_s": {k: min(v) for k, v in fill.items()},
        "step_s": {k: min(v) for k, v in step.items()},
    }
    fill_best, step_best = best["prefix_fill_s"], best["step_s"]
    result = {
        **provenance(["python", "benchmarks/precision_speed.py", *(argv or sys.argv[1:])]),
        "bf16_instructions": {
            name: getattr(torch.cpu, f"_is_{name}_supported", lambda: None)()
            for name in ("avx512_bf16", "amx_tile")
        },
        "texts": len(texts), "pairs": len(pairs), "threads": args.threads,
        "prefix_fill_seconds": fill, "step_seconds": step, "best": best,
        "speedup": {
            "prefix_fill": round(fill_best["float32"] / fill_best["bfloat16"], 3),
            "step": round(step_best["float32"] / step_best["bf16 autocast"], 3),
        },
        "max_relative_difference": {
            "prefix_states": prefix_diff,
            "label_logits": _relative(logits["bf16 autocast"], logits["float32"]),
        },
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    diff = result["max_relative_difference"]
    Path(f"{args.out}.md").write_text(
        "# float32 vs bf16 autocast on this CPU: frozen-prefix fill and training step\n\n"
        f"Command: `{result['command']}` at `{result['git_commit']}`, {result['date']}; "
        f"machine {json.dumps(result['machine'])}; bf16 instructions "
        f"{json.dumps(result['bf16_instructions'])}.\n\n"
        f"`demo` profile student (SmolLM2-135M, top-8 LoRA, two A-taps), real MQP training "
        f"texts, {args.threads} threads, best of {args.repeats} alternating runs.\n\n"
        "| cost | float32 s | bf16 s | speed-up |\n|---|---|---|---|\n"
        f"| prefix fill, {len(texts)} texts (frozen layers 0-21) | "
        f"{best['prefix_fill_s']['float32']:.2f} | {best['prefix_fill_s']['bfloat16']:.2f} | "
        f"{result['speedup']['prefix_fill']}× |\n"
        f"| training step, {len(pairs)} pairs, both passes, cache warm | "
        f"{best['step_s']['float32']:.2f} | {best['step_s']['bf16 autocast']:.2f} | "
        f"{result['speedup']['step']}× |\n\n"
        f"Largest relative difference (norm of the difference over the float32 norm): prefix "
        f"states {diff['prefix_states']:.2e}, label logits {diff['label_logits']:.2e}.\n",
        encoding="utf-8",
    )
    print(json.dumps(result["speedup"]))
    return 0


if __name__ == "__main__":
    run_script(main)
