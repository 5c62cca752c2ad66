"""Which precision a run trains in, and the frozen-prefix cache is filled in.

``train.mixed_precision`` ``auto`` is bf16 on a CUDA GPU that supports it and float32
(``no``) anywhere else: on a CPU, bf16 is opt-in (``bf16``), so that the committed
``cpu``-profile numbers stay reproducible and exact-equality checks stay exact. It pays
only where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX:
:func:`native_bf16_cpu`); the ``demo`` profile opts in there
(``results/dev/mqp/demo-precision/``). ``train.prefix_dtype`` ``auto`` follows the
resolved precision: a bf16 run fills its frozen-prefix cache in bf16 too.
"""

from __future__ import annotations

import torch

from flipkd.student.precision import native_bf16, native_bf16_cpu

__all__ = [
    "cpu_bf16_pays", "native_bf16_cpu", "precision_warning", "prefix_dtype", "resolve_precision",
    "switch_precision",
]  # fmt: skip


def cpu_bf16_pays() -> bool:
    """True on a CPU-only machine whose CPU multiplies bf16 natively."""
    return not torch.cuda.is_available() and native_bf16_cpu()


def resolve_precision(choice: str) -> str:
    """accelerate's ``mixed_precision`` for ``train.mixed_precision`` on this machine."""
    if choice == "auto":
        return "bf16" if native_bf16("cuda") else "no"
    return choice


def precision_warning(mixed: str) -> str | None:
    """A line to log when ``mixed`` will be slow here: bf16 on a CPU without bf16 instructions."""
    if mixed == "bf16" and not torch.cuda.is_available() and not native_bf16_cpu():
        return (
            "train.mixed_precision bf16 on a CPU without bf16 instructions (AVX-512 BF16, AMX): "
            "torch emulates it, usually slower than float32; set train.mixed_precision no"
        )
    return None


def prefix_dtype(train) -> str:
    """The frozen-prefix cache's precision for a ``TrainConfig``."""
    if train.prefix_dtype != "auto":
        return train.prefix_dtype
    return "bfloat16" if resolve_precision(train.mixed_precision) == "bf16" else "float32"


def switch_precision(mixed: str) -> None:
    """Let one single-process run follow another of a different mixed precision (a sweep
    or ladder whose variants set ``train.mixed_precision``): accelerate keeps one
    process-wide state and refuses a second precision, so that state is cleared first.
    A distributed launch keeps its state; all its processes run the same configuration."""
    from accelerate.state import AcceleratorState, PartialState

    state = AcceleratorState._shared_state
    if not state or state.get("_mixed_precision") == mixed:
        return
    if PartialState().num_processes == 1:
        AcceleratorState._reset_state()
