"""flipkd: flipped knowledge distillation for text matching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from flipkd.errors import FlipkdError  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

    from flipkd.export.load import FlipkdMatcher

__all__ = ["FlipkdError", "__version__", "load"]


def load(path: str | Path, **kwargs: Any) -> FlipkdMatcher:
    """Load an exported student (or a student run directory) as a ``FlipkdMatcher``.

    Imports torch and transformers on first call only; the keyword arguments are
    those of :func:`flipkd.export.load_matcher` (``merge``, ``verify_base``, ``threads``,
    ``precision``).
    """
    from flipkd.export import load_matcher

    return load_matcher(path, **kwargs)
