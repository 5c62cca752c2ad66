"""The student: a decoder LLM with LoRA, an A-tap, and a label-word head.

:class:`Student` is the one ``nn.Module`` the training engine wraps (DDP, FSDP, ...); its
only submodule is the peft model, registered as ``peft`` (state-dict keys ``peft.…``).
Two forward passes exist, and ``forward`` runs the ones a training step needs:

* ``gen_forward(pairs)``: the prompt with both texts; only the hidden state at
  the answer position goes through the LM head (never full-vocabulary logits
  for every position). Returns the two label-word logits and, given gold
  labels, L_gen = cross-entropy of the gold label word over the vocabulary.
* ``rep_forward(texts)``: the text alone, cut after the last tapped layer,
  returns L2-normalised A-tap representations [n, d].

How a batch goes through the decoder layers (packed rows of ``pack_tokens`` tokens,
the frozen-prefix cache, per-text attention) is :class:`~flipkd.student.body.Body`'s
business: the passes ask it for the last-token states or the tap's store.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flipkd.student.body import FALLBACK_PACK_TOKENS, Body
from flipkd.student.lora import no_lora_dropout
from flipkd.student.prefix import PrefixCache, frozen_depth, shared_cache
from flipkd.student.prompt import PromptSpec, label_prefix, label_token_ids, render
from flipkd.student.tap import ATap


class Student(nn.Module):
    """The peft model (submodule ``peft``), tokenizer, tap and prompt; both forward passes.

    Args:
        model: The peft model (LoRA on the base causal LM).
        tokenizer: Its tokenizer.
        tap: The A-tap on ``model``'s LoRA layers.
        prompt: Prompt template and label words.
        max_length: Token limit of a rendered prompt.
        max_text_length: Token limit of one text (prompts clip each text to it).
        use_chat_template: Render prompts through the tokenizer's chat template, if any.
        pack_tokens: Row size of packed passes (``student.pack_tokens``); see
            :attr:`pack_tokens` for turning packing on for every pass.
        pack_inference_above: Padding share above which a no-grad batch packs
            (``None``: the default of the model's attention, see ``body.py``).
    """

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
        pack_tokens: int = FALLBACK_PACK_TOKENS,
        pack_inference_above: float | None = None,
    ) -> None:
        super().__init__()
        self.peft = model
        self.tokenizer, self.tap, self.prompt = tokenizer, tap, prompt
        self.max_length, self.max_text_length = max_length, max_text_length
        self.use_chat_template = use_chat_template and bool(
            getattr(tokenizer, "chat_template", None)
        )
        self.label_ids = label_token_ids(
            tokenizer, prompt.label_words, label_prefix(prompt, self.use_chat_template)
        )
        base = model.get_base_model()
        self.softcap = getattr(base.config, "final_logit_softcapping", None)
        self.gen_vocab = "full"  # L_gen's softmax in ``forward`` (the trainer's loss.gen_vocab)
        self._no_dropout = no_lora_dropout(model)
        self.body = Body(
            base,
            pad_id=tokenizer.pad_token_id or 0,
            pack_tokens=pack_tokens,
            pack_inference_above=pack_inference_above,
        )

    # --- the two passes -----------------------------------------------------------------
    def gen_forward(
        self,
        pairs: list[tuple[str, str]],
        labels: torch.Tensor | None = None,
        vocab: str = "full",
        weights: torch.Tensor | None = None,
    ) -> GenOutput:
        """Label-word logits at the answer position; L_gen when ``labels`` given.

        ``labels`` is each pair's target probability of the positive label word: 1/0 for
        a gold match/non-match, or a soft value in between (the trainer's
        ``loss.gen_teacher`` mixes in the teacher's probability). L_gen is the
        cross-entropy ``-(t·log p(yes) + (1-t)·log p(no))``, which for 0/1 targets is the
        usual cross-entropy of the gold label word. ``vocab="full"``: ``p`` is the softmax
        over the whole vocabulary; ``"labels"``: over the two label words only (the
        softmax the gen score uses), which skips the large early gradients of learning
        the answer format. ``weights`` (one a pair) make L_gen the mean of the weighted
        cross-entropies (the trainer's ``loss.gen_balance``).
        """
        batch = self._batch(self.prompts(pairs), self.max_length)
        logits = self.head(self.body.last_states(batch)).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        pos_id, neg_id = self.label_ids
        label_logits = logits[:, [pos_id, neg_id]]
        loss = None
        if labels is not None:
            target = labels.to(logits.device).float().clamp(0.0, 1.0)
            logp = (label_logits if vocab == "labels" else logits).log_softmax(-1)
            pos, neg = (0, 1) if vocab == "labels" else (pos_id, neg_id)
            loss = -(target * logp[:, pos] + (1.0 - target) * logp[:, neg])
            if weights is not None:
                loss = loss * weights.to(loss.device).float()
            loss = loss.mean()
        return GenOutput(label_logits, loss)

    def rep_forward(self, texts: list[str]) -> torch.Tensor:
        """A-tap representations [n, d] of texts (each encoded alone).

        LoRA dropout is off for this pass (in every layer, not only the tapped
        ones), so a text's representation is the same in train and eval mode.
        """
        batch = self._batch(texts, self.max_text_length)
        with self._no_dropout:
            store = self.body.tapped(batch, self.tap)
        return self.tap.representation(store, batch["attention_mask"])

    def forward(
        self,
        pairs: list[tuple[str, str]],
        labels: torch.Tensor | None,
        texts: list[str],
        need_gen: bool,
        need_rep: bool,
        weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One training step's passes: the label pass on ``pairs`` (L_gen against ``labels``,
        softmax ``gen_vocab``, pairs weighted by ``weights``) and the A-tap pass on
        ``texts``, as the step asks."""
        out = {}
        if need_gen:
            gen = self.gen_forward(pairs, labels, vocab=self.gen_vocab, weights=weights)
            out["gen_loss"], out["label_logits"] = gen.loss, gen.label_logits
        if need_rep:
            out["reps"] = self.rep_forward(texts)
        return out

    # --- the model, packing and the prefix cache ----------------------------------------
    @property
    def model(self) -> nn.Module:
        """The peft model (the registered submodule ``peft``)."""
        return self.peft

    @property
    def head(self) -> nn.Module:
        """The LM head: the base model's output embeddings."""
        return self.peft.get_base_model().get_output_embeddings()

    @property
    def device(self) -> torch.device:
        return next(self.peft.parameters()).device

    @property
    def pack_tokens(self) -> int:
        """Row size of packed passes (``student.pack_tokens``).

        Setting it packs *every* pass into rows of that many tokens (the trainer, with the
        configured value; exact, and far less padding); 0 pads again, packing only no-grad
        batches that are mostly padding (in rows of 512).
        """
        return self.body.pack_tokens

    @pack_tokens.setter
    def pack_tokens(self, tokens: int) -> None:
        self.body.pack_tokens, self.body.always_pack = tokens, tokens > 0

    @property
    def prefix(self) -> PrefixCache | None:
        """The frozen-prefix cache the body runs through (``None``: off)."""
        return self.body.prefix

    @prefix.setter
    def prefix(self, cache: PrefixCache | None) -> None:
        self.body.prefix = cache

    def enable_prefix_cache(self, model_key: str, max_gb: float, dtype: str = "float32") -> int:
        """Share the process-wide frozen-prefix cache of ``model_key``; returns its depth.

        Depth 0 (LoRA or the tap in the bottom layer, dropout in the base, or
        ``max_gb`` 0) leaves the cache off. ``dtype`` is the precision the frozen layers
        run in to fill it (``prefix.py``).
        """
        depth = frozen_depth(self.peft, self.tap.names) if max_gb > 0 else 0
        self.prefix = shared_cache(model_key, depth, max_gb, dtype) if depth else None
        return depth

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


@dataclass
class GenOutput:
    """Label-word logits [B, 2] (positive first) and the optional generation loss."""

    label_logits: torch.Tensor
    loss: torch.Tensor | None = None

    @property
    def prob(self) -> torch.Tensor:
        """P(positive label word) from the softmax over the two label words."""
        return self.label_logits.float().softmax(-1)[:, 0]
