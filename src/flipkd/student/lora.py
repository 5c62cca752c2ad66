"""LoRA adapters through peft. Only the student package talks to peft.

A is the encoder (in → r), B the decoder (r → out). Only LoRA parameters train.

On CPU the adapters' input dropout is :class:`GapDropout`: the same i.i.d. Bernoulli(p)
masks as ``torch.nn.Dropout``, drawn as the gaps between dropped elements (about ``p·n``
random numbers instead of ``n``), which made a LoRA layer's dropout about 4x cheaper
(``results/perf/speedups.md``). Other devices keep torch's fused dropout.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from flipkd.errors import ConfigError


def apply_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str] | str,
    layers: list[int] | None = None,
    seed: int | None = None,
) -> PeftModel:
    """Wrap ``model`` with fresh LoRA adapters; everything else is frozen.

    ``layers`` restricts LoRA to those decoder layers (negative = from the top); the
    backward pass then stops at the lowest adapted layer, which is much cheaper.
    ``seed`` draws the random A matrices from that seed without touching the global
    random state, so a run's initial adapter depends on its seed alone and not on what
    ran before it in the process (``None``: the global random state, as before).
    """
    n_layers = model.config.num_hidden_layers
    chosen = None
    if layers is not None:
        chosen = sorted({i + n_layers if i < 0 else i for i in layers})
        if not all(0 <= i < n_layers for i in chosen):
            raise ConfigError(f"student.lora.layers {layers}: the model has {n_layers} layers")
    if chosen is not None and isinstance(target_modules, str):
        target_modules = decoder_linear_names(model)  # peft needs names with layers_to_transform
    config = LoraConfig(
        layers_to_transform=chosen,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            with quiet_peft():
                peft_model = get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(f"student.lora.target_modules: {err}") from None
    return use_gap_dropout(peft_model)


@contextlib.contextmanager
def quiet_peft():
    """Silence the FutureWarning peft triggers by reading transformers' deprecated
    ``is_gradient_checkpointing`` while it wraps a model (noise in every training log)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        yield


def decoder_linear_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of every linear layer inside the decoder layers (what "all-linear" means)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and ".layers." in name
        }
    )


def load_adapter(model: torch.nn.Module, adapter_dir: str | Path, trainable: bool) -> PeftModel:
    """Attach a saved peft adapter directory to a base model."""
    with quiet_peft():
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    return use_gap_dropout(model)


def drop_positions(n: int, p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sorted flat indices in ``[0, n)``, each included independently with probability ``p``.

    The gaps between successive successes of a Bernoulli(p) process are i.i.d.
    Geometric(p) on {1, 2, ...}, so cumulative sums of geometric draws place the dropped
    elements exactly as ``n`` Bernoulli draws would, from the default generator (which
    gradient checkpointing saves and restores), using about ``p·n`` draws.
    """
    if n <= 0 or p <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    mean = n * p
    chunk = int(mean + 6 * math.sqrt(mean * (1 - p)) + 16)  # almost always one draw
    ends, last = [], torch.tensor(-1.0, dtype=torch.float64, device=device)
    while True:
        gaps = torch.empty(chunk, dtype=torch.float64, device=device).geometric_(p)
        pos = gaps.cumsum_(0).add_(last)  # positions follow the previous chunk's last one
        ends.append(pos)
        last = pos[-1]
        if last.item() >= n:
            break
        chunk = max(16, int((n - last.item()) * p * 1.2) + 16)
    pos = torch.cat(ends) if len(ends) > 1 else ends[0]
    keep = int(torch.searchsorted(pos, float(n)))  # first position outside [0, n)
    return pos[:keep].long()


class _DropAt(torch.autograd.Function):
    """``x * scale`` with zeros at flat ``positions``; the gradient is masked the same way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, positions: torch.Tensor, scale: float) -> torch.Tensor:
        out = x.mul(scale).contiguous()
        out.view(-1).index_fill_(0, positions, 0.0)
        ctx.save_for_backward(positions)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (positions,) = ctx.saved_tensors
        out = grad.mul(ctx.scale).contiguous()
        out.view(-1).index_fill_(0, positions, 0.0)
        return out, None, None


class GapDropout(torch.nn.Module):
    """Dropout with the distribution of ``torch.nn.Dropout(p)``, its mask drawn as gaps.

    Each element is zeroed independently with probability ``p`` and the rest are scaled
    by ``1 / (1 - p)``, as in torch; only the random stream differs. torch's CPU dropout
    draws one random number per element (a 1,700 x 1,536 input took ~14 ms, as long as
    the LoRA layer's base matmul); this draws one per *dropped* element (~3.6 ms).
    Backward saves the dropped indices (8 bytes x p per element) instead of a float mask.
    Off the CPU it is torch's fused dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, training=True)
        positions = drop_positions(x.numel(), self.p, x.device)
        return _DropAt.apply(x, positions, 1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_gap_dropout(model: PeftModel) -> PeftModel:
    """Replace every LoRA input ``nn.Dropout`` of ``model`` by :class:`GapDropout` (same p)."""
    for layer in lora_layers(model).values():
        for name, module in list(layer.lora_dropout.items()):
            if isinstance(module, torch.nn.Dropout) and module.p > 0:
                gap = GapDropout(module.p)
                gap.train(module.training)
                layer.lora_dropout[name] = gap
    return model


def lora_layers(model: torch.nn.Module) -> dict[str, LoraLayer]:
    """Every LoRA-wrapped module by its qualified name."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, LoraLayer)}


def lora_a(layer: LoraLayer, adapter: str = "default") -> torch.nn.Linear:
    """The A matrix (in → r) of ``adapter`` in one LoRA layer, as peft holds it: a linear
    module whose ``weight`` is ``[r, in]``."""
    return layer.lora_A[adapter]


def lora_matrix_role(param_name: str) -> str | None:
    """``"A"`` or ``"B"`` when a parameter (by the name ``named_parameters`` gives it, under
    any wrapper's prefix) belongs to a LoRA A or B matrix, else ``None``."""
    parts = param_name.split(".")
    return "A" if "lora_A" in parts else "B" if "lora_B" in parts else None


def lora_a_weights(
    layers: dict[str, LoraLayer], adapter: str = "default"
) -> dict[str, torch.Tensor]:
    """The A weights of these LoRA layers (by qualified name), detached on the CPU and keyed
    as in a saved peft adapter (``<name>.lora_A.weight``)."""
    return {
        f"{name}.lora_A.weight": lora_a(layer, adapter).weight.detach().cpu().contiguous()
        for name, layer in layers.items()
    }


def freeze_b_at_zero(layers: dict[str, LoraLayer], adapter: str = "default") -> None:
    """Zero these layers' B matrices and stop their training: the layers then add nothing
    to the model's output, while their A matrices stay trainable (a tap-only adapter)."""
    for layer in layers.values():
        b = layer.lora_B[adapter].weight
        with torch.no_grad():
            b.zero_()
        b.requires_grad_(False)


def lora_matrices(model: torch.nn.Module) -> set[torch.nn.Module]:
    """The modules that hold LoRA's A and B matrices (every adapter), for telling them apart
    from the base model's own modules."""
    return {
        matrix
        for layer in lora_layers(model).values()
        for matrices in (layer.lora_A, layer.lora_B)
        for matrix in matrices.values()
    }


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def expected_lora_parameters(model: torch.nn.Module, rank: int) -> int:
    """The formula: r·(in + out) summed over every LoRA-wrapped linear layer."""
    total = 0
    for layer in lora_layers(model).values():
        base = layer.get_base_layer()
        total += rank * (base.in_features + base.out_features)
    return total


def set_merged(model: PeftModel, merged: bool) -> None:
    """Merge B·A into the base weights (for fast generation) or undo it."""
    if merged:
        model.merge_adapter()
    else:
        model.unmerge_adapter()


def merged_base(model: PeftModel) -> torch.nn.Module:
    """A plain transformers model with the adapter folded in (the model is consumed)."""
    return model.merge_and_unload()


def _lora_dropouts(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for layer in lora_layers(model).values() for m in layer.lora_dropout.values()]


class _training_flags:  # noqa: N801 - used as a context manager
    """Set each module's ``training`` flag for a block, then restore the previous flags."""

    def __init__(self, modules: list[torch.nn.Module], flags: list[bool]) -> None:
        self.modules, self.flags = modules, flags

    def __enter__(self) -> None:
        self.saved = [m.training for m in self.modules]
        for m, flag in zip(self.modules, self.flags, strict=True):
            m.training = flag

    def __exit__(self, *exc) -> None:
        for m, flag in zip(self.modules, self.saved, strict=True):
            m.training = flag


class no_lora_dropout:  # noqa: N801 - used as a context manager
    """Switch every LoRA dropout module to eval for a block, then restore it."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.modules = _lora_dropouts(model)

    def __enter__(self) -> None:
        self._block = _training_flags(self.modules, [False] * len(self.modules))
        self._block.__enter__()

    def __exit__(self, *exc) -> None:
        self._block.__exit__(*exc)


def dropout_replay_context(model: torch.nn.Module) -> Callable[[], tuple[Any, Any]]:
    """``context_fn`` for ``torch.utils.checkpoint``: recompute with the dropout flags of the
    forward.

    Gradient checkpointing recomputes a layer during backward, after the block that turned
    LoRA dropout off (the representation pass, :class:`no_lora_dropout`) has ended; without
    this, the recompute would drop where the forward did not.
    """
    modules = _lora_dropouts(model)

    def context_fn() -> tuple[Any, Any]:
        flags = [m.training for m in modules]  # as they are when the layer runs forward
        return contextlib.nullcontext(), _training_flags(modules, flags)

    return context_fn
