"""``flipkd data list | show | export``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flipkd.data import Benchmark, PairRecord, list_benchmarks, load_benchmark, load_split
from flipkd.data.splits import sample, thin_positives
from flipkd.data.writers import write_pairs
from flipkd.errors import DataError

data_app = typer.Typer(help="Benchmarks and your own pair files.", no_args_is_help=True)

TEXT_A = typer.Option(None, "--text-a", help="Column of the first text (your data).")
TEXT_B = typer.Option(None, "--text-b", help="Column of the second text (your data).")
LABEL = typer.Option(None, "--label", help="Column of the 0/1 label (your data).")
SCORE = typer.Option(None, "--score", help="Column of a graded score instead of a label.")


@data_app.command("list")
def list_cmd() -> None:
    """Print the benchmark table."""
    typer.echo(f"{'name':10} {'lang':5} {'domain':10} {'task':15} {'splits':15} description")
    for info in list_benchmarks():
        splits = "/".join(info.splits)
        typer.echo(
            f"{info.name:10} {info.language:5} {info.domain:10} {info.task:15} {splits:15} "
            f"{info.description}"
        )


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _target(rec: PairRecord) -> str:
    return str(rec.label) if rec.label is not None else f"{rec.score:g}"


def _echo_table(bench: Benchmark, examples: int) -> None:
    info = bench.info
    typer.echo(f"{info.name} ({info.language}, {info.domain}, {info.task}): {info.description}")
    typer.echo(f"source: {info.source}")
    typer.echo(f"{'split':6} {'pairs':>8} {'positives':>9} {'rejected':>8} {'duplicates':>10}")
    for split, st in bench.stats.items():
        pos = "-" if st.positives is None else st.positives
        typer.echo(f"{split:6} {st.pairs:>8} {pos:>9} {st.rejected:>8} {st.duplicates:>10}")
        extra = {**{f"rejected {k}": v for k, v in st.reasons.items()}, **st.cleaned}
        if st.held_out:
            extra["held out (in dev/test)"] = st.held_out
        if extra:
            typer.echo("       " + ", ".join(f"{k}: {v}" for k, v in sorted(extra.items())))
    for split, records in bench.splits.items():
        for rec in records[:examples]:
            typer.echo(f"  [{split}] {_clip(rec.text_a)} | {_clip(rec.text_b)} -> {_target(rec)}")


@data_app.command("show")
def show(
    name_or_path: str = typer.Argument(..., help="Benchmark name, or a file/directory path."),
    text_a: str | None = TEXT_A,
    text_b: str | None = TEXT_B,
    label: str | None = LABEL,
    score: str | None = SCORE,
    as_json: bool = typer.Option(False, "--json", help="Print the split counts as JSON."),
    examples: int = typer.Option(2, min=0, help="Example pairs per split."),
) -> None:
    """Load a benchmark or your data and print its splits, counts and example pairs."""
    bench = load_benchmark(name_or_path, text_a=text_a, text_b=text_b, label=label, score=score)
    if as_json:
        splits = {s: st.summary() for s, st in bench.stats.items()}
        typer.echo(json.dumps({"name": bench.info.name, "splits": splits}, ensure_ascii=False))
        return
    _echo_table(bench, examples)


@data_app.command("export")
def export(
    name_or_path: str = typer.Argument(..., help="Benchmark name, or a file/directory path."),
    split: str = typer.Option(..., "--split", help="train, dev or test."),
    out: Path = typer.Option(..., "--out", help="Output file: .jsonl or .csv."),
    text_a: str | None = TEXT_A,
    text_b: str | None = TEXT_B,
    label: str | None = LABEL,
    score: str | None = SCORE,
    max_pairs: int | None = typer.Option(
        None, "--max-pairs", min=1, help="Seeded stratified sample."
    ),
    seed: int = typer.Option(0, help="Seed of the sample."),
    positive_share: float | None = typer.Option(
        None,
        "--positive-share",
        help="Keep every negative and a seeded sample of the positives so that they make "
        "this share (0-1) of the pairs, before --max-pairs (data with few positives).",
    ),
) -> None:
    """Write one split as JSONL or CSV (text_a, text_b, label — or score for graded data)."""
    records = load_split(
        name_or_path, split, text_a=text_a, text_b=text_b, label=label, score=score,
        max_pairs=None if positive_share is not None else max_pairs, seed=seed,
    )  # fmt: skip
    if positive_share is not None:
        try:
            thinned = thin_positives(records, positive_share, seed)
        except ValueError as err:
            raise DataError(f"--positive-share: {name_or_path} [{split}]: {err}") from None
        dropped = len(records) - len(thinned)
        typer.echo(f"--positive-share {positive_share}: left out {dropped} positive pairs")
        records = sample(thinned, max_pairs, seed)
    path = write_pairs(records, out)
    typer.echo(f"wrote {len(records)} pairs to {path}")


def register(app: typer.Typer) -> None:
    """Attach the ``data`` group."""
    app.add_typer(data_app, name="data")
