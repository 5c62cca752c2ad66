"""The precision a loaded student runs inference in (serving, FAQ evaluation).

Inference casts the whole eval-mode student once (``model.to(dtype)``): no master weights
to keep, and no per-call weight casts (bf16 *autocast* re-casts every frozen weight at
every linear layer, a third of a re-ranking pass's time on this CPU). ``auto`` is bf16 where
the hardware multiplies it natively — a CUDA GPU that supports it, or a CPU with AVX-512 BF16
or AMX tiles — and float32 elsewhere (an emulated bf16 is slower than float32).
"""

from __future__ import annotations

import torch

from flipkd.errors import ConfigError

INFERENCE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
INFERENCE_CHOICES = ("auto", *INFERENCE_DTYPES)


def native_bf16_cpu() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX-512 BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 natively."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return native_bf16_cpu()


def resolve_inference_precision(choice: str, device: torch.device | str = "cpu") -> str:
    """``float32`` or ``bfloat16`` for ``choice`` (``auto`` asks the hardware)."""
    if choice not in INFERENCE_CHOICES:
        raise ConfigError(
            f"precision must be one of {', '.join(INFERENCE_CHOICES)}, not {choice!r}"
        )
    if choice != "auto":
        return choice
    return "bfloat16" if native_bf16(device) else "float32"


def cast_for_inference(student, choice: str) -> str:
    """Cast an eval-mode student's every weight to ``choice``'s dtype; returns the name."""
    name = resolve_inference_precision(choice, student.device)
    student.model.to(INFERENCE_DTYPES[name])
    return name
