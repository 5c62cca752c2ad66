"""Generated-label scores of one query against many candidates, its prompt prefix run once.

Re-ranking scores ``(query, candidate)`` for the k candidates of one query: every prompt
starts with the same tokens (the instruction and the query) and differs only after them.
:func:`shared_prefix_label_logits` runs the common token prefix through the decoder once,
keeps its keys and values (transformers' ``DynamicCache``), repeats them k times and runs only
the k suffixes on top. The prompts are tokenised exactly as :meth:`Student.gen_forward` does
and the prefix is the longest common prefix of the token ids (not of the strings), so the
label logits equal the plain pass up to float rounding (tested).

Only for inference: no gradient, no LoRA dropout (eval mode), and not through the
frozen-prefix cache (keyed by whole sequences, which re-ranking prompts never repeat).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from flipkd.student.model import Student

# a group shares its prefix when at least this many pairs have the same first text
MIN_GROUP = 2


def _token_ids(student: Student, pairs: list[tuple[str, str]]) -> list[list[int]]:
    """Each pair's prompt as ``gen_forward`` tokenises it (same truncation)."""
    enc = student.tokenizer(
        student.prompts(pairs), truncation=True, max_length=student.max_length,
        add_special_tokens=False,
    )  # fmt: skip
    return [list(ids) for ids in enc["input_ids"]]


def common_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least its last token to run."""
    if not seqs:
        return 0
    shortest = min(len(s) for s in seqs)
    n = 0
    while n < shortest - 1 and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


@torch.inference_mode()
def shared_prefix_label_logits(student: Student, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Label-word logits [len(pairs), 2] (positive first), as ``gen_forward`` gives them;
    the pairs' common token prefix runs once. Pairs that share no prefix cost one extra
    (empty) pass at most."""
    seqs = _token_ids(student, pairs)
    n_prefix = common_prefix_length(seqs)
    decoder, device = student.body.decoder, student.device
    cache = None
    if n_prefix:
        prefix = torch.tensor([seqs[0][:n_prefix]], device=device)
        cache = DynamicCache()
        decoder(
            input_ids=prefix, attention_mask=torch.ones_like(prefix),
            position_ids=torch.arange(n_prefix, device=device)[None],
            cache=cache, use_cache=True,
        )  # fmt: skip
        cache.batch_repeat_interleave(len(seqs))
    tails = [s[n_prefix:] for s in seqs]
    width = max(len(t) for t in tails)
    pad = student.tokenizer.pad_token_id or 0
    ids = torch.full((len(tails), width), pad, dtype=torch.long)
    mask = torch.zeros((len(tails), n_prefix + width), dtype=torch.long)
    mask[:, :n_prefix] = 1
    for row, tail in enumerate(tails):
        ids[row, : len(tail)] = torch.tensor(tail)
        mask[row, n_prefix : n_prefix + len(tail)] = 1
    positions = torch.arange(n_prefix, n_prefix + width).expand(len(tails), -1)
    out = decoder(
        input_ids=ids.to(device), attention_mask=mask.to(device),
        position_ids=positions.to(device), cache=cache, use_cache=cache is not None,
    )  # fmt: skip
    last = torch.tensor([len(t) - 1 for t in tails], device=device)
    hidden = out.last_hidden_state[torch.arange(len(tails), device=device), last]
    logits = student.head(hidden).float()
    if student.softcap:
        logits = torch.tanh(logits / student.softcap) * student.softcap
    return logits[:, list(student.label_ids)]


def group_by_first_text(pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
    """Indices of pairs grouped by their first text (groups of at least ``MIN_GROUP``), and
    the indices of the pairs left alone."""
    groups: dict[str, list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        groups.setdefault(a, []).append(i)
    shared = [g for g in groups.values() if len(g) >= MIN_GROUP]
    alone = [i for g in groups.values() if len(g) < MIN_GROUP for i in g]
    return shared, sorted(alone)
