"""What the serve layer needs from a model, and how a model directory becomes one.

The server never touches torch or peft. It talks to a :class:`Matcher`: something
that embeds texts and scores pairs. ``flipkd.load(DIR)`` (the export module)
returns one; tests and users can plug in their own with ``--loader module:function``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from flipkd.errors import ModelError
from flipkd.modes import MODES, SCORE_RANGE


@runtime_checkable
class Matcher(Protocol):
    """A text matcher the server can call from one worker thread.

    Attributes:
        name: A short model name, shown in logs and stored with the FAQ index.
        threshold: Decision threshold per mode, on that mode's scale (``flipkd.modes``),
            e.g. ``{"gen": 0.5, "rep": 0.4}``; a ``"mix"`` entry says the matcher also scores
            ``mode="mix"`` (served by ``/match``).
    """

    name: str
    threshold: dict[str, float]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return ``[n, d]`` float32 L2-normalised representations (the A-tap)."""
        ...

    def score_pairs(self, pairs: list[tuple[str, str]], mode: str = "gen") -> np.ndarray:
        """Return ``[n]`` match scores.

        ``mode="gen"``: the generated label's probability, in [0, 1]; ``mode="rep"``: the
        cosine of the two representations, in [-1, 1].
        """
        ...


def _load_flipkd(path: Path, precision: str = "float32") -> Matcher:
    import flipkd

    load = getattr(flipkd, "load", None)
    if load is None:
        raise ModelError("flipkd.load is not available in this installation", where=str(path))
    return load(path, precision=precision)


# Named loaders; anything else must be a "module:function" spec.
MATCHER_LOADERS: dict[str, Callable[..., Matcher]] = {"flipkd": _load_flipkd}


def resolve_loader(spec: str) -> Callable[[Path], Matcher]:
    """Return the loader named ``spec``, or import ``module:function``.

    Raises:
        ModelError: the name is unknown or the import fails.
    """
    if spec in MATCHER_LOADERS:
        return MATCHER_LOADERS[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(sorted(MATCHER_LOADERS))
        raise ModelError(f"unknown loader {spec!r}; use one of {known} or 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ModelError(f"cannot import loader {spec!r}: {err}") from err


def check_matcher(matcher: object) -> Matcher:
    """Check that ``matcher`` has the protocol's members and usable thresholds."""
    if not isinstance(matcher, Matcher):
        raise ModelError(f"{type(matcher).__name__} lacks name/threshold/encode/score_pairs")
    threshold = matcher.threshold
    if not isinstance(threshold, Mapping):
        raise ModelError(f"matcher {matcher.name!r}: threshold must be a dict per mode")
    # gen and rep are required; mix only where the model has one (its dev scales)
    for mode in (*MODES, *(["mix"] if "mix" in threshold else [])):
        value, (low, high) = threshold.get(mode), SCORE_RANGE[mode]
        if not isinstance(value, int | float) or not low <= float(value) <= high:
            raise ModelError(
                f"matcher {matcher.name!r}: threshold[{mode!r}] must be in [{low:g}, {high:g}]"
            )
    return matcher


def load_matcher(path: Path, loader: str = "flipkd", precision: str = "float32") -> Matcher:
    """Load the matcher in ``path`` with the loader named ``loader`` and check it.

    ``precision`` (``float32``, ``bfloat16`` or ``auto``) goes to flipkd's own loader; a
    ``module:function`` loader is called with the path alone and keeps its own precision
    (asking it for another one is refused).
    """
    if loader in MATCHER_LOADERS:
        return check_matcher(MATCHER_LOADERS[loader](Path(path), precision=precision))
    if precision != "float32":
        raise ModelError(f"--precision {precision} is for flipkd's own loader, not {loader!r}")
    return check_matcher(resolve_loader(loader)(Path(path)))
