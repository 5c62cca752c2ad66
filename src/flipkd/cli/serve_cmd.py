"""``flipkd serve DIR --faq FAQ``: FAQ retrieval and pair matching over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from flipkd.modes import RERANK_K_DEFAULT, RERANK_WEIGHT_DEFAULT

# the student's weights at inference (flipkd.student.precision); float32 gives the scores
# the export's thresholds were chosen on
PRECISION_DEFAULT = "float32"
PRECISION_HELP = (
    "Weights at inference: float32, bfloat16, or auto (bf16 where the CPU/GPU has bf16 "
    "instructions)."
)

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_app(
    model_dir: Path,
    faq: Path,
    *,
    loader: str = "flipkd",
    index_dir: Path | None = None,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    queue: int = 256,
    request_timeout_s: float = 60.0,
    precision: str = "float32",
    rerank_weight: float = RERANK_WEIGHT_DEFAULT,
    rerank_k: int | None = None,
) -> FastAPI:
    """Validate the FAQ, load the model, build (or reuse) the index, make the app."""
    from flipkd.serve.app import create_app
    from flipkd.serve.faq import load_faq
    from flipkd.serve.index import index_keys, open_or_build
    from flipkd.serve.protocol import load_matcher
    from flipkd.serve.schemas import Limits

    entries = load_faq(faq)  # fail on a bad FAQ before the (slow) model load
    matcher = load_matcher(model_dir, loader, precision=precision)
    keys = index_keys(faq, matcher.name, model_dir, getattr(matcher, "precision", precision))
    index = open_or_build(index_dir, entries, matcher.encode, keys)
    limits = Limits() if rerank_k is None else Limits(rerank_candidates=rerank_k)
    return create_app(
        matcher,
        index,
        limits=limits,
        token=token,
        allowed_hosts=allowed_hosts,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=queue,
        request_timeout_s=request_timeout_s,
        rerank_weight=rerank_weight,
    )


def serve(
    model_dir: Path = typer.Argument(..., help="Exported model directory (flipkd export)."),
    faq: Path = typer.Option(
        ...,
        "--faq",
        help="FAQ file: CSV, TSV or JSONL with id and question columns, answer optional.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
    token: str | None = typer.Option(
        None, envvar="FLIPKD_SERVE_TOKEN", help="Require 'Authorization: Bearer TOKEN'."
    ),
    max_batch: int = typer.Option(32, min=1, help="Most texts or pairs per model call."),
    max_wait_ms: float = typer.Option(5.0, min=0.0, help="How long a batch waits to fill."),
    queue: int = typer.Option(256, min=1, help="Most waiting items; beyond it 503 + Retry-After."),
    request_timeout: float = typer.Option(
        60.0,
        min=0.0,
        help="Seconds a request may wait for the model before 504 (0: no limit); /healthz "
        "says 503 'stalled' while one model call runs longer.",
    ),
    index: Path | None = typer.Option(
        None, help="Directory to save the FAQ index in and reuse it from (rebuilt on change)."
    ),
    loader: str = typer.Option("flipkd", help="How to load DIR: 'flipkd' or 'module:function'."),
    precision: str = typer.Option(PRECISION_DEFAULT, help=PRECISION_HELP),
    rerank_weight: float = typer.Option(
        RERANK_WEIGHT_DEFAULT,
        "--rerank-weight",
        min=0.0,
        max=1.0,
        help="/search's rerank_weight for requests that leave it out: 1 re-ranks by the "
        "generated label alone (the paper's), below 1 mixes in the cosine (0: the cosine "
        "order); the default was chosen on dev FAQs.",
    ),
    rerank_k: int = typer.Option(
        RERANK_K_DEFAULT,
        "--rerank-k",
        min=1,
        help="Cosine candidates a re-ranking /search request rescores with the generated label "
        "(its cost grows with k).",
    ),
) -> None:
    """Serve FAQ search (/search), pair matching (/match), /healthz, /metrics and a web page."""
    from flipkd.serve.server import allowed_hosts_for, is_loopback, run_server

    if not is_loopback(host) and not token:
        typer.echo(f"warning: serving on {host} without a token", err=True)
    app = build_app(
        model_dir,
        faq,
        loader=loader,
        index_dir=index,
        token=token,
        allowed_hosts=allowed_hosts_for(host),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue=queue,
        request_timeout_s=request_timeout,
        precision=precision,
        rerank_weight=rerank_weight,
        rerank_k=rerank_k,
    )
    typer.echo(f"flipkd: serving on http://{host}:{port} (Ctrl-C drains and stops)")
    run_server(app, host=host, port=port)


def register(app: typer.Typer) -> None:
    """Attach the ``serve`` command."""
    app.command("serve")(serve)
