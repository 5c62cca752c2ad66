"""User-facing errors.

Anything the user can fix (a bad file, a bad field, a missing model) raises
:class:`FlipkdError`. The CLI turns it into one line on stderr and exit code 2,
never a traceback. Library users catch it like any exception.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class FlipkdError(Exception):
    """An error caused by input or setup, with a one-line message for the user."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class DataError(FlipkdError):
    """A data file or record is invalid (names the file and line, or the column)."""


class ConfigError(FlipkdError):
    """A config file or override is invalid (names the field)."""


class ModelError(FlipkdError):
    """A model name, path or cached conversion cannot be used."""


class CacheError(FlipkdError):
    """A cache exists but does not belong to the current inputs."""


def run_script(main: Callable[[], int | None]) -> NoReturn:
    """Run a script's ``main`` and exit like the CLI: a FlipkdError is one line, exit 2."""
    try:
        code = main()
    except FlipkdError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(code or 0)
