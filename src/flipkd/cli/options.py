"""Options several commands share: one definition, one behaviour."""

from __future__ import annotations

import typer


def _library_bars(enabled: bool) -> bool:
    """``--no-progress`` also silences the libraries' own bars (transformers' "Loading
    weights", huggingface_hub's), which would otherwise fill a log with carriage returns."""
    if not enabled:
        from transformers.utils import logging as transformers_logging  # hub's bars too

        transformers_logging.disable_progress_bar()
    return enabled


def progress_option(help: str = "Progress bars.") -> bool:
    """The ``--progress/--no-progress`` option (on by default)."""
    return typer.Option(True, "--progress/--no-progress", help=help, callback=_library_bars)
