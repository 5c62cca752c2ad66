"""Teacher training speed and dev quality: plain sentence-transformers against flipkd's options.

    python benchmarks/teacher_speed.py --pairs 1024 --dev-pairs 1000 \\
        --out results/perf/teacher_speed

One process trains multilingual-e5-small with CoSENT on the same seeded sample of ATEC train
pairs, batch 32, one epoch, several ways, in turns (``--repeats`` rounds, the order of the
settings the same in every round), so that load from other jobs falls on all of them:

* ``plain``: ``SentenceTransformerTrainer`` with its defaults (every parameter trained, random
  batches; no evaluation or checkpoints during training), the same model directory, prefix,
  max length, learning rate, warm-up and seed;
* ``freeze``, ``freeze+group``, ...: :func:`flipkd.teacher.train_teacher` (the product path)
  with ``freeze_embeddings`` and/or ``group_by_length``.

Speed is train pairs per second inside the training steps (a trainer callback from step start
to step end: forward, backward, clipping, optimizer; evaluation and saving left out), and
the wall time of the whole call. Quality: every trained model (and the base model) is scored
on the same seeded sample of the ATEC dev split (``dev_metrics``: ROC-AUC, AP, Spearman, best
F1), with a paired bootstrap of the Spearman and ROC-AUC differences against ``plain``. The
flipkd runs choose their checkpoint on that same dev sample (their own rule: the base model
is a candidate). Writes ``OUT.json`` and ``OUT.md`` with the command, git commit, versions,
machine and the load average around every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flipkd.errors import ConfigError, run_script
from flipkd.provenance import provenance

ATEC_TRAIN = 62478
SETTINGS = {
    "plain": None,
    "none": dict(freeze_embeddings=False, group_by_length=False),
    "freeze": dict(freeze_embeddings=True, group_by_length=False),
    "group": dict(freeze_embeddings=False, group_by_length=True),
    "freeze+group": dict(freeze_embeddings=True, group_by_length=True),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="e5-small-multilingual", help="teacher name")
    parser.add_argument("--pairs", type=int, default=1024, help="ATEC train pairs per run")
    parser.add_argument("--dev-pairs", type=int, default=1000, help="ATEC dev pairs scored")
    parser.add_argument("--settings", default="plain,freeze,freeze+group",
                        help=f"comma-separated, from {', '.join(SETTINGS)}")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the settings")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--encode-batch", type=int, default=128)
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired resamples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown or not args.settings:
        raise ConfigError(f"--settings: unknown {unknown}; choose from {', '.join(SETTINGS)}")
    for name in ("pairs", "dev_pairs", "repeats", "batch", "max_length", "threads"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.pairs > ATEC_TRAIN:
        raise ConfigError(f"--pairs: the ATEC train split has {ATEC_TRAIN:,} pairs")
    if not (args.lr > 0 and 0 <= args.warmup_ratio <= 1):
        raise ConfigError("--lr must be > 0 and --warmup-ratio in [0, 1]")
    return args


def _plain(source: Any, train: list, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """sentence-transformers' own training of the same model, batch and data."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss
    from transformers import set_seed

    from flipkd.teacher import encoder
    from flipkd.teacher.fit import pair_dataset, schedule
    from flipkd.teacher.speed import StepClock

    set_seed(args.seed)
    model = encoder.load_encoder(source)
    _, steps = schedule(len(train), args.batch, 1.0)
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(work / "plain"),
        max_steps=steps,
        per_device_train_batch_size=args.batch,
        learning_rate=args.lr,
        warmup_steps=int(round(args.warmup_ratio * steps)),
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        prompts=source.query_prefix or None,
    )
    clock = StepClock()
    trainer = SentenceTransformerTrainer(
        model=model,
        args=targs,
        train_dataset=pair_dataset(train, "cosent"),
        loss=CoSENTLoss(model),
        callbacks=[clock],
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    return {
        "model": model, "steps": steps, "step_seconds": clock.seconds,
        "step_cpu_seconds": clock.cpu_seconds, "wall_seconds": wall,
    }  # fmt: skip


def _flipkd(source, train, dev, options, args, work: Path, name: str) -> dict[str, Any]:
    from flipkd.config.schema import TeacherConfig
    from flipkd.teacher import encoder, train_teacher

    cfg = TeacherConfig(
        loss="cosent", epochs=1.0, batch_size=args.batch, lr=args.lr,
        warmup_ratio=args.warmup_ratio, max_length=args.max_length, seed=args.seed,
        encode_batch_size=args.encode_batch, **options,
    )  # fmt: skip
    start = time.perf_counter()
    run = train_teacher(
        train, dev, cfg, model_path=source.model_dir, out_dir=work / name.replace("+", "_"),
        query_prefix=source.query_prefix, model_id=source.model_id, progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    info = json.loads((run.run_dir / "metrics.json").read_text(encoding="utf-8"))
    model = encoder.load_encoder(
        encoder.TeacherSource(name, run.model_dir, source.query_prefix, args.max_length)
    )
    return {
        "model": model, "steps": info["steps"], "step_seconds": info["step_seconds"],
        "step_cpu_seconds": info["step_cpu_seconds"], "wall_seconds": wall,
        "trainer_seconds": info["train_seconds"],
        "best_step": info["best_step"], "frozen_parameters": info["frozen_parameters"],
    }  # fmt: skip


def _scores(model: Any, dev: list, batch: int) -> np.ndarray:
    from flipkd.teacher.selection import dev_scores

    return dev_scores(model, dev, batch)[0]


def _paired_bootstrap(a: np.ndarray, b: np.ndarray, labels: np.ndarray, n: int, seed: int):
    """95% intervals of (b - a) in Spearman×100 and ROC-AUC over resampled dev pairs."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    diffs = {"spearman": [], "roc_auc": []}
    for _ in range(n):
        i = rng.integers(0, len(labels), len(labels))
        if labels[i].min() == labels[i].max():
            continue
        diffs["spearman"].append(
            100 * (spearmanr(b[i], labels[i])[0] - spearmanr(a[i], labels[i])[0])
        )
        diffs["roc_auc"].append(roc_auc_score(labels[i], b[i]) - roc_auc_score(labels[i], a[i]))
    return {
        k: [round(float(np.percentile(v, q)), 4) for q in (2.5, 97.5)] for k, v in diffs.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from flipkd.data import load_split
    from flipkd.models import resolve_teacher
    from flipkd.teacher import encoder
    from flipkd.teacher.workflow import dev_metrics

    resolved = resolve_teacher(args.model)
    source = encoder.TeacherSource(
        resolved.name, Path(resolved.path), resolved.query_prefix, args.max_length
    )
    train = load_split("atec", "train", max_pairs=args.pairs, seed=args.seed)
    dev = load_split("atec", "dev", max_pairs=args.dev_pairs, seed=args.seed)
    labels = np.array([p.label for p in dev])
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in args.settings}
    scores: dict[str, np.ndarray] = {}
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="teacher_speed_") as tmp:
        for r in range(args.repeats):
            for name in args.settings:
                work = Path(tmp) / f"r{r}"
                before = os.getloadavg()
                if SETTINGS[name] is None:
                    out = _plain(source, train, args, work)
                else:
                    out = _flipkd(source, train, dev, SETTINGS[name], args, work, name)
                model = out.pop("model")
                out.update(
                    pairs_per_second=round(out["steps"] * args.batch / out["step_seconds"], 2),
                    load_avg_before=before,
                    load_avg_after=os.getloadavg(),
                )
                runs[name].append(out)
                print(f"round {r} {name}: {out['pairs_per_second']} pairs/s", flush=True)
                if r == 0:
                    scores[name] = _scores(model, dev, args.encode_batch)
                del model
        scores["base (zero-shot)"] = _scores(encoder.load_encoder(source), dev, args.encode_batch)
    result = _result(args, argv, train, dev, runs, scores, labels, load_start, dev_metrics)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    Path(f"{args.out}.md").write_text(_markdown(result), encoding="utf-8")
    for name, s in result["speed"].items():
        print(f"{name}: {s['pairs_per_second']} pairs/s, x{s['ratio_to_first']}")
    return 0


def _result(args, argv, train, dev, runs, scores, labels, load_start, dev_metrics):
    first = args.settings[0]
    speed = {}
    for name, rs in runs.items():
        pairs = sum(r["steps"] * args.batch for r in rs)
        rate = pairs / sum(r["step_seconds"] for r in rs)
        cpu_rate = pairs / sum(r["step_cpu_seconds"] for r in rs)
        speed[name] = {
            "pairs_per_second": round(rate, 2),
            "pairs_per_cpu_second": round(cpu_rate, 2),
            "per_round": [r["pairs_per_second"] for r in rs],
            "epoch_minutes_62478": round(ATEC_TRAIN / rate / 60, 1),
        }
    base_rate = speed[first]["pairs_per_second"]
    base_cpu = speed[first]["pairs_per_cpu_second"]
    for s in speed.values():
        s["ratio_to_first"] = round(s["pairs_per_second"] / base_rate, 2)
        s["cpu_ratio_to_first"] = round(s["pairs_per_cpu_second"] / base_cpu, 2)
    quality = {name: dev_metrics(s, dev) for name, s in scores.items()}
    paired = {
        name: _paired_bootstrap(scores[first], scores[name], labels, args.bootstrap, args.seed)
        for name in scores
        if name != first
    }
    return {
        **provenance(["python", "benchmarks/teacher_speed.py", *(argv or sys.argv[1:])]),
        "model": args.model, "train_pairs": len(train), "dev_pairs": len(dev),
        "batch": args.batch, "max_length": args.max_length, "lr": args.lr,
        "warmup_ratio": args.warmup_ratio, "seed": args.seed, "repeats": args.repeats,
        "settings": {n: SETTINGS[n] for n in args.settings},
        "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
        "runs": runs, "speed": speed, "dev": quality,
        "dev_difference_vs_first_95ci": paired,
    }  # fmt: skip


def _markdown(res: dict[str, Any]) -> str:
    first = next(iter(res["settings"]))
    speed_rows = "".join(
        f"| {n} | {s['pairs_per_second']:.2f} | {', '.join(f'{x:.2f}' for x in s['per_round'])} "
        f"| {s['ratio_to_first']:.2f} | {s['epoch_minutes_62478']:.0f} | "
        f"{s['pairs_per_cpu_second']:.2f} | {s['cpu_ratio_to_first']:.2f} | "
        f"{', '.join(str(r['load_avg_before'][0]) for r in res['runs'][n])} |\n"
        for n, s in res["speed"].items()
    )
    keys = ("roc_auc", "ap", "spearman", "f1")
    dev_rows = "".join(
        f"| {n} | " + " | ".join(_fmt(k, m.get(k)) for k in keys) + " | "
        + _ci(res["dev_difference_vs_first_95ci"].get(n)) + " |\n"
        for n, m in res["dev"].items()
    )  # fmt: skip
    return (
        "# Teacher training: plain sentence-transformers against flipkd's speed options\n\n"
        f"Command: `{res['command']}` at `{res['git_commit']}`, {res['date']}; "
        f"machine {json.dumps(res['machine'])}; versions {json.dumps(res['versions'])}.\n\n"
        f"{res['model']}, CoSENT, {res['train_pairs']} ATEC train pairs (seeded sample), "
        f"batch {res['batch']}, one epoch, lr {res['lr']}, warm-up {res['warmup_ratio']}, "
        f"max_length {res['max_length']}, seed {res['seed']}, {res['repeats']} round(s) over "
        f"the settings in turn. Load average (1/5/15 min) at start {res['load_avg_start']}, "
        f"at end {res['load_avg_end']}. Settings: "
        + "; ".join(
            f"`{n}` {o if o else 'SentenceTransformerTrainer defaults'}"
            for n, o in res["settings"].items()
        )  # fmt: skip
        + ".\n\n## Speed (train pairs/s inside the training steps)\n\n"
        f"| setting | pairs/s (all rounds) | per round | ÷ `{first}` | minutes per epoch of "
        f"62,478 pairs at that rate | pairs per CPU-second | ÷ `{first}` (CPU) | "
        "1-min load before each run |\n|---|---|---|---|---|---|---|---|\n"
        + speed_rows
        + f"\n## Dev ({res['dev_pairs']} ATEC dev pairs, threshold chosen on the same pairs)\n\n"
        f"| model | ROC-AUC | AP | Spearman | best F1 | 95% CI of the difference to `{first}` "
        "(Spearman; ROC-AUC), paired bootstrap |\n|---|---|---|---|---|---|\n" + dev_rows
    )


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}" if key == "spearman" else f"{value:.4f}"


def _ci(ci: dict[str, list[float]] | None) -> str:
    if not ci:
        return "–"
    s, a = ci["spearman"], ci["roc_auc"]
    return f"[{s[0]:+.2f}, {s[1]:+.2f}]; [{a[0]:+.4f}, {a[1]:+.4f}]"


if __name__ == "__main__":
    run_script(main)
