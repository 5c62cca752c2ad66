"""flipkd: flipped knowledge distillation for text matching."""

from __future__ import annotations

__version__ = "0.1.0"

from flipkd.errors import FlipkdError  # noqa: E402

__all__ = ["FlipkdError", "__version__"]
