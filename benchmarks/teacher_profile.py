"""Where one teacher training step spends its time: tokenise, forward, backward, clip, AdamW.

    python benchmarks/teacher_profile.py --pairs 2000 --steps 12 --out results/perf/teacher_profile

A hand-written loop that does what ``SentenceTransformerTrainer`` does in one step (tokenise
both columns with the query prefix, encode both, CoSENT, backward, clip the gradient norm to
1.0, fused AdamW over the trainable parameters), with a timer around each phase, for three
settings: every parameter trained (what sentence-transformers does by default), the
word-embedding table frozen, and frozen plus length-grouped batches (transformers'
``LengthGroupedSampler``). Each setting's batches are drawn at random from one epoch over the
same ATEC train pairs; the settings take their timed steps in turn. One more step of each
under ``torch.profiler`` gives the top operators. Writes ``OUT.json`` and ``OUT.md`` with the
command, git commit, versions, machine and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from flipkd.errors import ConfigError, run_script
from flipkd.provenance import provenance

PHASES = ("tokenize", "forward", "backward", "clip", "optimizer", "zero_grad")
SETTINGS = {
    "all parameters (sentence-transformers default)": dict(freeze=False, group=False),
    "word embeddings frozen": dict(freeze=True, group=False),
    "frozen + length-grouped batches": dict(freeze=True, group=True),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="e5-small-multilingual", help="teacher name")
    parser.add_argument("--pairs", type=int, default=2000, help="ATEC train pairs")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per setting")
    parser.add_argument("--batch", type=int, default=32, help="pairs per step")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    for name in ("pairs", "steps", "batch", "max_length", "threads"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.pairs < args.batch * (args.steps + args.warmup):
        raise ConfigError("--pairs must be at least --batch x (--steps + --warmup)")
    if args.pairs > 62478:
        raise ConfigError("--pairs: the ATEC train split has 62,478 pairs")
    return args


def _batches(pairs, lengths, batch, n, group, seed):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    """``n`` batches drawn at random from one epoch's batches (random or length-grouped)."""
    gen = torch.Generator().manual_seed(seed)
    if group:
        order = list(LengthGroupedSampler(batch, lengths=lengths, generator=gen))
    else:
        order = torch.randperm(len(pairs), generator=gen).tolist()
    full = len(order) // batch
    chosen = torch.randperm(full, generator=gen)[:n].tolist()
    return [[pairs[i] for i in order[k * batch : (k + 1) * batch]] for k in chosen]


def _step(model, loss_fn, opt, batch, prefix, timer, tokens):
    t0 = time.perf_counter()
    feats = [model.tokenize([prefix + getattr(p, c) for p in batch]) for c in ("text_a", "text_b")]
    labels = torch.tensor([float(p.label) for p in batch])
    t1 = time.perf_counter()
    loss = loss_fn(feats, labels)
    t2 = time.perf_counter()
    loss.backward()
    t3 = time.perf_counter()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    t4 = time.perf_counter()
    opt.step()
    t5 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    t6 = time.perf_counter()
    if timer is not None:
        for name, dt in zip(PHASES, np.diff([t0, t1, t2, t3, t4, t5, t6]), strict=True):
            timer[name].append(float(dt))
        ids = [f["attention_mask"] for f in feats]
        tokens["real"] += int(sum(m.sum() for m in ids))
        tokens["padded"] += int(sum(m.numel() for m in ids))
    return loss


def _build(source, pairs, lengths, args, freeze, group):
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from flipkd.teacher import encoder, speed

    torch.manual_seed(args.seed)
    model = encoder.load_encoder(source)
    model.train()
    if freeze:
        speed.freeze_word_embeddings(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0, fused=True)
    batches = _batches(pairs, lengths, args.batch, args.warmup + args.steps, group, args.seed)
    return {
        "model": model, "loss": CoSENTLoss(model), "opt": opt, "batches": batches,
        "trainable": sum(p.numel() for p in trainable), "timer": {p: [] for p in PHASES},
        "tokens": {"real": 0, "padded": 0}, "seconds": 0.0,
    }  # fmt: skip


def _run(states, prefix, args):
    """Warm-up steps, then the timed steps in turn (one step of each setting per round), so
    that load from other jobs falls on every setting alike."""
    for st in states.values():
        for b in st["batches"][: args.warmup]:
            _step(st["model"], st["loss"], st["opt"], b, prefix, None, None)
    for k in range(args.warmup, args.warmup + args.steps):
        for st in states.values():
            t0 = time.perf_counter()
            _step(st["model"], st["loss"], st["opt"], st["batches"][k], prefix, st["timer"],
                  st["tokens"])  # fmt: skip
            st["seconds"] += time.perf_counter() - t0


def _profile_table(st, prefix):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _step(st["model"], st["loss"], st["opt"], st["batches"][-1], prefix, None, None)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def _summary(st, args, setting):
    means = {p: round(1000 * float(np.mean(v)), 1) for p, v in st["timer"].items()}
    return {
        **setting,
        "trainable_parameters": st["trainable"],
        "ms_per_step_mean": means,
        "ms_per_step_median": {
            p: round(1000 * float(np.median(v)), 1) for p, v in st["timer"].items()
        },
        "ms_per_step_total": round(1000 * st["seconds"] / args.steps, 1),
        "share": {p: round(means[p] / max(sum(means.values()), 1e-9), 3) for p in PHASES},
        "pairs_per_second": round(args.steps * args.batch / st["seconds"], 2),
        "padding_share": round(1 - st["tokens"]["real"] / st["tokens"]["padded"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from flipkd.data import load_split
    from flipkd.models import resolve_teacher
    from flipkd.teacher import encoder

    resolved = resolve_teacher(args.model)
    source = encoder.TeacherSource(
        resolved.name, Path(resolved.path), resolved.query_prefix, args.max_length
    )
    pairs = load_split("atec", "train", max_pairs=args.pairs, seed=args.seed)
    tok = encoder.load_encoder(source).tokenizer
    lengths = [
        max(len(tok(resolved.query_prefix + t)["input_ids"]) for t in (p.text_a, p.text_b))
        for p in pairs
    ]
    load_start = os.getloadavg()
    states = {name: _build(source, pairs, lengths, args, **st) for name, st in SETTINGS.items()}
    _run(states, resolved.query_prefix, args)
    load_mid = os.getloadavg()
    tables = {name: _profile_table(st, resolved.query_prefix) for name, st in states.items()}
    results = {name: _summary(st, args, SETTINGS[name]) for name, st in states.items()}
    for name, r in results.items():
        r["profiler_top_ops"] = tables[name]
        print(f"{name}: {r['ms_per_step_mean']} {r['pairs_per_second']} pairs/s")
    out = {
        **provenance(["python", "benchmarks/teacher_profile.py", *(argv or sys.argv[1:])]),
        "model": resolved.name,
        "pairs": len(pairs),
        "batch": args.batch,
        "max_length": args.max_length,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "load_avg_start": load_start,
        "load_avg_after_timed_steps": load_mid,
        "load_avg_end": os.getloadavg(),
        "settings": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    Path(f"{args.out}.md").write_text(_markdown(out), encoding="utf-8")
    return 0


def _markdown(out: dict) -> str:
    head = "| setting | trainable params | " + " | ".join(PHASES) + " | total | pairs/s | padding |"
    rows = [head, "|" + "---|" * (len(PHASES) + 5)]
    for name, r in out["settings"].items():
        ms = r["ms_per_step_mean"]
        cells = " | ".join(f"{ms[p]:.0f} ({r['share'][p]:.0%})" for p in PHASES)
        rows.append(
            f"| {name} | {r['trainable_parameters'] / 1e6:.1f}M | {cells} | "
            f"{r['ms_per_step_total']:.0f} | {r['pairs_per_second']:.2f} | "
            f"{r['padding_share']:.0%} |"
        )
    tables = "".join(
        f"\n{name}:\n\n```\n{r['profiler_top_ops']}\n```\n" for name, r in out["settings"].items()
    )
    return (
        "# Teacher training step profile\n\n"
        f"Command: `{out['command']}` at `{out['git_commit']}`, {out['date']}; "
        f"machine {json.dumps(out['machine'])}; versions {json.dumps(out['versions'])}.\n\n"
        f"{out['model']}, ATEC train pairs ({out['pairs']} drawn), batch {out['batch']}, "
        f"max_length {out['max_length']}, CoSENT, fused AdamW, gradient norm clipped to 1. "
        f"{out['warmup']} warm-up steps, then {out['steps']} timed steps per setting taken in "
        f"turn (one step of each setting per round), {out['threads']} threads. Load average "
        f"(1/5/15 min) at start {out['load_avg_start']}, after the timed steps "
        f"{out['load_avg_after_timed_steps']}.\n\n"
        "Mean ms per step by phase (share of the step):\n\n"
        + "\n".join(rows)
        + "\n\nTop operators by self CPU time, one more step of each setting (torch.profiler):\n"
        + tables
    )


if __name__ == "__main__":
    run_script(main)
