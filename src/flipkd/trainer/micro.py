"""One global micro-batch of a training step: forward, gather, loss.

Every process builds the same global batch's texts and teacher similarities, runs its own
slice of the pairs and texts through the student, gathers the representations of all
processes (gradients flow to the local part), and computes the loss terms
(:func:`flipkd.trainer.step.batch_loss`) on the whole batch.
"""

from __future__ import annotations

import torch

from flipkd.trainer.diagnose import margin_stats, term_grad_norms
from flipkd.trainer.sampler import shard
from flipkd.trainer.step import LossSet, batch_loss, gen_targets, gen_weights


def gather(acc, reps: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's representations, keeping gradients to the local part."""
    if acc.num_processes == 1:
        return reps
    import warnings

    from torch.distributed.nn.functional import all_gather  # public, differentiable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(all_gather(reps.contiguous()), dim=0)


def micro_step(
    acc, model, losses: LossSet, records, cache, diagnose: bool = False, parts: dict | None = None
) -> tuple[torch.Tensor, dict]:
    """Forward and loss for one global micro-batch; this process handles its slice.

    ``diagnose`` adds the batch's diagnostics (``diagnose.py``) to the returned values,
    per-term gradient norms included (one extra backward per term). ``parts`` (a dict)
    receives the label and representation parts of the total (``batch_loss``).
    """
    rank, world = acc.process_index, acc.num_processes
    labels = torch.tensor([r.label if r.label is not None else -1 for r in records])
    local = shard(list(range(len(records))), rank, world)
    pairs = [(records[i].text_a, records[i].text_b) for i in local]
    texts = list(dict.fromkeys(t for r in records for t in (r.text_a, r.text_b)))
    padded = texts + texts[-1:] * (-len(texts) % world)
    a_texts, b_texts = [r.text_a for r in records], [r.text_b for r in records]
    teacher_cos = cache.sim(a_texts, b_texts)
    pair_prob = cache.prob(teacher_cos.diagonal()).cpu()
    targets = gen_targets(losses, labels, pair_prob)[local].to(acc.device)
    weights = gen_weights(losses, labels)
    out = model(
        pairs, targets if losses.gen else None,
        shard(padded, rank, world), need_gen=losses.gen, need_rep=losses.needs_rep,
        weights=None if weights is None else weights[local].to(acc.device),
    )  # fmt: skip
    rep_a = rep_b = text_view = None
    if losses.needs_rep:
        reps = gather(acc, out["reps"])[: len(texts)]
        row = {t: i for i, t in enumerate(texts)}
        rep_a = reps[[row[r.text_a] for r in records]]
        rep_b = reps[[row[r.text_b] for r in records]]
        if losses.needs_text_view:
            text_view = (reps, cache.sim(texts, texts))
    terms: dict | None = {} if diagnose else None
    total, values = batch_loss(
        losses, out.get("gen_loss"), rep_a, rep_b, teacher_cos,
        cache.prob(teacher_cos, losses.rep_prior),
        labels.to(teacher_cos.device), terms_out=terms, parts_out=parts,
        label_logits=out.get("label_logits"), label_prob=pair_prob[local],
        text_view=text_view,
    )  # fmt: skip
    if terms is not None:
        values.update(term_grad_norms(terms, losses.weights, model.named_parameters()))
        if "label_logits" in out:
            values.update(margin_stats(out["label_logits"], labels[local]))
    if "label_logits" in out:
        gen_pos = out["label_logits"].argmax(-1) == 0
        values["agree/gen_teacher"] = float(
            (gen_pos.cpu() == (pair_prob[local] >= 0.5)).float().mean()
        )
    return total, values
