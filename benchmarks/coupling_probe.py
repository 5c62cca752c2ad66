"""Through which paths do fip's representation terms reach the generated label?

Trains `sft` and `fip` for a few steps from the same seeded init, with LoRA dropout off and
the tap made tap-only (`student.tap.shared=false`: the tapped module's B frozen at zero, so
generation never reads the tapped A). Then the only ways the representation terms can
change the label's steps are the global gradient-norm clip (their gradients count in the
norm) and random draws. Each setting prints the per-step L_gen of both rows and which
adapter tensors differ at the end: with clipping off they should be identical except the
tapped A.

    python benchmarks/coupling_probe.py --steps 6 --teacher-dir TEACHER_RUN
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from flipkd.paths import write_json
from flipkd.provenance import provenance
from flipkd.recipes.pipeline import ensure_teacher, load_splits
from flipkd.reproduce.ladder import build_config
from flipkd.reproduce.profiles import PROFILES
from flipkd.student import build_student
from flipkd.trainer import train_student


def _run(row: str, clip: float, args, splits, cache, work: Path) -> dict:
    cfg = build_config(
        PROFILES[args.profile], args.benchmark, row, args.seed,
        ["student.tap.shared=false", "student.lora.dropout=0.0", f"train.steps={args.steps}",
         f"train.max_grad_norm={clip}", "train.save_every=0"],
    )  # fmt: skip
    student = build_student(cfg.student, benchmark=cfg.data.benchmark, init_seed=cfg.train.seed)
    run = work / f"{row}-clip{clip:g}"
    shutil.rmtree(run, ignore_errors=True)
    train_student(cfg, run, cache=cache, train_pairs=splits["train"], student=student,
                  progress=False)  # fmt: skip
    logs = [json.loads(x) for x in (run / "logs" / "train.jsonl").read_text().splitlines()]
    return {"gen": [r["gen"] for r in logs if r.get("kind") == "train"],
            "adapter": load_file(run / "adapter" / "adapter_model.safetensors")}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--benchmark", default="mqp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--clips", default="1e6,1.0", help="max_grad_norm values (1e6: off)")
    p.add_argument("--teacher-dir", default="runs/probe/coupling-teacher")
    p.add_argument("--work", default="runs/probe/coupling")
    p.add_argument("--out", default="results/dev/mqp/coupling_probe.json")
    args = p.parse_args()
    cfg = build_config(PROFILES[args.profile], args.benchmark, "fip", args.seed, [])
    splits = load_splits(cfg, ("train", "dev"))
    _, cache = ensure_teacher(cfg, Path(args.teacher_dir), splits, progress=False)
    start, settings = time.time(), []
    for clip in (float(c) for c in args.clips.split(",")):
        work = Path(args.work)
        runs = {row: _run(row, clip, args, splits, cache, work) for row in ("sft", "fip")}
        a, b = runs["sft"]["adapter"], runs["fip"]["adapter"]
        differ = {k: float((a[k] - b[k]).norm()) for k in a if not torch.equal(a[k], b[k])}
        settings.append({
            "max_grad_norm": clip, "gen_sft": runs["sft"]["gen"], "gen_fip": runs["fip"]["gen"],
            "tensors": len(a), "tensors_differ": differ,
        })  # fmt: skip
        print(f"max_grad_norm {clip:g}: L_gen sft {runs['sft']['gen']}")
        print(f"max_grad_norm {clip:g}: L_gen fip {runs['fip']['gen']}")
        print(f"  adapter tensors that differ: {len(differ)} of {len(a)} {sorted(differ)[:4]}")
    cmd = ["python", "benchmarks/coupling_probe.py", *sys.argv[1:]]
    write_json(Path(args.out), {**provenance(cmd), "args": vars(args), "settings": settings,
                                "seconds": time.time() - start})  # fmt: skip


if __name__ == "__main__":
    main()
