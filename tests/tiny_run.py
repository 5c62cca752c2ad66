"""A tiny, fully deterministic training setup, importable by tests and runnable as a script.

``python tests/tiny_run.py RUN_DIR [--resume] [--steps N] ...`` trains the tiny
Llama student against a synthetic teacher cache. Used for the kill -9 / resume
test and for the multi-process (torchrun, gloo) equivalence test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from conftest import CORPUS, _tiny_llama, _tiny_tokenizer  # noqa: E402
from flipkd.config import FlipkdConfig  # noqa: E402
from flipkd.data import PairRecord  # noqa: E402
from flipkd.student import assemble_student  # noqa: E402
from flipkd.teacher.cache import TeacherCache, cache_from_embeddings  # noqa: E402

PARAPHRASE = {
    0: 1, 2: 3, 4: 5, 6: 7,
}  # fmt: skip


def make_pairs(n: int = 48) -> list[PairRecord]:
    """Labelled pairs from the tiny corpus: paraphrase pairs are positives."""
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        a = int(rng.integers(0, 8))
        if i % 2 == 0 and a in PARAPHRASE:
            b, label = PARAPHRASE[a], 1
        else:
            b = int(rng.integers(0, len(CORPUS)))
            label = int(PARAPHRASE.get(a) == b or a == b)
        suffix = f" {i % 5}" if i % 3 else ""
        pairs.append(PairRecord(CORPUS[a] + suffix, CORPUS[b], label, None, "tiny", i + 1))
    return pairs


def write_benchmark(root: Path, n_pairs: int, n_train: int, n_dev: int):
    """A user benchmark folder (train/dev/test JSONL) of tiny pairs, and a tiny teacher for it."""
    import json

    from flipkd.teacher import build_tiny_teacher

    pairs = make_pairs(n_pairs)
    cuts = {"train": pairs[:n_train], "dev": pairs[n_train : n_train + n_dev],
            "test": pairs[n_train + n_dev :]}  # fmt: skip
    for split, rows in cuts.items():
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for p in rows:
                row = {"text_a": p.text_a, "text_b": p.text_b, "label": p.label}
                fh.write(json.dumps(row) + "\n")
    teacher = build_tiny_teacher(root / "teacher", [t for p in pairs for t in (p.text_a, p.text_b)])
    return root, teacher


def make_cache(path: Path, pairs: list[PairRecord]) -> TeacherCache:
    """A synthetic teacher: random unit vectors, paraphrases pulled together."""
    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(len(CORPUS), 16, generator=gen)
    for a, b in PARAPHRASE.items():
        base[b] = base[a] + 0.3 * base[b]
    emb = torch.stack(
        [base[CORPUS.index(t.rsplit(" ", 1)[0] if t not in CORPUS else t)] for t in texts]
    )
    emb = torch.nn.functional.normalize(emb + 0.05 * torch.randn(emb.shape, generator=gen), dim=-1)
    return cache_from_embeddings(path, texts, emb, pairs)


def tiny_config(steps: int = 12, dropout: float = 0.1, **train) -> FlipkdConfig:
    cfg = FlipkdConfig(name="tiny")
    cfg.student.max_length, cfg.student.max_text_length = 96, 16
    cfg.student.lora.rank, cfg.student.lora.dropout = 4, dropout
    cfg.loss.alpha, cfg.loss.theta_pos, cfg.loss.theta_neg = 0.1, 0.55, 0.45
    cfg.train.steps, cfg.train.batch_size, cfg.train.lr = steps, 8, 5e-3
    cfg.train.save_every, cfg.train.warmup_ratio = 4, 0.0
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def tiny_student(cfg: FlipkdConfig):
    tok = _tiny_tokenizer()
    model = _tiny_llama(len(tok))
    torch.manual_seed(0)
    return assemble_student(model, tok, cfg.student)


def first_step(run_dir: Path, pairs, cache, **loss) -> tuple[dict, dict]:
    """One training step with ``loss`` overrides: its logged values and the run's summary."""
    import json

    from flipkd.trainer import train_student

    cfg = tiny_config(steps=1, dropout=0.0, save_every=0)
    for name, value in loss.items():
        setattr(cfg.loss, name, value)
    train_student(
        cfg, run_dir, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
    )
    first = json.loads((run_dir / "logs" / "train.jsonl").read_text().splitlines()[0])
    return first, json.loads((run_dir / "train_summary.json").read_text())


def passes_with_grads(student, texts, pairs, labels) -> tuple:
    """Both passes and a backward: (rep, label logits, LoRA grads by name), detached."""
    student.model.zero_grad(set_to_none=True)
    rep = student.rep_forward(texts)
    gen = student.gen_forward(pairs, labels)
    (gen.loss + (rep @ rep.T).sum()).backward()
    grads = {n: p.grad.clone() for n, p in student.model.named_parameters() if p.grad is not None}
    return rep.detach(), gen.label_logits.detach(), grads


def assert_same_passes(got: tuple, want: tuple) -> None:
    """Two :func:`passes_with_grads` results agree up to float rounding."""
    (rep1, gen1, g1), (rep0, gen0, g0) = got, want
    torch.testing.assert_close(rep1, rep0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gen1, gen0, atol=1e-4, rtol=1e-4)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-4, rtol=1e-3)


def main(argv: list[str] | None = None) -> None:
    from flipkd.trainer import train_student

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=4)
    ap.add_argument("--clip-scope", default="global")
    ap.add_argument("--dist-scope", default="pairs")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = tiny_config(
        args.steps, args.dropout, batch_size=args.batch_size, grad_accum=args.grad_accum,
        save_every=args.save_every, clip_scope=args.clip_scope,
    )  # fmt: skip
    cfg.loss.dist_scope = args.dist_scope
    pairs = make_pairs()
    cache = make_cache(args.run_dir / "cache", pairs)
    train_student(
        cfg, args.run_dir, cache=cache, train_pairs=pairs, resume=args.resume,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
