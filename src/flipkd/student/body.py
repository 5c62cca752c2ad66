"""The decoder body as the student's two passes run it: one interface over packing,
the frozen-prefix cache and the per-text attention layout.

:class:`Body` owns the decoder stack (the base model without its LM head) and decides
how a tokenised batch goes through it:

* **packing** (``packing.py``): texts share rows of about ``pack_tokens`` tokens
  instead of each being padded to the longest, the same result up to float rounding
  with far fewer tokens through the layers. With ``always_pack`` (the trainer) every
  pass packs; otherwise only a no-grad batch whose padding share is above
  ``pack_inference_above`` does (5% when packed rows attend per text, 20% through a
  block mask): a server's micro-batch of unrelated queries is often half padding, and
  even length-sorted batches of short texts pad 8-16%.
* **per-text attention** (``attention.py``): a model on SDPA attends within each text
  of a packed row instead of through a block-diagonal mask.
* **the frozen-prefix cache** (``prefix.py``): the layers below the lowest adapted one
  run once per distinct token sequence; later passes inject the cached hidden states
  and run only the top layers.

The passes ask for what they need, never for a layout: :meth:`Body.last_states` (the
hidden state at each sequence's last token) and :meth:`Body.tapped` (what the A-tap
stored, in the batch's padded layout).
"""

from __future__ import annotations

import contextlib

import torch

from flipkd.student.attention import LAYOUT_KEY, layout_of, use_packed_attention
from flipkd.student.packing import Packed, pack
from flipkd.student.prefix import PrefixCache, prefix_precision, prefix_states, with_injected
from flipkd.student.tap import ATap, TapStop

Batch = dict[str, torch.Tensor]  # input_ids and attention_mask, [texts, tokens]

# padding share above which a no-grad batch is packed: with per-text attention packing
# costs almost nothing, so even a little padding pays; through a block mask it needs more
PACK_INFERENCE_ABOVE = {"per_text": 0.05, "block_mask": 0.2}
FALLBACK_PACK_TOKENS = 512  # rows for no-grad packs and the prefix cache when pack_tokens is 0


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left and right padding agree."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Body:
    """The decoder stack of a causal LM, run packed or padded, with or without the cache.

    Args:
        base: The causal LM (peft's base model); its decoder is run, its head never.
        pad_id: The token id that fills the rows of the prefix cache's own batches.
        pack_tokens: Row size of packed passes (``student.pack_tokens``); 0 turns
            ``always_pack`` off, and no-grad packs then use rows of 512.
        pack_inference_above: Padding share above which a no-grad batch packs
            (``None``: never); by default from ``PACK_INFERENCE_ABOVE``.
    """

    def __init__(
        self,
        base: torch.nn.Module,
        *,
        pad_id: int = 0,
        pack_tokens: int = FALLBACK_PACK_TOKENS,
        pack_inference_above: float | None = None,
    ) -> None:
        self.decoder = base.get_decoder()
        self.hidden_size = base.config.hidden_size
        self.pad_id = pad_id
        self.pack_tokens = pack_tokens
        self.always_pack = False  # the trainer packs every pass
        self.prefix: PrefixCache | None = None
        # packed passes attend per text instead of through a block mask (attention.py)
        self.packed_attention = use_packed_attention(base)
        attention = "per_text" if self.packed_attention else "block_mask"
        self.pack_inference_above = (
            PACK_INFERENCE_ABOVE[attention] if pack_inference_above is None
            else pack_inference_above
        )  # fmt: skip

    # --- what the passes ask for --------------------------------------------------------
    def last_states(self, batch: Batch) -> torch.Tensor:
        """The last layer's hidden state at each sequence's last real token [texts, d]."""
        packed = self.layout(batch)
        hidden = self.run(batch, packed)
        if packed is not None:
            return packed.take_last(hidden)
        mask = batch["attention_mask"]
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask.long()).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def tapped(self, batch: Batch, tap: ATap) -> dict[int, torch.Tensor]:
        """Run until ``tap`` has seen its last module; its store [texts, tokens, r] per module,
        in the batch's padded layout (the layers above the tap never run)."""
        packed = self.layout(batch)
        with tap.capture(stop_after_last=True) as store, contextlib.suppress(TapStop):
            self.run(batch, packed)
        if packed is None:
            return store
        return {i: packed.unpack(v, batch["attention_mask"]) for i, v in store.items()}

    # --- packing policy -----------------------------------------------------------------
    def layout(self, batch: Batch) -> Packed | None:
        """The packed rows this batch goes through, or ``None``: padded as it is."""
        rows = (self.pack_tokens if self.always_pack else 0) or self.inference_rows(
            batch["attention_mask"]
        )
        if not rows:
            return None
        return pack(batch["input_ids"], batch["attention_mask"], rows)

    def inference_rows(self, mask: torch.Tensor) -> int:
        """Row size for packing a no-grad batch that is mostly padding, else 0.

        Inference batches sorted by length pad little and run fastest padded; a batch
        of texts that arrived together (a server's micro-batch) is often half padding,
        and packing it is exact and faster (see ``pack_inference_above``).
        """
        if self.pack_inference_above is None or torch.is_grad_enabled() or mask.shape[0] < 2:
            return 0
        padding = 1.0 - float(mask.sum()) / mask.numel()
        return self._row_tokens if padding > self.pack_inference_above else 0

    @property
    def _row_tokens(self) -> int:
        return self.pack_tokens or FALLBACK_PACK_TOKENS

    # --- running the layers -------------------------------------------------------------
    def run(self, batch: Batch, packed: Packed | None = None) -> torch.Tensor:
        """The last layer's hidden states, in ``packed``'s rows or the batch's padded layout;
        through the frozen-prefix cache when one is set."""
        if self.prefix is None:
            return self._forward(batch, packed)
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
        return with_injected(
            self.decoder, self.prefix.depth, hidden, lambda: self._forward(batch, packed)
        )

    def _prefix_states(self, seqs: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Hidden states entering the lowest adapted layer, one [len, d] tensor per sequence."""
        device = self.device
        out = [torch.zeros(0, self.hidden_size, device=device) for _ in seqs]
        todo = [i for i, s in enumerate(seqs) if s]
        if not todo:
            return out
        lengths = [len(seqs[i]) for i in todo]
        ids = torch.full((len(todo), max(lengths)), self.pad_id)
        mask = torch.zeros_like(ids)
        for row, (i, n) in enumerate(zip(todo, lengths, strict=True)):
            ids[row, :n], mask[row, :n] = torch.tensor(seqs[i]), 1
        batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        packed = pack(batch["input_ids"], batch["attention_mask"], self._row_tokens)
        with prefix_precision(self.prefix.dtype, device):
            hidden = prefix_states(
                self.decoder, self.prefix.depth, lambda: self._forward(batch, packed)
            ).to(next(self.decoder.parameters()).dtype)  # bf16 autocast's states, as if not
        padded = packed.unpack(hidden, batch["attention_mask"])
        for row, (i, n) in enumerate(zip(todo, lengths, strict=True)):
            out[i] = padded[row, :n].clone()
        return out

    def _forward(self, batch: Batch, packed: Packed | None = None) -> torch.Tensor:
        extra = {}
        if packed is not None:  # no mask: transformers builds the per-text mask from positions
            ids, mask, positions = packed.input_ids, None, packed.position_ids
            if self.packed_attention:  # and the layers attend per text (attention.py)
                extra[LAYOUT_KEY] = layout_of(packed.index, *ids.shape, batch["attention_mask"])
        else:
            ids, mask = batch["input_ids"], batch["attention_mask"]
            positions = position_ids_from_mask(mask)
        out = self.decoder(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, **extra
        )
        return out.last_hidden_state

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device
