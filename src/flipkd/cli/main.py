"""Entry point: builds the typer app from the command modules and maps errors to exit 2."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from typer.exceptions import TyperException

from flipkd.errors import FlipkdError

app = typer.Typer(
    name="flipkd",
    help="Flipped knowledge distillation: teach a decoder LLM text matching from a small encoder.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, each exposing ``register(app)``. A table, not a chain of imports.
COMMAND_MODULES = [
    "flipkd.cli.models_cmd",
    "flipkd.cli.data_cmd",
    "flipkd.cli.serve_cmd",
    "flipkd.cli.faq_cmd",
    "flipkd.cli.teacher_cmd",
    "flipkd.cli.eval_cmd",
    "flipkd.cli.train_cmd",
    "flipkd.cli.reproduce_cmd",
    "flipkd.cli.export_cmd",
    "flipkd.cli.bench_cmd",
]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _one_line(err) -> str:
    """A click error (bad option value, missing argument, ...) as one line, with where to look."""
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _register_all()
    try:
        app(standalone_mode=False)
    except FlipkdError as err:
        typer.echo(f"error: {' '.join(str(err).splitlines())}", err=True)
        sys.exit(err.exit_code)
    except OSError as err:  # the file system said no (permission, full disk, a file in the way)
        if err.filename is None or logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        typer.echo(
            f"error: {err.filename}: {err.strerror or err} (use -v for a traceback)", err=True
        )
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except TyperException as err:  # a usage error (bad option value, ...): exit 2, one line
        if err.format_message().strip():  # empty: the help was printed (no arguments given)
            typer.echo(f"error: {_one_line(err)}", err=True)
        sys.exit(err.exit_code)
