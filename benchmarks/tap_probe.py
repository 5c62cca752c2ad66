"""Which A-tap can carry the teacher's similarities? A cheap probe on frozen features.

The A-tap of a module is ``pool(A · x) = A · pool(x)`` for mean pooling (A is linear), so
every tap's representation is a linear map of the module input's mean-pooled hidden state.
This probe runs the student once over every train/dev text, keeps the mean-pooled input of
chosen modules at every layer, and for each (layer, module) reports on dev:

* anisotropy: mean cosine of random text pairs and the effective rank of 256 texts,
  raw and after centring (subtracting the train-text mean);
* ROC-AUC of the raw input cosine, of the random-A tap at init (peft's init), and of an A
  (rank r, initialised as peft does) *learned* on the train pairs with the real flipkd
  losses (MCL + KL L_dist, dual threshold, batches of 16) — the base model frozen, so it
  measures what the tap place can carry, not what LoRA's B adds below it.

    python benchmarks/tap_probe.py --out results/dev/mqp/tap_probe.json

Writes JSON (every cell, the command, commit, versions) and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from flipkd.config import load_config
from flipkd.losses import build_contrastive, build_dist, dual_threshold_mask
from flipkd.models.layers import layer_and_leaf
from flipkd.paths import cache_root, hash_text
from flipkd.provenance import provenance
from flipkd.recipes.pipeline import ensure_teacher, load_splits
from flipkd.student import build_student
from flipkd.student.lora import lora_a, lora_layers
from flipkd.trainer.diagnose import effective_rank as diagnose_rank

MODULES = ("q_proj", "o_proj", "up_proj", "down_proj")


class _Done(Exception):
    pass


def pooled_inputs(student, texts: list[str], modules, layers, batch: int = 32) -> dict:
    """Mean-pooled input of each (layer, module) for every text: {(layer, mod): [n, d]}.

    The forward pass stops after the last module it needs.
    """
    names = {}
    for name, layer in lora_layers(student.model).items():
        where = layer_and_leaf(name)
        if where and where[1] in modules and where[0] in layers:
            names[where] = layer
    last = max(names, key=lambda k: (k[0], modules.index(k[1])))
    store: dict = {k: [] for k in names}
    current: dict = {}

    def hook_for(key):
        def hook(module, args):
            mask = current["mask"].unsqueeze(-1).to(args[0].dtype)
            store[key].append(((args[0] * mask).sum(1) / mask.sum(1)).detach())
            if key == last:
                raise _Done

        return hook

    handles = [layer.register_forward_pre_hook(hook_for(k)) for k, layer in names.items()]
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                enc = student._batch(texts[i : i + batch], student.max_text_length)
                current["mask"] = enc["attention_mask"]
                with contextlib.suppress(_Done):
                    student.body.run(enc)
    finally:
        for h in handles:
            h.remove()
    return {k: torch.cat(v) for k, v in store.items()}


def effective_rank(x: torch.Tensor) -> float:
    """Effective rank of the L2-normalised rows (``flipkd.trainer.diagnose.effective_rank``)."""
    return diagnose_rank(F.normalize(x, dim=-1))


def mean_random_cos(x: torch.Tensor, gen: torch.Generator, n: int = 2000) -> float:
    i = torch.randint(0, x.shape[0], (n,), generator=gen)
    j = torch.randint(0, x.shape[0], (n,), generator=gen)
    keep = i != j
    return float(F.cosine_similarity(x[i[keep]], x[j[keep]]).mean())


def pair_auc(emb: torch.Tensor, pairs, labels) -> float:
    e = F.normalize(emb, dim=-1)
    s = (e[[a for a, _ in pairs]] * e[[b for _, b in pairs]]).sum(-1)
    return float(roc_auc_score(labels, s.numpy()))


def learn_a(
    feat, a0, train_idx, train_y, tcos, tprob, args, seed: int, overrides: dict | None = None
) -> torch.Tensor:
    """Learn A (init a0) on frozen features with MCL + KL L_dist; returns the learned A."""
    a = torch.nn.Parameter(a0.clone())
    opt = torch.optim.AdamW([a], lr=args.lr, weight_decay=0.0)
    hp = {"lam": 20.0, "margin": 0.1, "gamma": 1.0, "alpha": args.alpha, "beta": args.beta,
          "t": 0.05, **(overrides or {})}  # fmt: skip
    mcl = build_contrastive("mcl", scale=hp["lam"], margin=hp["margin"], gamma=hp["gamma"])
    dist = build_dist("kl", t_teacher=hp["t"], t_student=hp["t"])
    gen = torch.Generator().manual_seed(seed)
    n = len(train_idx)
    for _ in range(args.steps):
        b = torch.randperm(n, generator=gen)[: args.batch]
        ia, ib = train_idx[b, 0], train_idx[b, 1]
        ra = F.normalize(feat[ia] @ a.T, dim=-1)
        rb = F.normalize(feat[ib] @ a.T, dim=-1)
        sim = ra @ rb.T
        tc, tp, y = tcos[b][:, b], tprob[b][:, b], train_y[b]
        mask = dual_threshold_mask(tp, y, 0.6, 0.4)
        loss = hp["alpha"] * mcl(sim, tp, y, mask) + hp["beta"] * dist(sim, tc, y, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return a.detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/mqp_smollm2.yaml")
    p.add_argument("--teacher-dir", default="runs/probe/teacher")
    p.add_argument("--out", default="results/dev/mqp/tap_probe.json")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--layers", default="6,12,18,24,27,29", help="comma list of layers")
    p.add_argument("--train-pairs", type=int, default=600, help="first N train pairs (0: all)")
    p.add_argument("--grid", default="", help="loss settings to compare at --grid-tap")
    p.add_argument("--grid-tap", default="29:down_proj", help="LAYER:MODULE for --grid")
    p.add_argument("--grid-seeds", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = load_config(
        args.config,
        ["student.lora.layers=null", f"student.lora.rank={args.rank}", "student.lora.dropout=0"],
    )
    splits = load_splits(cfg, ("train", "dev"))
    if args.train_pairs:
        splits["train"] = splits["train"][: args.train_pairs]
    _, cache = ensure_teacher(cfg, Path(args.teacher_dir), splits, progress=False)
    student = build_student(cfg.student, benchmark=cfg.data.benchmark, init_seed=cfg.train.seed)
    student.model.eval()
    texts = list(
        dict.fromkeys(t for s in ("train", "dev") for r in splits[s] for t in (r.text_a, r.text_b))
    )
    row = {t: i for i, t in enumerate(texts)}
    t0 = time.perf_counter()
    layers = [int(x) for x in args.layers.split(",")]
    key = hash_text(args.config, repr(layers), repr(args.train_pairs), *texts)
    feat_file = cache_root() / "probe" / f"tap-features-{key}.pt"
    if feat_file.is_file():
        feats = torch.load(feat_file)
    else:
        feats = pooled_inputs(student, texts, MODULES, layers)
        feat_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(feats, feat_file)
    feat_seconds = time.perf_counter() - t0
    train, dev = splits["train"], splits["dev"]
    train_idx = torch.tensor([[row[r.text_a], row[r.text_b]] for r in train])
    train_y = torch.tensor([int(r.label) for r in train])
    tcos = cache.sim([r.text_a for r in train], [r.text_b for r in train]).float()
    tprob = cache.prob(tcos).float()
    dev_pairs = [(row[r.text_a], row[r.text_b]) for r in dev]
    dev_y = [int(r.label) for r in dev]
    train_texts = sorted({int(i) for i in train_idx.flatten()})
    a_init = {
        layer_and_leaf(n): lora_a(layer).weight.detach()
        for n, layer in lora_layers(student.model).items()
    }
    gen = torch.Generator().manual_seed(0)
    if args.grid:
        return run_grid(args, feats, a_init, train_idx, train_y, tcos, tprob, dev_pairs, dev_y)
    sample = torch.randperm(len(texts), generator=gen)[:256]
    cells = []
    for layer in layers:
        for mod in MODULES:
            x = feats[(layer, mod)]
            mu = x[train_texts].mean(0)
            xc = x - mu
            a0 = a_init[(layer, mod)]
            cell = {"layer": layer, "module": mod, "dim": x.shape[1]}
            cell["raw_mean_cos"] = mean_random_cos(x, gen)
            cell["centred_mean_cos"] = mean_random_cos(xc, gen)
            cell["raw_eff_rank"] = effective_rank(x[sample])
            cell["centred_eff_rank"] = effective_rank(xc[sample])
            cell["tap_init_mean_cos"] = mean_random_cos(x @ a0.T, gen)
            cell["raw_auc"] = pair_auc(x, dev_pairs, dev_y)
            cell["centred_auc"] = pair_auc(xc, dev_pairs, dev_y)
            cell["tap_init_auc"] = pair_auc(x @ a0.T, dev_pairs, dev_y)
            for name, f in (("learned", x), ("learned_centred", xc)):
                a = learn_a(f, a0, train_idx, train_y, tcos, tprob, args, seed=layer)
                cell[f"{name}_auc"] = pair_auc(f @ a.T, dev_pairs, dev_y)
                cell[f"{name}_mean_cos"] = mean_random_cos(f @ a.T, gen)
            cells.append(cell)
            print(json.dumps(cell), flush=True)
    teacher_dev = cache.pair_sim([r.text_a for r in dev], [r.text_b for r in dev])
    doc = {
        "command": "python " + " ".join(sys.argv),
        "provenance": provenance(["python", *sys.argv]),
        "seconds_features": feat_seconds,
        "texts": len(texts),
        "dev_pairs": len(dev),
        "teacher_dev_auc": float(roc_auc_score(dev_y, np.asarray(teacher_dev))),
        "args": vars(args),
        "cells": cells,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    out.with_suffix(".md").write_text(render(doc))
    print(render(doc))


def run_grid(args, feats, a_init, train_idx, train_y, tcos, tprob, dev_pairs, dev_y) -> None:
    """Learned-A dev AUC of one tap place under several loss settings (``--grid``).

    ``--grid "name:key=v,key=v;name2:..."`` with keys lam, margin, gamma, alpha, beta, t,
    rank (a fresh random A of that rank), centre (1: subtract the train-text mean).
    """
    layer, mod = args.grid_tap.split(":")
    x = feats[(int(layer), mod)]
    train_texts = sorted({int(i) for i in train_idx.flatten()})
    out = []
    for item in args.grid.split(";"):
        name, _, body = item.partition(":")
        hp = {k: float(v) for k, v in (kv.split("=") for kv in body.split(",") if kv)}
        f = x - x[train_texts].mean(0) if hp.pop("centre", 0) else x
        rank = int(hp.pop("rank", args.rank))
        a0 = a_init[(int(layer), mod)]
        if rank != a0.shape[0]:
            a0 = torch.empty(rank, a0.shape[1])
            torch.nn.init.kaiming_uniform_(a0, a=math.sqrt(5))
        aucs = []
        for seed in range(args.grid_seeds):
            a = learn_a(f, a0, train_idx, train_y, tcos, tprob, args, seed, hp)
            aucs.append(pair_auc(f @ a.T, dev_pairs, dev_y))
        cell = {"name": name, "tap": args.grid_tap, "settings": body, "dev_auc": aucs,
                "mean": float(np.mean(aucs))}  # fmt: skip
        out.append(cell)
        print(json.dumps(cell), flush=True)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"command": "python " + " ".join(sys.argv), "args": vars(args), "cells": out,
           "provenance": provenance(["python", *sys.argv])}  # fmt: skip
    path.write_text(json.dumps(doc, indent=1))
    lines = [f"# Learned-A loss grid at {args.grid_tap} (dev ROC-AUC, {args.grid_seeds} seeds)",
             "", f"Command: `{doc['command']}`", "",
             "| name | settings | dev AUC (mean) | per seed |",
             "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {c['name']} | `{c['settings']}` | {c['mean']:.3f} | "
              + ", ".join(f"{v:.3f}" for v in c["dev_auc"]) + " |" for c in out]  # fmt: skip
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def render(doc: dict) -> str:
    cols = (
        "raw_mean_cos", "centred_mean_cos", "raw_eff_rank", "centred_eff_rank", "raw_auc",
        "centred_auc", "tap_init_auc", "learned_auc", "learned_centred_auc",
    )  # fmt: skip
    lines = [
        f"# A-tap probe ({doc['dev_pairs']} dev pairs; teacher dev ROC-AUC "
        f"{doc['teacher_dev_auc']:.3f})",
        "",
        f"Command: `{doc['command']}`",
        "",
        "| layer | module | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for c in doc["cells"]:
        vals = " | ".join(f"{c[k]:.1f}" if "rank" in k else f"{c[k]:.3f}" for k in cols)
        lines.append(f"| {c['layer']} | {c['module']} | {vals} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
