"""Sequence packing: several texts share a row, so the layers see (almost) no padding.

Each text keeps its own positions (``position_ids`` restart at 0) and, given no
attention mask, transformers builds a block-diagonal causal mask from those
positions, so a text attends only to itself: the result per text equals the padded
forward up to float rounding. A batch of ``total`` tokens gets ``ceil(total / cap)``
rows, filled evenly, which bounds the masked-out attention work between texts
sharing a row; the few slots left at a row's end form their own dummy segment and
are never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Packed:
    """A packed batch and where each text's tokens went (flat ``row * width + col``)."""

    input_ids: torch.Tensor  # [rows, width]
    position_ids: torch.Tensor  # [rows, width]
    index: torch.Tensor  # [real tokens]: flat packed position, in the padded mask's order
    last: torch.Tensor  # [texts]: flat packed position of each text's last token

    def unpack(self, packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[rows, width, d] → the padded layout [texts, tokens, d] (zeros at padding)."""
        flat = packed.reshape(-1, packed.shape[-1])[self.index]
        out = flat.new_zeros(*mask.shape, flat.shape[-1])
        return out.masked_scatter(mask.bool().unsqueeze(-1), flat)

    def take_last(self, packed: torch.Tensor) -> torch.Tensor:
        """[rows, width, d] → each text's last-token vector [texts, d]."""
        return packed.reshape(-1, packed.shape[-1])[self.last]


def _rows(lengths: list[int], cap: int) -> tuple[list[int], list[int], list[int]]:
    """Balanced rows: (row of each text, start in its row, fill of each row).

    ``ceil(total / cap)`` rows; longest text first into the emptiest row, so rows end up
    about equally full and the packed width stays near ``total / rows``.
    """
    rows = max(1, math.ceil(sum(lengths) / max(cap, max(lengths))))
    fill = [0] * rows
    row_of, start_of = [0] * len(lengths), [0] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        r = min(range(rows), key=fill.__getitem__)
        row_of[i], start_of[i] = r, fill[r]
        fill[r] += lengths[i]
    return row_of, start_of, fill


def pack(input_ids: torch.Tensor, mask: torch.Tensor, cap: int) -> Packed | None:
    """Pack a padded batch ([texts, tokens] ids and mask); ``None`` if a text is empty."""
    lengths = mask.sum(1).tolist()
    if not lengths or min(lengths) == 0:
        return None
    row_of, start_of, fill = _rows(lengths, cap)
    width = max(fill)
    offsets = [r * width + s for r, s in zip(row_of, start_of, strict=True)]
    index = torch.cat([torch.arange(o, o + n) for o, n in zip(offsets, lengths, strict=True)])
    positions = torch.zeros(len(fill) * width, dtype=torch.long)
    positions[index] = torch.cat([torch.arange(n) for n in lengths])
    for r, used in enumerate(fill):  # the tail of a row: its own dummy segment
        positions[r * width + used : (r + 1) * width] = torch.arange(width - used)
    device = input_ids.device
    index = index.to(device)
    ids = input_ids.new_zeros(len(fill) * width)
    ids[index] = input_ids[mask.bool()]
    return Packed(
        ids.view(len(fill), width),
        positions.view(len(fill), width).to(device),
        index,
        torch.tensor([o + n - 1 for o, n in zip(offsets, lengths, strict=True)], device=device),
    )
