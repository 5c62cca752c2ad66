"""Entry point: builds the typer app from the command modules and maps errors to exit 2."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

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


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _register_all()
    try:
        app(standalone_mode=False)
    except FlipkdError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as err:  # click usage errors carry their own exit code
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        raise
