"""The ``main`` of a benchmark script that measures once and writes ``OUT.json`` + ``OUT.md``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from flipkd.errors import ConfigError
from flipkd.paths import write_report


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
