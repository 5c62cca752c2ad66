"""``flipkd export RUN --out DIR``: a trained student as adapter, embedder, card, merged model."""

from __future__ import annotations

from pathlib import Path

import typer

from flipkd.errors import FlipkdError


def export_cmd(
    run: Path = typer.Argument(..., help="Student run directory (made by the student trainer)."),
    out: Path = typer.Option(..., "--out", help="Export directory (new, or an earlier export)."),
    merged: bool = typer.Option(
        False, "--merged/--no-merged", help="Also write merged/: base with B·A folded in."
    ),
    eval_json: list[Path] = typer.Option(
        [], "--eval", help="Eval JSON whose dev threshold to use (repeatable; wins over RUN/eval)."
    ),
    hash_weights: bool = typer.Option(
        True, "--hash-weights/--no-hash-weights", help="Record the base weights' SHA-256."
    ),
) -> None:
    """Export a student run: adapter/, tokenizer/, embedder/, flipkd.json, README.md."""
    if out.exists() and not out.is_dir():
        raise FlipkdError("is a file, not a directory; choose a new or empty --out", where=str(out))
    if not run.is_dir():
        raise FlipkdError("not a run directory (give the student run's folder)", where=str(run))
    from flipkd.export import export_run

    spec = export_run(run, out, merged=merged, eval_paths=eval_json, hash_weights=hash_weights)
    typer.echo(f"exported {run} ({spec['adapter']['from_run']}) to {out}")
    for mode, value in spec["thresholds"].items():
        typer.echo(f"  threshold[{mode}] = {value:.4f}  from {spec['threshold_sources'][mode]}")
    typer.echo(f"load it with flipkd.load({str(out)!r}) or `flipkd serve {out} --faq FAQ`")


def register(app: typer.Typer) -> None:
    """Attach the ``export`` command."""
    app.command("export")(export_cmd)
