"""Where a module sits in a decoder: its layer index and leaf name, read from its name.

transformers names a decoder's blocks ``...layers.<i>....`` (Llama, Qwen2, Gemma3, and
their peft wrappers, ``base_model.model.model.layers.<i>....``); a bare decoder body
(``AutoModel``) names them from the root, ``layers.<i>....``. Both forms are read here,
once, for the student, the export, the prefix cache and the benchmarks.
"""

from __future__ import annotations

import re

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_LAYER_LEAF = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:.*\.)?([A-Za-z_0-9]+)$")


def layer_index(name: str) -> int | None:
    """The decoder-layer index in a module's qualified name, or ``None`` outside the layers.

    ``"model.layers.3.mlp.down_proj"`` and the layer itself, ``"model.layers.3"``, give 3.
    """
    match = _LAYER.search(name + ".")
    return int(match.group(1)) if match else None


def layer_and_leaf(name: str) -> tuple[int, str] | None:
    """``(layer index, leaf name)`` of a module inside a decoder layer, else ``None``.

    ``"model.layers.3.mlp.down_proj"`` gives ``(3, "down_proj")``; the layer itself
    (``"model.layers.3"``) and modules outside the layers give ``None``.
    """
    match = _LAYER_LEAF.search(name)
    return (int(match.group(1)), match.group(2)) if match else None
