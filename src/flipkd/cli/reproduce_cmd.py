"""``flipkd reproduce`` (the ablation ladder) and ``flipkd demo`` (its demo profile)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import typer

from flipkd.cli.options import progress_option

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("results")
DEFAULT_WORK = Path("runs") / "reproduce"


def report_dir(
    benchmark: str,
    profile: str,
    work_dir: Path,
    *,
    rows: list[str] | None,
    only_seeds: list[int] | None,
    overrides: list[str] | None,
) -> Path:
    """Where ``--out`` goes when not given: ``results/<bench>/<profile>`` for a whole ladder.

    A part of one (some rows, some seeds) or a ladder with overrides is not the profile's
    table, so by default it is written beside its runs (``<work>/report``) instead of over
    the committed ``results/`` table.
    """
    from flipkd.reproduce import PROFILES

    known = PROFILES.get(profile)
    whole_rows = not rows or (known is not None and set(rows) >= set(known.rows))
    if whole_rows and not only_seeds and not overrides:
        return DEFAULT_OUT / benchmark / profile
    return work_dir / "report"


def _quiet() -> None:
    for name in ("sentence_transformers", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.WARNING)


def reproduce_cmd(
    benchmark: str = typer.Option("mqp", "--benchmark", help="Benchmark name (flipkd data list)."),
    profile: str = typer.Option("demo", "--profile", help="tiny | demo | cpu | gpu | full."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per row."),
    rows: list[str] = typer.Option(None, "--row", help="Only these rows (repeatable)."),
    only_seeds: list[int] = typer.Option(
        None,
        "--seed",
        help="Only these seeds (repeatable): one part of a ladder, run beside others.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Table, results.json, plots (default results/<bench>/<profile>; for some rows,"
        " some seeds or overrides: <work>/report).",
    ),
    work: Path = typer.Option(
        None, "--work", help="Runs and checkpoints (default runs/reproduce/<bench>/<profile>)."
    ),
    overrides: list[str] = typer.Argument(None, help="Dotted config overrides for every row."),
    progress: bool = progress_option(),
    finished_only: bool = typer.Option(
        False, "--finished-only", help="Run nothing: report the runs finished so far."
    ),
    import_records: list[Path] = typer.Option(
        None,
        "--import-records",
        help="Add the finished runs of a records file (--export-records) to the work folder "
        "first (repeatable): seeds run elsewhere join this ladder's report.",
    ),
    export_records: Path = typer.Option(
        None,
        "--export-records",
        help="Write the reported runs' records (per-pair scores, teacher records; no weights) "
        "to this .json.gz file.",
    ),
) -> None:
    """Run the ladder (resumable: finished runs are kept by config hash), write table + plots."""
    from flipkd.reproduce import run_ladder
    from flipkd.reproduce.report import write_report

    _quiet()
    work_dir = work or DEFAULT_WORK / benchmark / profile
    out_dir = out or report_dir(
        benchmark, profile, work_dir, rows=rows, only_seeds=only_seeds, overrides=overrides
    )
    if export_records:
        from flipkd.reproduce.records import check_export_path

        check_export_path(export_records)  # before hours of runs, not after
    start = time.perf_counter()
    imported = _import(import_records or [], work_dir)
    results = run_ladder(
        benchmark, profile, seeds=seeds, out_dir=work_dir, overrides=overrides or [],
        rows=rows or None, progress=progress, finished_only=finished_only,
        only_seeds=only_seeds or None,
    )  # fmt: skip
    _unused_imports(imported, results)
    if export_records:
        from flipkd.reproduce.records import export_records as export

        counts = export(results, work_dir, export_records)
        typer.echo(
            f"records: {counts['runs']} runs, {counts['teachers']} teachers -> {export_records}"
        )
    command = ["flipkd", *sys.argv[1:]]
    doc = write_report(
        results, benchmark=benchmark, profile=profile, out_dir=out_dir, seeds=seeds,
        overrides=overrides or [], command=command, work_dir=work_dir, started=start,
    )  # fmt: skip
    typer.echo((out_dir / "table.md").read_text())
    typer.echo(f"wall time {time.perf_counter() - start:.0f}s; results: {out_dir / 'results.json'}")
    for plot in doc["plots"]:
        typer.echo(f"plot: {out_dir / plot}")


def _import(paths: list[Path], work_dir: Path) -> list[str]:
    """Import records files into ``work_dir``; the run names they hold."""
    if not paths:
        return []
    from flipkd.reproduce.records import import_records

    done = import_records(paths, work_dir)
    typer.echo(
        f"records: {len(done.runs)} runs and {len(done.teachers)} teacher records imported into "
        f"{work_dir}; {len(done.present)} already there, kept as they were"
    )
    return done.runs + [n for n in done.present if not n.startswith("teachers/")]


def _unused_imports(imported: list[str], results: list[dict]) -> None:
    """Say which imported runs no row of this ladder read (another recipe, row or seed)."""
    from flipkd.reproduce.records import run_name

    unused = sorted(set(imported) - {run_name(r) for r in results})
    if unused:
        log.warning(
            "records: %d imported runs are not in this report (another recipe, or rows or "
            "seeds not asked for): %s", len(unused), ", ".join(unused),
        )  # fmt: skip


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo writes."),
    progress: bool = progress_option(),
) -> None:
    """The demo profile from scratch: teacher -> sft -> fip on an MQP subset, then the table."""
    reproduce_cmd(
        benchmark="mqp",
        profile="demo",
        seeds=1,
        rows=None,
        out=out,
        work=out / "work",
        overrides=[],
        progress=progress,
        finished_only=False,
        only_seeds=None,
        import_records=None,
        export_records=None,
    )


def sweep_cmd(
    spec: Path = typer.Argument(..., help="Sweep spec (YAML): profile, rows, seeds, variants."),
    out: Path = typer.Option(
        None, "--out", help="table.md + results.json (default results/dev/<bench>/<name>)."
    ),
    work: Path = typer.Option(
        None, "--work", help="Runs and checkpoints (default runs/sweep/<bench>/<name>)."
    ),
    finished_only: bool = typer.Option(
        False,
        "--finished-only",
        help="Train nothing: write the table from the runs that have finished and list the "
        "others with how far they got (a sweep still under way, or one split across machines).",
    ),
    progress: bool = progress_option(),
) -> None:
    """Choose defaults on dev: train every variant (resumable), score dev only, write the table."""
    from flipkd.reproduce.sweep import load_spec, run_sweep
    from flipkd.reproduce.sweep_report import write_sweep_report

    _quiet()
    parsed = load_spec(spec)
    out_dir = out or DEFAULT_OUT / "dev" / parsed.benchmark / parsed.name
    work_dir = work or Path("runs") / "sweep" / parsed.benchmark / parsed.name
    start = time.perf_counter()
    records = run_sweep(parsed, work_dir, progress=progress, finished_only=finished_only)
    table = write_sweep_report(records, parsed, out_dir, ["flipkd", *sys.argv[1:]])
    typer.echo(table.read_text())
    typer.echo(f"wall time {time.perf_counter() - start:.0f}s; results: {out_dir / 'results.json'}")


def register(app: typer.Typer) -> None:
    """Attach ``reproduce``, ``demo`` and ``sweep``."""
    app.command("reproduce")(reproduce_cmd)
    app.command("demo")(demo_cmd)
    app.command("sweep")(sweep_cmd)
