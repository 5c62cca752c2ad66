"""Serving: FAQ retrieval and pair matching over HTTP, with a web page.

The public names load lazily, so ``flipkd.serve.faq`` or ``flipkd.serve.index``
can be used without importing FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "flipkd.serve.app",
    "MicroBatcher": "flipkd.serve.batcher",
    "FaqEntry": "flipkd.serve.faq",
    "load_faq": "flipkd.serve.faq",
    "FaqIndex": "flipkd.serve.index",
    "open_or_build": "flipkd.serve.index",
    "Matcher": "flipkd.serve.protocol",
    "load_matcher": "flipkd.serve.protocol",
    "Limits": "flipkd.serve.schemas",
    "background_server": "flipkd.serve.server",
    "run_server": "flipkd.serve.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'flipkd.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
