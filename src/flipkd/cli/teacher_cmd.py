"""``flipkd teacher train | cache``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from flipkd.cli.options import progress_option
from flipkd.config import DataConfig, FlipkdConfig, load_config, save_resolved
from flipkd.config.loader import run_directory
from flipkd.errors import ConfigError

teacher_app = typer.Typer(help="The small bi-encoder teacher.", no_args_is_help=True)
log = logging.getLogger(__name__)

SPLIT_LIMITS = {"train": "max_train_pairs", "dev": "max_dev_pairs", "test": "max_test_pairs"}


def _quiet_libraries() -> None:
    for name in ("sentence_transformers", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _split_names(benchmark: str, cols: dict[str, str | None]) -> tuple[str, ...]:
    from flipkd.data.loading import resolve

    return resolve(benchmark, **cols).info.splits


def load_splits(
    benchmark: str,
    cols: dict[str, str | None],
    limits: dict[str, int | None],
    seed: int,
) -> dict[str, list]:
    """Every split of a benchmark, each cut to a seeded sample of ``limits[split]`` pairs."""
    from flipkd.data import load_split

    return {
        s: load_split(benchmark, s, **cols, max_pairs=limits.get(s), seed=seed)
        for s in _split_names(benchmark, cols)
    }


def split_limits(
    data: DataConfig | None, benchmark: str, max_pairs: int | None
) -> dict[str, int | None]:
    """Pairs per split: ``max_pairs`` for every split when given; else the run config's
    ``data.max_*_pairs`` when ``benchmark`` is the run's own; else all pairs (None)."""
    if max_pairs is not None or data is None or benchmark != data.benchmark:
        return dict.fromkeys(SPLIT_LIMITS, max_pairs)
    return {s: getattr(data, key) for s, key in SPLIT_LIMITS.items()}


def _columns(cfg: FlipkdConfig) -> dict[str, str | None]:
    return {"text_a": cfg.data.text_a, "text_b": cfg.data.text_b, "label": cfg.data.label}


@teacher_app.command("train")
def train(
    config: Path = typer.Argument(..., help="YAML config (sections data and teacher are used)."),
    overrides: list[str] = typer.Argument(None, help="Overrides like teacher.epochs=2."),
    progress: bool = progress_option(),
) -> None:
    """Fine-tune the teacher (or record it zero-shot), cache its embeddings, write the report."""
    cfg = load_config(config, overrides or [])
    run_dir = run_directory(cfg)
    from flipkd.models import resolve_teacher

    t = cfg.teacher
    resolved = resolve_teacher(t.model)  # a misspelt name fails before the data loads
    from flipkd.teacher import cache_splits, report_run, train_teacher

    _quiet_libraries()
    limits = split_limits(cfg.data, cfg.data.benchmark, None)
    if t.max_train_pairs != "data":  # the teacher's own training sample
        limits["train"] = t.max_train_pairs
    splits = load_splits(cfg.data.benchmark, _columns(cfg), limits, cfg.data.seed)
    for needed in ("train", "dev"):
        if needed not in splits:
            raise ConfigError(f"data.benchmark {cfg.data.benchmark!r} has no {needed} split")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir)
    run = train_teacher(
        splits["train"],
        splits["dev"],
        t,
        model_path=resolved.path,
        out_dir=run_dir,
        query_prefix=resolved.query_prefix,
        model_id=resolved.name,
        progress=progress,
    )
    cache = cache_splits(
        run_dir, cfg.data.benchmark, splits, batch_size=t.encode_batch_size, progress=progress
    )
    report = report_run(run_dir, cache, splits["dev"], title=f"teacher {cfg.name}")
    dev = run.metrics["dev"]
    shown = ", ".join(f"{k} {dev[k]:.4f}" for k in ("f1", "accuracy", "roc_auc") if k in dev)
    typer.echo(f"teacher run {run_dir} ({'fine-tuned' if run.finetuned else 'zero-shot'})")
    typer.echo(f"dev (threshold on dev): {shown}")
    cal = cache.calibration.describe()
    typer.echo(f"cache: {cache.path} ({len(cache)} texts, calibration {cal})")
    typer.echo(f"report: {report}")


@teacher_app.command("cache")
def cache(
    run: Path = typer.Argument(..., help="Teacher run directory."),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="Benchmark name or data path (default: the run's config)."
    ),
    max_pairs: int | None = typer.Option(
        None,
        "--max-pairs",
        min=1,
        help="Seeded sample of each split (default: as the run's config).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Cache directory (RUN/cache/<name>)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per batch."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when up to date."),
    progress: bool = progress_option("Progress bar."),
) -> None:
    """Embed every text of every split of a benchmark once; calibrate on its train split."""
    from flipkd.teacher import cache_splits

    _quiet_libraries()
    cfg = _run_config(run)
    name = benchmark or cfg.data.benchmark
    limits = split_limits(cfg.data, name, max_pairs)
    cols = _columns(cfg) if name == cfg.data.benchmark else {}
    splits = load_splits(name, cols, limits, cfg.data.seed)
    built = cache_splits(
        run, name, splits, out_dir=out, batch_size=batch_size, progress=progress, force=force
    )
    m = built.manifest
    typer.echo(
        f"cache {built.path}: {len(built)} texts, dim {built.dim}, teacher {m['model_id']}, "
        f"{m.get('encoded', len(built))} encoded at {m['texts_per_second']} texts/s when built, "
        f"calibration {built.calibration.describe()}"
    )


def _run_config(run: Path) -> FlipkdConfig:
    """The run's resolved config, or defaults when it has none (a run made in code)."""
    path = Path(run) / "config.yaml"
    if not (Path(run) / "run.json").is_file():
        raise ConfigError(f"{run}: not a run directory (no run.json)")
    return load_config(path if path.is_file() else None)


def register(app: typer.Typer) -> None:
    """Attach the ``teacher`` group."""
    app.add_typer(teacher_app, name="teacher")
