"""Per-text attention for packed rows, without the masked-out work.

A packed row holds several texts (``packing.py``); transformers gives it a block-diagonal
causal mask, and SDPA then computes every query against every key of the row and throws
most of it away: with rows of 512 tokens and texts of 25-120, 75-95% of the attention work.
This owner of transformers' attention interface registers ``flipkd_packed``: when a packed
pass hands the layers its layout (the ``flipkd_layout`` keyword, which transformers passes
down to every attention call, and which gradient checkpointing replays with the layer),
each layer's queries, keys and values are moved from the rows into one right-padded
sequence per text, attended with plain causal SDPA (no mask: padding comes after a text's
own tokens, so causality already hides it), and moved back. The result equals the masked
path up to float rounding (tested, values and gradients, with and without checkpointing).

Outside a packed pass, or for a layer it cannot serve exactly (a sliding window shorter
than a text, soft-capping, a position bias, non-causal attention), it is transformers' own
SDPA with the mask, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "flipkd_packed"


@dataclass(frozen=True)
class TextsLayout:
    """Where each real token sits in the packed rows and in the per-text padded layout."""

    rows: int
    width: int
    texts: int
    length: int  # the longest text
    src: torch.Tensor  # flat packed position of each real token, text by text
    dst: torch.Tensor  # flat padded position (text * length + i) of the same tokens

    def to_texts(self, t: torch.Tensor) -> torch.Tensor:
        """[rows, heads, width, d] -> [texts, heads, length, d] (zeros after each text)."""
        heads, d = t.shape[1], t.shape[3]
        real = t.transpose(1, 2).reshape(self.rows * self.width, heads, d).index_select(0, self.src)
        out = real.new_zeros(self.texts * self.length, heads, d).index_copy(0, self.dst, real)
        return out.view(self.texts, self.length, heads, d).transpose(1, 2)

    def to_rows(self, out: torch.Tensor) -> torch.Tensor:
        """Attention output [texts, length, heads, d] -> the rows' [rows, width, heads, d]."""
        heads, d = out.shape[2], out.shape[3]
        real = out.reshape(self.texts * self.length, heads, d).index_select(0, self.dst)
        rows = real.new_zeros(self.rows * self.width, heads, d).index_copy(0, self.src, real)
        return rows.view(self.rows, self.width, heads, d)

    def serves(self, module: torch.nn.Module, query: torch.Tensor, kwargs: dict) -> bool:
        """Whether this layer's call is the packed pass's and per-text attention is exact."""
        window = getattr(module, "sliding_window", None)
        return (
            query.shape[0] == self.rows
            and query.shape[2] == self.width
            and getattr(module, "is_causal", True)
            and kwargs.get("softcap") is None
            and kwargs.get("position_bias") is None
            and (window is None or window >= self.length)
        )


LAYOUT_KEY = "flipkd_layout"  # the keyword a packed pass passes to the model's forward


def packed_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers attention function: per-text SDPA inside a packed pass, else plain SDPA."""
    layout = kwargs.pop(LAYOUT_KEY, None)
    if layout is None or not layout.serves(module, query, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    q, k, v = (layout.to_texts(t) for t in (query, key, value))
    out, _ = sdpa_attention_forward(module, q, k, v, None, **{**kwargs, "is_causal": True})
    return layout.to_rows(out), None


AttentionInterface.register(NAME, packed_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)


def layout_of(src: torch.Tensor, rows: int, width: int, mask: torch.Tensor) -> TextsLayout:
    """The layout of a packed batch (``Packed.index`` as ``src``) of the padded ``mask``."""
    real = mask.bool()
    longest = int(real.sum(1).max()) if real.numel() else 0
    within = real.long().cumsum(1) - 1  # a token's place in its own text (any padding side)
    text = torch.arange(mask.shape[0], device=mask.device).unsqueeze(1)
    dst = (text * longest + within)[real]  # row-major, like ``Packed.index``
    return TextsLayout(rows, width, mask.shape[0], longest, src, dst)


def use_packed_attention(model: torch.nn.Module) -> bool:
    """Switch a model that uses SDPA to ``flipkd_packed``; True when it now does."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    try:
        model.set_attn_implementation(NAME)
    except (ValueError, ImportError, AttributeError):
        return False
    return getattr(model.config, "_attn_implementation", None) == NAME
