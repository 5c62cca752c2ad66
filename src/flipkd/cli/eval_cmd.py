"""``flipkd eval RUN --benchmark NAME --split test``: score any run kind on a split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from flipkd.cli.teacher_cmd import split_limits
from flipkd.config import DataConfig, load_config
from flipkd.errors import ConfigError
from flipkd.mixing import MIX_WEIGHT_DEFAULT
from flipkd.modes import PAIR_MODES


def _run_data(run: Path) -> DataConfig | None:
    path = run / "config.yaml"
    return load_config(path).data if path.is_file() else None


def eval_cmd(
    run: Path = typer.Argument(..., help="Run directory (teacher or student)."),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="Benchmark name or data path (default: the run's config)."
    ),
    split: str = typer.Option("test", "--split", help="Split to score."),
    metric: str = typer.Option("f1", "--metric", help="What the dev threshold maximises."),
    max_pairs: int | None = typer.Option(
        None,
        "--max-pairs",
        min=1,
        help="Seeded sample of the dev and scored splits (default: as the run's config).",
    ),
    ci: int = typer.Option(0, "--ci", min=0, help="Bootstrap resamples for a 95% interval."),
    mode: str = typer.Option(
        "gen",
        "--mode",
        help="Student runs: gen (label word), rep (A-tap) or mix (the two, as /search re-ranks).",
    ),
    mix_weight: float = typer.Option(
        MIX_WEIGHT_DEFAULT,
        "--mix-weight",
        min=0.0,
        max=1.0,
        help="--mode mix: the label's weight w in w·z(logit gen) + (1−w)·z(rep), z from dev.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Score a run on a split (threshold chosen on dev); write RUN/eval/<bench>-<split>.json."""
    from flipkd.evaluation import benchmark_slug, evaluate_run, metrics_table
    from flipkd.paths import write_json

    for lib in ("sentence_transformers", "transformers"):
        logging.getLogger(lib).setLevel(logging.WARNING)
    if metric not in ("f1", "accuracy"):
        raise ConfigError(f"--metric must be f1 or accuracy, not {metric!r}")
    data = _run_data(run)
    if benchmark is None and data is None:
        raise ConfigError(f"{run}: no config.yaml to take the benchmark from; pass --benchmark")
    name = benchmark or data.benchmark
    limits = split_limits(data, name, max_pairs)
    seed = data.seed if data is not None else 0
    if mode not in PAIR_MODES:
        raise ConfigError(f"--mode must be one of {', '.join(PAIR_MODES)}, not {mode!r}")
    result = evaluate_run(
        run, name, split, metric=metric, max_pairs=limits, seed=seed, ci=ci, mode=mode,
        mix_weight=mix_weight,
    )  # type: ignore[arg-type]  # fmt: skip
    suffix = f"-{mode}" if result["kind"] == "student" else ""
    out = run / "eval" / f"{benchmark_slug(name)}-{split}{suffix}.json"
    write_json(out, result)
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{result['kind']} run {run} on {name}/{split} (threshold from {result['threshold_from']})"
    )
    typer.echo(metrics_table({split: result["metrics"]}))
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Attach the ``eval`` command."""
    app.command("eval")(eval_cmd)
