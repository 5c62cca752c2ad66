"""The student: a decoder LLM with LoRA, an A-tap, and a label-word head.

Two forward passes exist:

* ``rep_forward(texts)``: the text alone, cut after the last tapped layer,
  returns L2-normalised A-tap representations [n, d].
* ``gen_forward(pairs)``: the prompt with both texts; only the hidden state at
  the answer position goes through the LM head (never full-vocabulary logits
  for every position). Returns the two label-word logits and, given gold
  labels, L_gen = cross-entropy of the gold label word over the vocabulary.

With ``pack_tokens`` > 0 both passes pack their texts into rows of about that many
tokens instead of padding each text to the longest (see ``packing.py``): the same
result up to float rounding, with far fewer tokens through the layers. The trainer
turns it on; the default (0) keeps padded batches, except that a no-grad batch
whose padding share is above ``pack_inference_above`` is packed (5% when packed passes
attend per text, 20% through a block mask): a server's micro-batch of unrelated queries
is often half padding, and even length-sorted batches of short texts pad 8-16%.

With a frozen-prefix cache (``enable_prefix_cache``, see ``prefix.py``) the layers
below the lowest adapted one run once per distinct token sequence; later passes
inject the cached hidden states and run only the top layers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from flipkd.student.attention import LAYOUT_KEY, layout_of, use_packed_attention
from flipkd.student.lora import no_lora_dropout
from flipkd.student.packing import Packed, pack
from flipkd.student.prefix import (
    PrefixCache,
    frozen_depth,
    prefix_states,
    shared_cache,
    with_injected,
)
from flipkd.student.prompt import PromptSpec, label_token_ids, render
from flipkd.student.tap import ATap, TapStop

# padding share above which a no-grad batch is packed: with per-text attention packing
# costs almost nothing, so even a little padding pays; through a block mask it needs more
PACK_INFERENCE_ABOVE = {"per_text": 0.05, "block_mask": 0.2}
INFERENCE_PACK_TOKENS = 512  # row size for those batches (as the trainer's)


@dataclass
class GenOutput:
    """Label-word logits [B, 2] (positive first) and the optional generation loss."""

    label_logits: torch.Tensor
    loss: torch.Tensor | None = None

    @property
    def prob(self) -> torch.Tensor:
        """P(positive label word) from the softmax over the two label words."""
        return self.label_logits.float().softmax(-1)[:, 0]


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left and right padding agree."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Student:
    """Holds the peft model, tokenizer, tap and prompt; computes both forward passes."""

    def __init__(
        self,
        model,
        tokenizer,
        tap: ATap,
        prompt: PromptSpec,
        *,
        max_length: int = 128,
        max_text_length: int = 64,
        use_chat_template: bool = True,
        pack_tokens: int = 0,
        pack_inference_above: float | None = None,
    ) -> None:
        self.model, self.tokenizer, self.tap, self.prompt = model, tokenizer, tap, prompt
        self.max_length, self.max_text_length = max_length, max_text_length
        self.pack_tokens = pack_tokens
        self.use_chat_template = use_chat_template and bool(
            getattr(tokenizer, "chat_template", None)
        )
        self.label_ids = label_token_ids(
            tokenizer, prompt.label_words, leading_space=not self.use_chat_template
        )
        base = model.get_base_model()
        self.body = base.get_decoder()
        self.head = base.get_output_embeddings()
        self.softcap = getattr(base.config, "final_logit_softcapping", None)
        self._no_dropout = no_lora_dropout(model)
        self.prefix: PrefixCache | None = None
        # packed passes attend per text instead of through a block mask (attention.py)
        self.packed_attention = use_packed_attention(base)
        attention = "per_text" if self.packed_attention else "block_mask"
        self.pack_inference_above = (
            PACK_INFERENCE_ABOVE[attention] if pack_inference_above is None
            else pack_inference_above
        )  # fmt: skip

    def enable_prefix_cache(self, model_key: str, max_gb: float) -> int:
        """Share the process-wide frozen-prefix cache of ``model_key``; returns its depth.

        Depth 0 (LoRA or the tap in the bottom layer, dropout in the base, or
        ``max_gb`` 0) leaves the cache off.
        """
        depth = frozen_depth(self.model, self.tap.names) if max_gb > 0 else 0
        self.prefix = shared_cache(model_key, depth, max_gb) if depth else None
        return depth

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- tokenisation -------------------------------------------------------------------
    def _batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
            add_special_tokens=False,
        )
        return {
            k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")
        }

    def clip_text(self, text: str) -> str:
        """Cut a text to ``max_text_length`` tokens so the prompt's end always survives."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_text_length:
            return text
        return self.tokenizer.decode(ids[: self.max_text_length])

    def prompts(self, pairs: list[tuple[str, str]]) -> list[str]:
        """Render the prompts for a list of pairs."""
        return [
            render(
                self.tokenizer,
                self.prompt,
                self.clip_text(a),
                self.clip_text(b),
                self.use_chat_template,
            )
            for a, b in pairs
        ]

    # --- forward passes -----------------------------------------------------------------
    def _pack(self, batch: dict[str, torch.Tensor]) -> Packed | None:
        cap = self.pack_tokens or self._inference_pack_cap(batch["attention_mask"])
        if not cap:
            return None
        return pack(batch["input_ids"], batch["attention_mask"], cap)

    def _inference_pack_cap(self, mask: torch.Tensor) -> int:
        """Row size for packing a no-grad batch that is mostly padding, else 0.

        Inference batches sorted by length pad little and run fastest padded; a batch
        of texts that arrived together (a server's micro-batch) is often half padding,
        and packing it is exact and faster (see ``pack_inference_above``).
        """
        if self.pack_inference_above is None or torch.is_grad_enabled() or mask.shape[0] < 2:
            return 0
        padding = 1.0 - float(mask.sum()) / mask.numel()
        return INFERENCE_PACK_TOKENS if padding > self.pack_inference_above else 0

    def _body(self, batch: dict[str, torch.Tensor], packed: Packed | None = None) -> torch.Tensor:
        if self.prefix is None:
            return self._run_body(batch, packed)
        mask = batch["attention_mask"].bool()
        seqs = [tuple(row[m].tolist()) for row, m in zip(batch["input_ids"], mask, strict=True)]
        flat = torch.cat(self.prefix.lookup(seqs, self._prefix_states))
        if packed is not None:
            hidden = flat.new_zeros(packed.input_ids.numel(), flat.shape[-1])
            hidden[packed.index] = flat
            hidden = hidden.view(*packed.input_ids.shape, flat.shape[-1])
        else:
            hidden = flat.new_zeros(*mask.shape, flat.shape[-1])
            hidden = hidden.masked_scatter(mask.unsqueeze(-1), flat)
        depth = self.prefix.depth
        return with_injected(self.body, depth, hidden, lambda: self._run_body(batch, packed))

    def _prefix_states(self, seqs: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Hidden states entering the lowest adapted layer, one [len, d] tensor per sequence."""
        d = self.model.get_base_model().config.hidden_size
        out = [torch.zeros(0, d, device=self.device) for _ in seqs]
        todo = [i for i, s in enumerate(seqs) if s]
        if not todo:
            return out
        lengths = [len(seqs[i]) for i in todo]
        ids = torch.full((len(todo), max(lengths)), self.tokenizer.pad_token_id or 0)
        mask = torch.zeros_like(ids)
        for row, (i, n) in enumerate(zip(todo, lengths, strict=True)):
            ids[row, :n], mask[row, :n] = torch.tensor(seqs[i]), 1
        batch = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        packed = pack(batch["input_ids"], batch["attention_mask"], self.pack_tokens or 512)
        hidden = prefix_states(self.body, self.prefix.depth, lambda: self._run_body(batch, packed))
        padded = packed.unpack(hidden, batch["attention_mask"])
        for row, (i, n) in enumerate(zip(todo, lengths, strict=True)):
            out[i] = padded[row, :n].clone()
        return out

    def _run_body(
        self, batch: dict[str, torch.Tensor], packed: Packed | None = None
    ) -> torch.Tensor:
        extra = {}
        if packed is not None:  # no mask: transformers builds the per-text mask from positions
            ids, mask, positions = packed.input_ids, None, packed.position_ids
            if self.packed_attention:  # and the layers attend per text (attention.py)
                extra[LAYOUT_KEY] = layout_of(packed.index, *ids.shape, batch["attention_mask"])
        else:
            ids, mask = batch["input_ids"], batch["attention_mask"]
            positions = position_ids_from_mask(mask)
        out = self.body(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **extra
        )
        return out.last_hidden_state

    def rep_forward(self, texts: list[str]) -> torch.Tensor:
        """A-tap representations [n, d] of texts (each encoded alone).

        LoRA dropout is off for this pass (in every layer, not only the tapped
        ones), so a text's representation is the same in train and eval mode.
        """
        batch = self._batch(texts, self.max_text_length)
        mask, packed = batch["attention_mask"], self._pack(batch)
        with (
            self._no_dropout,
            self.tap.capture(stop_after_last=True) as store,
            contextlib.suppress(TapStop),
        ):
            self._body(batch, packed)
        if packed is not None:
            store = {i: packed.unpack(v, mask) for i, v in store.items()}
        return self.tap.representation(store, mask)

    def gen_forward(
        self, pairs: list[tuple[str, str]], labels: torch.Tensor | None = None, vocab: str = "full"
    ) -> GenOutput:
        """Label-word logits at the answer position; L_gen when ``labels`` given.

        ``labels`` is each pair's target probability of the positive label word: 1/0 for
        a gold match/non-match, or a soft value in between (the trainer's
        ``loss.gen_teacher`` mixes in the teacher's probability). L_gen is the
        cross-entropy ``-(t·log p(yes) + (1-t)·log p(no))``, which for 0/1 targets is the
        usual cross-entropy of the gold label word. ``vocab="full"``: ``p`` is the softmax
        over the whole vocabulary; ``"labels"``: over the two label words only (the
        softmax the gen score uses), which skips the large early gradients of learning
        the answer format.
        """
        batch = self._batch(self.prompts(pairs), self.max_length)
        packed = self._pack(batch)
        hidden = self._body(batch, packed)
        if packed is not None:
            h = packed.take_last(hidden)
        else:
            mask = batch["attention_mask"]
            positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
            last = (positions * mask.long()).argmax(1)
            h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        logits = self.head(h).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        pos_id, neg_id = self.label_ids
        label_logits = logits[:, [pos_id, neg_id]]
        loss = None
        if labels is not None:
            target = labels.to(logits.device).float().clamp(0.0, 1.0)
            logp = (label_logits if vocab == "labels" else logits).log_softmax(-1)
            pos, neg = (0, 1) if vocab == "labels" else (pos_id, neg_id)
            loss = -(target * logp[:, pos] + (1.0 - target) * logp[:, neg]).mean()
        return GenOutput(label_logits, loss)
