"""The machine's fp32 matmul peak: large square matmuls, best of a few repeats."""

from __future__ import annotations

import time

import torch


def matmul_gflops(size: int, repeats: int = 3, seed: int = 0) -> float:
    """Best GFLOP/s of ``repeats`` timed ``[size, size] @ [size, size]`` fp32 matmuls."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up (allocations, thread pool)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def matmul_peak(sizes: tuple[int, ...] = (2048, 4096), repeats: int = 3) -> dict:
    """GFLOP/s per size and the best of them, at the current ``torch`` thread count."""
    per_size = {str(n): round(matmul_gflops(n, repeats), 2) for n in sizes}
    return {
        "threads": torch.get_num_threads(),
        "gflops_by_size": per_size,
        "peak_gflops": max(per_size.values()),
        "repeats": repeats,
        "dtype": "float32",
    }
