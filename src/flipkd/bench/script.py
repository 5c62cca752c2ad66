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


def check_faq_counts(args: argparse.Namespace) -> None:
    """``--rerank-k`` of at least 1 and ``--max-queries`` of 0 (all) or more, or one line."""
    if args.rerank_k < 1:
        raise ConfigError(f"--rerank-k must be at least 1, not {args.rerank_k}")
    if args.max_queries < 0:
        raise ConfigError(f"--max-queries must be 0 (all) or more, not {args.max_queries}")


def read_faq_result(file: Path) -> dict:
    """A ``flipkd faq eval --out`` file, parsed; one-line errors for a missing file, one that
    is not JSON, or one without systems and queries."""
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not a flipkd faq eval JSON ({exc})") from None
    if not isinstance(doc, dict) or not doc.get("systems") or "queries" not in doc:
        raise ConfigError(f"{file}: not a flipkd faq eval JSON (no systems or queries)")
    return doc
