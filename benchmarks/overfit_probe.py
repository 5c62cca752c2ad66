"""Can the label head fit a few training pairs at all? (A bug check for the gen path.)

Trains the student on N training pairs for many epochs and scores the *same* pairs in gen
mode: a working gen path drives their ROC-AUC towards 1; one stuck near 0.5 means the label
cannot see the pair (a wiring bug) or lacks the capacity to separate even memorised pairs.

    python benchmarks/overfit_probe.py --pairs 64 --steps 60 OVERRIDES...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score

from flipkd.config import load_config
from flipkd.provenance import provenance
from flipkd.recipes.pipeline import ensure_teacher, load_splits
from flipkd.student import build_student, score_pairs
from flipkd.trainer import train_student


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/mqp_smollm2.yaml")
    p.add_argument("--teacher-dir", default="runs/probe/teacher")
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--out", default="results/dev/mqp/overfit_probe.json")
    p.add_argument("--run-dir", default="runs/probe/overfit")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(args.config, ["train.eval_every=0", "train.save_every=0", *args.overrides])
    splits = load_splits(cfg, ("train", "dev"))
    _, cache = ensure_teacher(cfg, Path(args.teacher_dir), splits, progress=False)
    pairs = splits["train"][: args.pairs]
    student = build_student(cfg.student, benchmark=cfg.data.benchmark, init_seed=cfg.train.seed)
    labels = [int(r.label) for r in pairs]
    texts = [(r.text_a, r.text_b) for r in pairs]
    before = roc_auc_score(labels, score_pairs(student, texts, mode="gen"))
    t0 = time.perf_counter()
    result = train_student(
        cfg, Path(args.run_dir), cache=cache, train_pairs=pairs, student=student, progress=False
    )
    after = roc_auc_score(labels, score_pairs(student, texts, mode="gen"))
    doc = {
        "pairs": len(pairs), "steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
        "train_gen_auc_before": before, "train_gen_auc_after": after,
        "last_log": result.last_log, "seconds": time.perf_counter() - t0,
        "overrides": args.overrides, **provenance(["python", *sys.argv]),
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: doc[k] for k in ("train_gen_auc_before", "train_gen_auc_after")}))


if __name__ == "__main__":
    main()
