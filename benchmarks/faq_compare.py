"""Two FAQ systems on the same queries: the difference in top-1, top-5 and MRR@10, with a
paired bootstrap interval over the queries.

    python benchmarks/faq_compare.py results/faq/dev/bqdev_profile-teacher.json \\
        results/faq/dev/bqdev_teacher-20k-4k-pairs.json --out results/faq/dev/compare_4k

Each side is a ``flipkd faq eval --out`` file, optionally ``FILE:SYSTEM`` to pick one of its
systems by name (``student index``, ``student rerank@10``, ``teacher index``, ...; default:
the file's first system). Both sides must have scored the same queries (same queries file
hash, count and sample), so the per-query ranks they stored pair up. Reports, per metric,
A, B, B − A and its 95% interval from ``--resamples`` resamples of the queries (the
resampling of ``flipkd.evaluation.metrics.bootstrap_interval``), and how many queries B puts
first that A does not (gained) and the reverse (lost). Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flipkd.bench.script import read_faq_result, report_main
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.report import signed_interval
from flipkd.evaluation.retrieval import paired_difference, retrieval_metrics
from flipkd.provenance import provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="FILE or FILE:SYSTEM (the baseline)")
    parser.add_argument("b", help="FILE or FILE:SYSTEM (compared with A)")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {args.resamples}")
    return args


def load_side(spec: str) -> dict:
    """One system of a ``faq eval`` file: its name, metrics, ranks and the queries' identity."""
    path, wanted = spec, ""
    if not Path(spec).is_file() and ":" in spec:
        path, _, wanted = spec.rpartition(":")
    file = Path(path)
    doc = read_faq_result(file)
    systems = doc["systems"]
    names = [s.get("name") for s in systems]
    if wanted and wanted not in names:
        raise ConfigError(f"{file}: no system {wanted!r}; it has {names}")
    system = systems[names.index(wanted)] if wanted else systems[0]
    ranks = system.get("ranks")
    if not isinstance(ranks, list):
        raise ConfigError(f"{file}: system {system.get('name')!r} has no per-query ranks")
    try:
        retrieval_metrics(ranks)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: system {system.get('name')!r}: {exc}") from None
    return {
        "file": str(file),
        "system": system["name"],
        "model": system.get("model"),
        "queries": doc["queries"],
        "ranks": ranks,
    }


def _same_queries(a: dict, b: dict) -> None:
    keys = ("hash", "n", "sample_seed")
    qa, qb = ({k: side["queries"].get(k) for k in keys} for side in (a, b))
    if qa != qb or len(a["ranks"]) != len(b["ranks"]):
        raise ConfigError(
            f"{a['file']} and {b['file']} scored different queries ({qa} vs {qb}): "
            "compare runs on the same queries file and sample"
        )


def compare(a: dict, b: dict, resamples: int, seed: int) -> dict:
    """Per metric: A, B, B − A with its paired bootstrap interval; top-1 gained and lost."""
    _same_queries(a, b)
    rows = paired_difference(a["ranks"], b["ranks"], resamples, seed)
    first_a, first_b = (np.array([r == 1 for r in side["ranks"]]) for side in (a, b))
    return {
        "metrics": rows,
        "top1_gained": int((first_b & ~first_a).sum()),
        "top1_lost": int((first_a & ~first_b).sum()),
        "queries": len(a["ranks"]),
    }


def run(args: argparse.Namespace) -> dict:
    a, b = load_side(args.a), load_side(args.b)
    result = compare(a, b, args.resamples, args.seed)
    return {
        **provenance(["python", "benchmarks/faq_compare.py", *_argv(args)]),
        "a": {k: v for k, v in a.items() if k != "ranks"},
        "b": {k: v for k, v in b.items() if k != "ranks"},
        "resamples": args.resamples,
        "seed": args.seed,
        **result,
    }


def _argv(args: argparse.Namespace) -> list[str]:
    return [args.a, args.b, "--resamples", str(args.resamples), "--seed", str(args.seed),
            "--out", str(args.out)]  # fmt: skip


def markdown(report: dict) -> str:
    a, b = report["a"], report["b"]
    lines = [
        "# FAQ systems compared on the same queries",
        "",
        f"Command: `{report['command']}`",
        "",
        f"A: `{a['file']}` ({a['system']}, {a['model']}); B: `{b['file']}` "
        f"({b['system']}, {b['model']}); {report['queries']} queries "
        f"(`{a['queries'].get('path')}`, hash {a['queries'].get('hash')}). Paired bootstrap "
        f"over the queries, {report['resamples']} resamples, seed {report['seed']}.",
        "",
        "| metric | A | B | B − A [95%] |",
        "|---|---|---|---|",
    ]
    for name, row in report["metrics"].items():
        interval = signed_interval(row["diff"], row["ci"])
        lines.append(f"| {name} | {row['a']:.3f} | {row['b']:.3f} | {interval} |")
    lines += [
        "",
        f"Top-1: B gains {report['top1_gained']} queries and loses {report['top1_lost']}.",
        "",
    ]
    return "\n".join(lines)


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
