"""Generated-label scores of one query against many candidates, its prompt prefix run once.

Re-ranking scores ``(query, candidate)`` for the k candidates of one query: every prompt
starts with the same tokens (the instruction and the query) and differs only after them.
:func:`shared_prefix_label_logits` runs the common token prefix through the decoder once,
keeps its keys and values (transformers' ``DynamicCache``) and runs only the k suffixes on
top, packed end to end into one row: each suffix keeps its own positions (after the
prefix's) and a 4-D mask lets it see the prefix and its own earlier tokens only. Packing
matters because the suffixes differ in length: padded to the longest, a query's 10 BQ
candidates cost 1.33x their real tokens (first 30 BQ FAQ queries, the index's top 10;
``benchmarks/rerank_tokens.py``).
The prompts are tokenised exactly as :meth:`Student.gen_forward` does
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


def prompt_token_ids(student: Student, pairs: list[tuple[str, str]]) -> list[list[int]]:
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


def tails_mask(lengths: list[int], n_prefix: int) -> torch.Tensor:
    """Additive attention mask [1, 1, T, n_prefix + T] for suffixes of ``lengths`` packed in
    one row after a shared prefix of ``n_prefix`` tokens: a token sees the whole prefix and
    its own suffix's tokens up to itself, nothing of the other suffixes. Float32 zeros and
    float32's minimum, which SDPA and eager attention both add to their scores."""
    segment = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    position = torch.cat([torch.arange(n) for n in lengths])
    sees = (segment[:, None] == segment[None, :]) & (position[None, :] <= position[:, None])
    sees = torch.cat([torch.ones(len(segment), n_prefix, dtype=torch.bool), sees], dim=1)
    mask = torch.zeros(sees.shape).masked_fill(~sees, torch.finfo(torch.float32).min)
    return mask[None, None]


@torch.inference_mode()
def shared_prefix_label_logits(student: Student, pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Label-word logits [len(pairs), 2] (positive first), as ``gen_forward`` gives them;
    the pairs' common token prefix runs once. Pairs that share no prefix cost one extra
    (empty) pass at most."""
    seqs = prompt_token_ids(student, pairs)
    decoder, device = student.body.decoder, student.device
    window = getattr(decoder.config, "sliding_window", None)
    if window and max(len(s) for s in seqs) > window:  # the mask below has no window
        return student.gen_forward(pairs).label_logits
    n_prefix = common_prefix_length(seqs)
    cache = None
    if n_prefix:
        prefix = torch.tensor([seqs[0][:n_prefix]], device=device)
        cache = DynamicCache()
        decoder(
            input_ids=prefix, attention_mask=torch.ones_like(prefix),
            position_ids=torch.arange(n_prefix, device=device)[None],
            cache=cache, use_cache=True,
        )  # fmt: skip
    lengths = [len(s) - n_prefix for s in seqs]
    ids = torch.tensor([[t for s in seqs for t in s[n_prefix:]]], device=device)
    positions = n_prefix + torch.cat([torch.arange(n) for n in lengths])[None].to(device)
    out = decoder(
        input_ids=ids, attention_mask=tails_mask(lengths, n_prefix).to(device),
        position_ids=positions, cache=cache, use_cache=cache is not None,
    )  # fmt: skip
    last = torch.tensor(lengths, device=device).cumsum(0) - 1
    hidden = out.last_hidden_state[0, last]
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
