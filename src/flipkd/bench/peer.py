"""The peer: sentence-transformers + peft, as a user would set it up without flipkd.

A ``SentenceTransformer`` built from the student's base model directory (a
``Transformer`` module + mean ``Pooling``, fp32), peft LoRA on its auto model with
the student's rank, alpha, dropout, target modules and layers, trained with
``CoSENTLoss`` and AdamW in a plain loop (same batches, learning rate and gradient
clipping as flipkd's trainer). The peer is deliberately a plain peft user, so this
module talks to peft directly; flipkd's own code reaches peft only through
``flipkd.student``.

Two choices keep the work the same as flipkd's: texts are truncated to the
student's ``max_text_length``, and the ``Transformer`` is told to read text as text
(sentence-transformers 6 would otherwise wrap every text in the model's chat
template, system prompt included, which roughly triples the tokens of a short text).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from flipkd.models.layers import layer_and_leaf
from flipkd.student.lora import quiet_peft
from flipkd.trainer.sampler import batch_indices

_TEXT_ONLY = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}


def _target_regex(model: torch.nn.Module, layers: list[int] | None) -> str:
    """A peft ``target_modules`` regex: every decoder linear in the chosen layers."""
    n_layers = model.config.num_hidden_layers
    chosen = range(n_layers) if layers is None else sorted({i % n_layers for i in layers})
    names = sorted(
        {
            where[1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and (where := layer_and_leaf(name))
        }
    )
    return rf"(.*\.)?layers\.({'|'.join(map(str, chosen))})\.(.*\.)?({'|'.join(names)})"


def build_peer(
    model_dir: str,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    layers: list[int] | None,
    max_seq_length: int,
):
    """A SentenceTransformer (Transformer + mean Pooling) with peft LoRA on its auto model."""
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    transformer = Transformer(
        model_dir,
        max_seq_length=max_seq_length,
        model_kwargs={"dtype": torch.float32},
        modality_config=_TEXT_ONLY,
        module_output_name="token_embeddings",
    )
    if transformer.tokenizer.pad_token is None:
        transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=_target_regex(transformer.model, layers),
    )
    with quiet_peft():  # the deprecation peft reads in transformers, as flipkd's own wrap
        transformer.model = get_peft_model(transformer.model, config)
    return model


def trainable_parameters(model: torch.nn.Module) -> int:
    """How many parameters train (to check the peer's LoRA matches the student's)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def time_peer_training(
    model,
    pairs: list,
    *,
    batch_size: int,
    steps: int,
    warmup: int,
    lr: float,
    seed: int = 0,
    max_grad_norm: float = 1.0,
) -> dict[str, Any]:
    """CoSENT + AdamW on the same batches as flipkd's trainer; report the steps after ``warmup``."""
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    loss_fn = CoSENTLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    seconds, tokens = [], []
    for step in range(steps):
        batch = [pairs[i] for i in batch_indices(len(pairs), batch_size, seed, step)]
        t0 = time.perf_counter()
        features = [
            model.preprocess([getattr(r, col) for r in batch]) for col in ("text_a", "text_b")
        ]
        loss = loss_fn(features, torch.tensor([float(r.label) for r in batch]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - t0)
        tokens.append(sum(int(f["attention_mask"].sum()) for f in features))
    timed = seconds[warmup:]
    return {
        "batch_size": batch_size,
        "warmup_steps": warmup,
        "timed_steps": len(timed),
        "step_seconds": [round(s, 4) for s in timed],
        "mean_step_s": sum(timed) / len(timed),
        "median_step_s": float(np.median(timed)),
        "pairs_per_s": batch_size * len(timed) / sum(timed),
        "tokens_per_s": sum(tokens[warmup:]) / sum(timed),
        "trainable_parameters": trainable_parameters(model),
    }


def peer_encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """``SentenceTransformer.encode`` (L2-normalised, like flipkd's A-tap representation)."""
    model.eval()
    return model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
