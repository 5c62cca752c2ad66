"""Re-ranking speed two ways, in one process: the shared prompt prefix, or bf16 weights.

    python benchmarks/rerank_prefix.py /work/exports/demo_fip --faq /work/faq/mqp_test/faq.csv \\
        --queries /work/faq/mqp_test/queries.csv --rerank-k 10 --out results/perf/rerank_prefix
    python benchmarks/rerank_prefix.py MODEL --faq ... --queries ... --compare precision \\
        --out results/perf/rerank_precision
    python benchmarks/rerank_prefix.py MODEL --other MODEL2 --compare models \\
        --precision bfloat16 --faq ... --queries ... --out results/perf/rerank_templates

Loads MODEL (an export or a student run) as ``flipkd serve`` does, builds its FAQ index and
searches it as ``flipkd faq eval`` does (``src/flipkd/serve/faq_eval.py``), then re-ranks the
same queries' top k by the generated label ``--rounds`` times each way, in turns, so that load
from other jobs falls on both. ``--compare prefix`` (default): ``plain`` runs every prompt
whole, ``shared`` runs the query's prompt prefix once per query
(``FlipkdMatcher.share_prefix``). ``--compare precision``: ``float32`` against ``bfloat16``,
the student's every weight cast once (``flipkd serve --precision``), both sharing the prefix
and re-ranking the same candidates (the float32 index's). ``--compare models``: MODEL against
``--other`` MODEL2 (two prompt templates, say), both in ``--precision`` and sharing the prefix,
re-ranking the same candidates (MODEL's index's). Reports queries per second of the
re-ranking alone, the ratio, in how many queries the two orders agree, and the largest score
difference over every query's k candidates. Writes ``OUT.json`` and ``OUT.md`` with the
command, git commit, versions, machine and the load average around every round.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from flipkd.bench.script import check_faq_counts, faq_rerank_parser, report_main
from flipkd.errors import ConfigError, run_script
from flipkd.provenance import provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = faq_rerank_parser(__doc__, max_queries=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compare", choices=sorted(COMPARISONS), default="prefix")
    parser.add_argument("--other", help="--compare models: the second student")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="--compare models: both students' weights")  # fmt: skip
    return parser.parse_args(argv)


def _scores(matcher, index, queries, hits, k: int) -> list[np.ndarray]:
    from flipkd.serve.ranking import rerank_pairs

    return [
        np.asarray(matcher.score_pairs(rerank_pairs(index, q.query, h[:k]), "gen"))
        for q, h in zip(queries, hits, strict=True)
    ]


def _prefix_ways(matcher, args) -> dict:
    """One matcher, its prompt prefix run whole or once per query."""
    if not hasattr(matcher, "share_prefix"):
        raise ConfigError(f"{args.model}: this matcher has no share_prefix switch to compare")

    def way(shared: bool):
        matcher.share_prefix = shared
        return matcher

    return {"plain": lambda: way(False), "shared": lambda: way(True)}


def _precision_ways(matcher, args) -> dict:
    """The float32 matcher and a second copy with every weight in bf16."""
    from flipkd.serve.protocol import load_matcher
    from flipkd.student.precision import cast_for_inference

    if not hasattr(matcher, "student"):
        raise ConfigError(f"{args.model}: this matcher has no student to cast to bf16")
    low = load_matcher(Path(args.model), args.loader)
    low.precision = cast_for_inference(low.student, "bfloat16")
    return {"float32": lambda: matcher, "bfloat16": lambda: low}


def _model_ways(matcher, args) -> dict:
    """Two students, each in ``--precision``, re-ranking the same candidates."""
    from flipkd.serve.protocol import load_matcher
    from flipkd.student.precision import cast_for_inference

    if not args.other:
        raise ConfigError("--compare models needs --other MODEL2")
    other = load_matcher(Path(args.other), args.loader)
    for name, m in ((args.model, matcher), (args.other, other)):
        if not hasattr(m, "student"):
            raise ConfigError(f"{name}: this matcher has no student to re-rank with")
        if args.precision != "float32":
            m.precision = cast_for_inference(m.student, args.precision)
    first, second = Path(args.model).name, Path(args.other).name
    if first == second:
        first, second = "model", "other"
    return {first: lambda: matcher, second: lambda: other}


COMPARISONS = {"prefix": _prefix_ways, "precision": _precision_ways, "models": _model_ways}


def run(args: argparse.Namespace) -> dict:
    from flipkd.serve.faq import load_faq
    from flipkd.serve.faq_eval import build_index, rerank_all, search_all
    from flipkd.serve.protocol import load_matcher
    from flipkd.serve.queries import load_queries

    check_faq_counts(args)
    entries = load_faq(args.faq)
    queries = load_queries(args.queries, [e.id for e in entries], str(args.faq))
    if args.max_queries:
        queries = queries[: args.max_queries]
    matcher = load_matcher(Path(args.model), args.loader)
    ways = COMPARISONS[args.compare](matcher, args)
    index = build_index(entries, matcher.encode, {}, None).index
    hits, _ = search_all(index, matcher, queries, depth=args.rerank_k, progress=False)
    rounds = []
    orders = {}
    for r in range(args.rounds):
        for way, use in ways.items():
            load_before = os.getloadavg()[0]
            out, seconds, _ = rerank_all(
                index, use(), queries, hits, rerank_k=args.rerank_k, progress=False
            )
            orders[way] = [[h.position for h in found] for found in out]
            rounds.append({
                "round": r, "way": way, "seconds": round(seconds, 3),
                "qps": len(queries) / seconds, "load_1min": [load_before, os.getloadavg()[0]],
            })  # fmt: skip
            print(f"round {r} {way}: {len(queries) / seconds:.2f} q/s", file=sys.stderr)
    first, second = ways
    scores = {way: _scores(use(), index, queries, hits, args.rerank_k) for way, use in ways.items()}
    diff = max(
        float(np.abs(a - b).max()) for a, b in zip(scores[first], scores[second], strict=True)
    )
    agree = [a == b for a, b in zip(orders[first], orders[second], strict=True)]
    qps = {way: float(np.median([x["qps"] for x in rounds if x["way"] == way])) for way in ways}
    if args.compare == "prefix":
        ways["shared"]()  # leave the matcher as it was found: sharing its prefix
    return {
        **provenance(),
        "model": args.model,
        "faq": {"path": str(args.faq), "entries": len(entries)},
        "queries": {"path": str(args.queries), "n": len(queries)},
        "rerank_k": args.rerank_k,
        "rounds": rounds,
        "compare": args.compare,
        "other": args.other,
        "precision": args.precision if args.compare == "models" else None,
        "median_qps": qps,
        "speedup": qps[second] / qps[first],
        "same_order": all(agree),
        "same_order_queries": sum(agree),
        "max_score_difference": diff,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
    }


TITLES = {
    "prefix": "# Re-ranking with the query's prompt prefix shared",
    "precision": "# Re-ranking with the student's weights in bf16",
    "models": "# Re-ranking speed of two students",
}


def markdown(report: dict) -> str:
    lines = [
        TITLES[report["compare"]],
        "",
        f"Command: `{report['command']}`  ",
        f"git {report['git_commit']}, {report['date']}, {report['machine']}",
        "",
        f"{report['queries']['n']} queries of `{report['queries']['path']}`, FAQ of "
        f"{report['faq']['entries']} entries, top {report['rerank_k']} re-ranked by "
        f"`{report['model']}`'s generated label"
        + (
            f" and by `{report['other']}`'s, both in {report['precision']}."
            if report["compare"] == "models"
            else "."
        ),
        "",
        "| way | median q/s (re-ranking alone) |",
        "|---|---|",
        *(f"| {w} | {q:.2f} |" for w, q in report["median_qps"].items()),
        "",
        f"Speed-up {report['speedup']:.2f}x; same order in {report['same_order_queries']} of "
        f"{report['queries']['n']} queries; largest score difference "
        f"{report['max_score_difference']:.2e}.",
        "",
        "| round | way | seconds | q/s | 1-min load before/after |",
        "|---|---|---|---|---|",
        *(
            f"| {x['round']} | {x['way']} | {x['seconds']} | {x['qps']:.2f} | "
            f"{x['load_1min'][0]:.2f} / {x['load_1min'][1]:.2f} |"
            for x in report["rounds"]
        ),
        "",
    ]
    return "\n".join(lines)


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
