"""The ``main`` of a benchmark script that measures once and writes ``OUT.json`` + ``OUT.md``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from flipkd.errors import ConfigError
from flipkd.paths import write_report
from flipkd.provenance import provenance


def report_main(
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], dict],
    markdown: Callable[[dict], str],
) -> Callable[[list[str] | None], None]:
    """``main(argv)``: parse, run, write the report beside ``--out`` and print its markdown."""

    def main(argv: list[str] | None = None) -> None:
        args = parse_args(argv)
        report = run(args)
        text = markdown(report)
        write_report(args.out, report, text)
        print(text)

    return main


def faq_rerank_parser(doc: str, max_queries: int) -> argparse.ArgumentParser:
    """The arguments every FAQ re-ranking benchmark takes: the student, how ``flipkd serve``
    loads it, the FAQ and labelled queries, k, how many queries, and ``--out``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("model", help="exported student or student run")
    parser.add_argument("--loader", default="flipkd", help="as flipkd serve: 'module:function'")
    parser.add_argument("--faq", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--rerank-k", type=int, default=10)
    parser.add_argument(
        "--max-queries", type=int, default=max_queries, help="first N queries (0: all)"
    )
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    return parser


def student_runs_parser(doc: str, pairs_help: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark over trained student runs against their teacher: the run
    directories, ``--teacher``, ``--pairs`` and ``--out``; :func:`check_student_runs` checks
    them once parsed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="student run directories")
    parser.add_argument("--teacher", type=Path, required=True, help="the teacher run")
    parser.add_argument("--pairs", type=int, default=1000, help=pairs_help)
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    return parser


def check_student_runs(args: argparse.Namespace) -> None:
    """``--pairs`` of at least 2 and every run (and the teacher) a flipkd run directory, or
    one line naming what is wrong."""
    if args.pairs < 2:
        raise ConfigError(f"--pairs must be at least 2, not {args.pairs}")
    for run in [*args.runs, args.teacher]:
        if not (run / "run.json").is_file():
            raise ConfigError(f"{run}: no run.json (not a flipkd run directory)")


def student_runs_report(script: str, args: argparse.Namespace, measure: Callable) -> dict:
    """``measure(run, teacher, pairs)`` for every run, with the exact command and provenance."""
    rows = [measure(r, args.teacher, args.pairs) for r in args.runs]
    argv = [*map(str, args.runs), "--teacher", str(args.teacher), "--pairs", str(args.pairs)]
    command = ["python", script, *argv, "--out", str(args.out)]
    return {**provenance(command), "teacher": str(args.teacher), "pairs": args.pairs, "runs": rows}


def add_mix_weight_options(
    parser: argparse.ArgumentParser, weights: tuple[float, ...], resamples: int
) -> None:
    """The arguments of a benchmark that tries mix weights (``flipkd.mixing``): ``--weights``,
    the bootstrap's ``--resamples`` and ``--seed``, and ``--out``; :func:`check_mix_weights`
    checks them once parsed."""
    parser.add_argument("--weights", type=float, nargs="+", default=list(weights))
    parser.add_argument("--resamples", type=int, default=resamples)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")


def check_mix_weights(args: argparse.Namespace) -> None:
    """Every ``--weights`` value in [0, 1], or one line."""
    if any(not 0 <= w <= 1 for w in args.weights):
        raise ConfigError(f"--weights must lie in [0, 1], got {args.weights}")


def read_json_object(file: Path, what: str) -> dict:
    """A JSON object from ``file``; one line naming the file when it is missing, not JSON, or
    not an object (``what`` says what it should have been)."""
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not a {what} ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}: not a {what}")
    return doc


def check_faq_counts(args: argparse.Namespace) -> None:
    """``--rerank-k`` of at least 1 and ``--max-queries`` of 0 (all) or more, or one line."""
    if args.rerank_k < 1:
        raise ConfigError(f"--rerank-k must be at least 1, not {args.rerank_k}")
    if args.max_queries < 0:
        raise ConfigError(f"--max-queries must be 0 (all) or more, not {args.max_queries}")


def read_faq_result(file: Path) -> dict:
    """A ``flipkd faq eval --out`` file, parsed; one-line errors for a missing file, one that
    is not JSON, or one without systems and queries."""
    doc = read_json_object(file, "flipkd faq eval JSON")
    if not doc.get("systems") or "queries" not in doc:
        raise ConfigError(f"{file}: not a flipkd faq eval JSON (no systems or queries)")
    return doc
