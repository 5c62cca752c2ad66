"""``flipkd faq eval MODEL --faq FAQ --queries QUERIES``: FAQ retrieval as ``/search`` serves it."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from flipkd.cli.options import progress_option
from flipkd.cli.serve_cmd import PRECISION_DEFAULT, PRECISION_HELP
from flipkd.errors import ConfigError
from flipkd.modes import RERANK_K_DEFAULT, RERANK_WEIGHT_DEFAULT
from flipkd.paths import hash_files, write_json

faq_app = typer.Typer(help="FAQ retrieval: measure a model on an FAQ.", no_args_is_help=True)
log = logging.getLogger(__name__)

TABLE_COLUMNS = ("top1", "top5", "mrr@10", "n", "qps")


@dataclass
class Loaded:
    """A model ready to index: what it is, its encoder, its language, where its files are."""

    kind: str  # "student" (re-ranks by the generated label) or "teacher"
    encoder: Any
    language: str | None
    path: Path


def _is_student(model: str, loader: str) -> bool:
    """Whether ``flipkd serve`` would load MODEL: an export, a student run, or via a loader."""
    path = Path(model)
    if loader != "flipkd" or (path / "flipkd.json").is_file():
        return True
    try:
        kind = json.loads((path / "run.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return False
    return kind != "teacher"


def load_model(model: str, loader: str, precision: str = "float32") -> Loaded:
    """A student through the serve loader (as ``flipkd serve``), else a teacher (whose
    encoder keeps its own precision)."""
    if _is_student(model, loader):
        from flipkd.serve.protocol import load_matcher

        matcher = load_matcher(Path(model), loader, precision=precision)
        spec = getattr(matcher, "spec", None) or {}
        language = (spec.get("prompt") or {}).get("language")
        return Loaded("student", matcher, language, Path(model))
    return load_teacher(model)


def load_teacher(name: str) -> Loaded:
    """A registered teacher, a teacher run or a sentence-transformers directory."""
    from flipkd.teacher.encoder import TeacherEncoder, resolve_source

    encoder = TeacherEncoder(resolve_source(name))
    return Loaded("teacher", encoder, encoder.language, encoder.source.model_dir)


def _evaluate(
    label: str, loaded: Loaded, entries, queries, faq: Path, reranker: Any = None, **opts
) -> list:
    from flipkd.serve.faq_eval import build_index, evaluate_encoder, language_warning
    from flipkd.serve.index import index_keys

    encoder = loaded.encoder
    warning = language_warning(encoder.name, loaded.language, [e.question for e in entries])
    if warning:
        typer.echo(warning, err=True)
    keys = index_keys(faq, encoder.name, loaded.path, getattr(encoder, "precision", "float32"))
    timed = build_index(entries, encoder.encode, keys, opts.pop("index_dir"))
    if reranker is None and loaded.kind == "student":
        reranker = encoder
    rerank_k = opts.pop("rerank_k")
    rerank_k = rerank_k if reranker is not None else 0  # a teacher has no generated label
    return evaluate_encoder(
        label, encoder, timed, queries, rerank_k=rerank_k, reranker=reranker, **opts
    )


def _table(results: list) -> str:
    from flipkd.evaluation.report import metrics_table

    rows = {}
    for r in results:
        qps = r.timings.get("rerank_qps", r.timings.get("search_qps"))
        rows[r.name] = {**r.metrics, "qps": round(qps, 2), "index_s": r.timings["index_s"]}
    return metrics_table(rows, [*TABLE_COLUMNS, "index_s"])


@faq_app.command("eval")
def eval_faq(
    model: str = typer.Argument(
        ..., help="Exported student (flipkd export), student run, or a teacher (name or path)."
    ),
    faq: Path = typer.Option(..., "--faq", help="FAQ file (as for flipkd serve)."),
    queries: Path = typer.Option(
        ..., "--queries", help="CSV, TSV or JSONL with columns query and id (the right entry)."
    ),
    teacher: str | None = typer.Option(
        None, "--teacher", help="Also measure this teacher (registered name or path), zero-shot."
    ),
    rerank_k: int = typer.Option(
        RERANK_K_DEFAULT,
        "--rerank-k",
        min=0,
        help="Re-rank a student's top k by the generated label (0: off); the default is "
        "flipkd serve's.",
    ),
    rerank_weight: float = typer.Option(
        RERANK_WEIGHT_DEFAULT,
        "--rerank-weight",
        min=0.0,
        max=1.0,
        help="As /search's rerank_weight: 1 re-ranks by the generated label alone (the "
        "paper's), below 1 mixes in the cosine (0: the cosine order); the default was chosen "
        "on dev FAQs.",
    ),
    retriever: str | None = typer.Option(
        None,
        "--retriever",
        help="Re-rank the top k of this teacher's index (registered name or path) instead of "
        "the student's own: does the student's label improve on a teacher's retrieval? (A "
        "two-stage system flipkd serve does not offer; the student's index is still measured.)",
    ),
    loader: str = typer.Option("flipkd", help="How to load MODEL: 'flipkd' or 'module:function'."),
    precision: str = typer.Option(
        PRECISION_DEFAULT, help=f"A student's {PRECISION_HELP[0].lower()}{PRECISION_HELP[1:]}"
    ),
    index: Path | None = typer.Option(
        None, help="Directory to save MODEL's FAQ index in and reuse it from (as flipkd serve)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Queries per encode call."),
    sample: int = typer.Option(
        0,
        "--sample",
        min=0,
        help="Evaluate a seeded random sample of this many queries (0: all); re-ranking is slow.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample."),
    candidates: bool = typer.Option(
        False,
        "--candidates",
        help="Keep each query's candidate ids with their cosines (and generated-label "
        "scores when re-ranking) in --out, for error analysis and score fusion.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the results as JSON here."),
    progress: bool = progress_option(),
) -> None:
    """Top-1, top-5 and MRR@10 of FAQ search (and re-ranking) through /search's own code."""
    from flipkd.serve.faq import load_faq
    from flipkd.serve.queries import load_queries

    entries = load_faq(faq)  # fail on bad files before the (slow) model load
    labelled = load_queries(queries, [e.id for e in entries], str(faq))
    n_file = len(labelled)
    if 0 < sample < n_file:  # in file order
        keep = sorted(random.Random(seed).sample(range(n_file), sample))
        labelled = [labelled[i] for i in keep]
    opts = {"batch_size": batch_size, "progress": progress}
    if candidates and out is None:
        raise ConfigError("--candidates needs --out (the candidates are written there)")
    if retriever is not None and not _is_student(model, loader):
        raise ConfigError(f"--retriever needs a student to re-rank with; {model} is a teacher")
    retrieving = load_teacher(retriever) if retriever is not None else None  # fail fast
    loaded = load_model(model, loader, precision)
    own_rerank = 0 if retriever is not None else rerank_k
    results = _evaluate(
        loaded.kind, loaded, entries, labelled, faq, index_dir=index, rerank_k=own_rerank,
        candidates=candidates and retriever is None, rerank_weight=rerank_weight, **opts,
    )  # fmt: skip
    if retrieving is not None:
        results += _evaluate(
            "retriever", retrieving, entries, labelled, faq, reranker=loaded.encoder,
            index_dir=None, rerank_k=rerank_k, candidates=candidates,
            rerank_weight=rerank_weight, **opts,
        )  # fmt: skip
    if teacher is not None:
        label = "teacher" if loaded.kind == "student" else "reference teacher"
        ref = load_teacher(teacher)
        results += _evaluate(label, ref, entries, labelled, faq, index_dir=None, rerank_k=0, **opts)
    sampled = f" (a sample of {n_file}, seed {seed})" if len(labelled) < n_file else ""
    typer.echo(f"FAQ {faq}: {len(entries)} entries, {len(labelled)} queries{sampled}")
    typer.echo(_table(results), nl=False)
    if out is not None:
        args = {"model": model, "teacher": teacher, "retriever": retriever, "seed": seed}
        args |= {"rerank_k": rerank_k, "rerank_weight": rerank_weight}
        write_json(out, _report(args, faq, entries, queries, labelled, n_file, results))
        typer.echo(f"wrote {out}")


def _report(
    args: dict, faq: Path, entries: list, queries: Path, labelled: list, n_file: int, results: list
) -> dict:
    """What ``flipkd faq eval --out`` writes: provenance, the inputs, each system's scores."""
    from flipkd.provenance import provenance

    sampled = len(labelled) < n_file
    return {
        **provenance(),
        "model": args["model"],
        "teacher": args["teacher"],
        "retriever": args["retriever"],
        "faq": {"path": str(faq), "hash": hash_files([faq]), "entries": len(entries)},
        "queries": {
            "path": str(queries),
            "hash": hash_files([queries]),
            "n": len(labelled),
            "in_file": n_file,
            "sample_seed": args["seed"] if sampled else None,
        },
        "rerank_k": args["rerank_k"],
        "rerank_weight": args["rerank_weight"],
        "systems": [r.as_json() for r in results],
    }


def register(app: typer.Typer) -> None:
    """Attach the ``faq`` group."""
    app.add_typer(faq_app, name="faq")
