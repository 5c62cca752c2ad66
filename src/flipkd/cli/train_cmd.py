"""``flipkd train CONFIG [overrides...] [--resume]``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from flipkd.cli.options import progress_option
from flipkd.config import load_config
from flipkd.config.loader import run_directory


def train_cmd(
    config: Path = typer.Argument(..., help="YAML config."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. train.steps=100."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    progress: bool = progress_option(),
) -> None:
    """Train the teacher (once) and the student's LoRA adapter with flipped distillation."""
    from flipkd.recipes.pipeline import train

    for name in ("sentence_transformers", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg = load_config(config, overrides or [])
    run_dir = run_directory(cfg)
    result = train(cfg, run_dir, resume=resume, progress=progress)
    typer.echo(f"trained {result.steps} steps in {result.seconds:.0f}s")
    typer.echo(f"adapter: {result.adapter_dir}")
    if result.best_adapter_dir:
        typer.echo(f"best adapter (dev {cfg.train.select_metric}): {result.best_adapter_dir}")
    last = result.last_log
    terms = ", ".join(
        f"{k} {last[k]:.4f}" for k in ("loss", "gen", "contrast", "dist") if k in last
    )
    typer.echo(f"last step: {terms}")


def register(app: typer.Typer) -> None:
    """Attach the ``train`` command."""
    app.command("train")(train_cmd)
