"""``flipkd bench``: training and encode speed against the matmul peak and the ST + peft peer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from flipkd.errors import ConfigError


def _parts(only: str) -> tuple[str, ...]:
    from flipkd.bench import PARTS

    parts = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"--only {only!r}: choose from {', '.join(PARTS)} (comma-separated)")
    return parts


def bench_cmd(
    students: str = typer.Option(
        "smollm2-135m,qwen2.5-0.5b", "--students", help="Comma-separated student models."
    ),
    benchmark: str = typer.Option(
        None, "--benchmark", help="mqp | atec | a path (default: mqp for smollm2, atec for qwen)."
    ),
    steps: int = typer.Option(8, "--steps", min=1, help="Timed training steps per configuration."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed warm-up steps first."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads for every part."),
    only: str = typer.Option("peak,train,peer,encode", "--only", help="Parts to run."),
    out: Path = typer.Option(Path("results/perf"), "--out", help="bench.json + README.md here."),
    train_out: Path = typer.Option(
        None, "--train-out", help="Also write the training figures here (e.g. results/train)."
    ),
    pack_tokens: int = typer.Option(
        None,
        "--pack-tokens",
        min=0,
        help="The trainer's packing row size, as student.pack_tokens=N (0 = off; "
        "default: the config's, 512).",
    ),
    overrides: list[str] = typer.Argument(
        None, help="Dotted config overrides, e.g. train.batch_size=16."
    ),
) -> None:
    """Measure flipkd's training and encode speed on this machine, in one run."""
    from flipkd.bench import (
        BenchSettings,
        finalize,
        run_bench,
        summary_lines,
        write_perf,
        write_train,
    )

    names = [s.strip() for s in students.split(",") if s.strip()]
    settings = BenchSettings(
        names, benchmark, steps, warmup, threads, _parts(only), list(overrides or []), pack_tokens
    )
    typer.echo(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = finalize(run_bench(settings, ["flipkd", *sys.argv[1:]], say=typer.echo))
    write_perf(results, out)
    if train_out is not None:
        write_train(results, train_out)
    for line in summary_lines(results):
        typer.echo(line)
    typer.echo(f"results: {out / 'bench.json'}")


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` command."""
    app.command("bench")(bench_cmd)
