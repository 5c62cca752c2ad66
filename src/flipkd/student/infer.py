"""Batched, length-bucketed inference: ``encode`` and ``score_pairs``.

Inputs are sorted by token count (characters are a poor proxy: sorted by characters,
batches of MQP questions were still 25-47% padding) so each batch pads little, then
results are put back in the caller's order. In ``gen`` mode, pairs that share their first
text (a query re-ranking its candidates) run that prompt prefix once (``shared.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from flipkd.student.model import Student
from flipkd.student.shared import group_by_first_text, shared_prefix_label_logits


def _bucketed(
    items: Sequence,
    lengths: Sequence[int],
    fn: Callable,
    batch_size: int,
    progress: bool,
    desc: str,
) -> np.ndarray:
    order = sorted(range(len(items)), key=lengths.__getitem__)
    chunks = []
    for start in tqdm(
        range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False
    ):
        idx = order[start : start + batch_size]
        chunks.append(fn([items[i] for i in idx]))
    if not chunks:
        return np.zeros((0,), dtype=np.float32)
    out = np.concatenate(chunks)
    result = np.empty_like(out)
    result[np.array(order)] = out
    return result


def _unit_float32(reps: torch.Tensor) -> torch.Tensor:
    """Representations as float32 unit vectors: a bf16 student normalised them in bf16
    (norms off by up to ~0.4%), so they are normalised again after the cast."""
    if reps.dtype == torch.float32:
        return reps
    return torch.nn.functional.normalize(reps.float(), dim=-1)


def _token_counts(student: Student, texts: Sequence[str]) -> list[int]:
    """Each text's token count, capped at the student's ``max_text_length``."""
    if not texts:
        return []
    ids = student.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [min(len(i), student.max_text_length) for i in ids]


@torch.inference_mode()
def encode(
    student: Student, texts: Sequence[str], batch_size: int = 32, progress: bool = False
) -> np.ndarray:
    """A-tap representations [n, d] (float32, L2-normalised)."""
    was_training = student.model.training
    student.model.eval()
    texts = list(texts)
    try:
        out = _bucketed(
            texts, _token_counts(student, texts),
            lambda chunk: _unit_float32(student.rep_forward(chunk)).cpu().numpy(),
            batch_size, progress, "encode",
        )  # fmt: skip
    finally:
        student.model.train(was_training)
    return out.reshape(len(texts), -1) if len(texts) else np.zeros((0, student.tap.dim), np.float32)


def _rep_scores(student: Student, chunk: list[tuple[str, str]]) -> np.ndarray:
    reps = _unit_float32(student.rep_forward([t for pair in chunk for t in pair]))
    # a cosine of unit vectors can round past ±1 in float32 (1.0000001 seen for a text with
    # itself): keep every served score inside its documented range
    return (reps[0::2] * reps[1::2]).sum(-1).clamp(-1.0, 1.0).cpu().numpy()


def _gen_scores(student: Student, chunk: list[tuple[str, str]]) -> np.ndarray:
    return student.gen_forward(chunk).prob.cpu().numpy()


SCORERS: dict[str, Callable[[Student, list], np.ndarray]] = {
    "gen": _gen_scores,
    "rep": _rep_scores,
}


@torch.inference_mode()
def score_pairs(
    student: Student,
    pairs: Sequence[tuple[str, str]],
    mode: str = "gen",
    batch_size: int = 16,
    progress: bool = False,
    share_prefix: bool = True,
) -> np.ndarray:
    """Match scores [n]: P(positive label word) for ``gen``, A-tap cosine for ``rep``.

    ``share_prefix``: in ``gen`` mode, pairs with the same first text run their common prompt
    prefix once, in chunks of ``batch_size`` (not while the frozen-prefix cache is on, which
    already skips the bottom layers; scores equal up to float rounding either way).
    """
    if mode not in SCORERS:
        raise ValueError(f"mode must be one of {list(SCORERS)}, not {mode!r}")
    scorer = SCORERS[mode]
    pairs = list(pairs)
    groups: list[list[int]] = []
    alone = list(range(len(pairs)))
    if mode == "gen" and share_prefix and student.prefix is None:
        groups, alone = group_by_first_text(pairs)
    was_training = student.model.training
    student.model.eval()
    try:
        out = np.zeros(len(pairs), dtype=np.float32)
        for group in groups:
            for start in range(0, len(group), batch_size):
                idx = group[start : start + batch_size]
                logits = shared_prefix_label_logits(student, [pairs[i] for i in idx])
                out[idx] = logits.softmax(-1)[:, 0].cpu().numpy()
        rest = [pairs[i] for i in alone]
        firsts, seconds = (_token_counts(student, [p[i] for p in rest]) for i in (0, 1))
        lengths = [a + b for a, b in zip(firsts, seconds, strict=True)]
        scores = _bucketed(
            rest, lengths,
            lambda chunk: scorer(student, chunk), batch_size, progress, f"score[{mode}]",
        )  # fmt: skip
        if not groups:
            return scores
        out[alone] = scores
        return out
    finally:
        student.model.train(was_training)
