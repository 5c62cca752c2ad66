"""``flipkd models list | check | convert``."""

from __future__ import annotations

import typer

# flipkd.models imports torch (~2 s): imported inside the commands, so that every other
# command (and its error messages) starts without it.
models_app = typer.Typer(help="Registered students and teachers.", no_args_is_help=True)


@models_app.command("list")
def list_models() -> None:
    """Print the model table."""
    from flipkd.models import REGISTRY, is_converted

    typer.echo(f"{'name':24} {'role':8} {'lang':13} {'cached':7} {'license':11} source")
    for spec in REGISTRY.values():
        cached = "yes" if is_converted(spec.name) else "no"
        typer.echo(
            f"{spec.name:24} {spec.role:8} {spec.language:13} {cached:7} {spec.license:11} "
            f"{spec.source}"
        )


@models_app.command("check")
def check(names: list[str] = typer.Argument(None, help="Models to check (default: all).")) -> None:
    """Load each model (converting it once if needed) and run one forward pass."""
    from flipkd.models import REGISTRY
    from flipkd.models.check import check_model

    for name in names or list(REGISTRY):
        res = check_model(name)
        typer.echo(f"ok  {res.name:24} {res.role:8} {res.seconds:6.1f}s  {res.detail}")


@models_app.command("convert")
def convert_cmd(
    name: str, force: bool = typer.Option(False, help="Convert again even if cached.")
) -> None:
    """Convert a registered model into the cache."""
    from flipkd.models import convert

    typer.echo(str(convert(name, force=force)))


def register(app: typer.Typer) -> None:
    """Attach the ``models`` group."""
    app.add_typer(models_app, name="models")
