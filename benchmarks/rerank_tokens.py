"""What re-ranking a query's top k costs in prompt tokens, per prompt template (no model run).

    python benchmarks/rerank_tokens.py /work/exports/bq_qwen_fip --faq /work/faq/bq/faq.csv \\
        --queries /work/faq/bq/queries.csv --max-queries 30 --rerank-k 10 \\
        --template '判断下面两个句子的意思是否相同，请回答是或否。\\n句子1：{a}\\n句子2：{b}' \\
        --out results/perf/rerank_tokens_bq

Loads MODEL as ``flipkd serve`` does and tokenises the re-ranking prompts exactly as
``shared_prefix_label_logits`` (``src/flipkd/student/shared.py``) does, for the model's own
template and each ``--template`` (``\\n`` is a newline). Each query is paired with k FAQ
entries: ``--candidates random`` (seeded, the default) or ``index``, the model's own top k
from its FAQ index (encodes the FAQ). Per template, averaged over queries: the shared prefix
(tokens run once per query), a candidate's tail (run k times), the closing tokens every tail
of a query ends with (identical text, still run k times because it attends to its
candidate), all tokens of a re-ranked query (prefix + k tails), and what padding every tail
to the longest would cost against packing them (k x longest / sum). Writes ``OUT.json`` and
``OUT.md`` with the command, git commit, versions and machine.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from flipkd.bench.script import check_faq_counts, faq_rerank_parser, report_main
from flipkd.errors import ConfigError, run_script
from flipkd.provenance import provenance


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = faq_rerank_parser(__doc__, max_queries=30)
    parser.add_argument("--candidates", choices=("random", "index"), default="random")
    parser.add_argument("--seed", type=int, default=0, help="for --candidates random")
    parser.add_argument("--template", action="append", default=[],
                        help="another template with {a} and {b} (repeatable)")  # fmt: skip
    return parser.parse_args(argv)


def common_suffix_length(seqs: list[list[int]]) -> int:
    """Tokens every sequence ends with."""
    shortest = min(len(s) for s in seqs)
    n = 0
    while n < shortest and all(s[-1 - n] == seqs[0][-1 - n] for s in seqs):
        n += 1
    return n


def count(student, pairs_per_query: list[list[tuple[str, str]]]) -> dict:
    """Token counts of the re-ranking prompts, averaged over queries."""
    from flipkd.student.shared import common_prefix_length, prompt_token_ids

    rows = []
    for pairs in pairs_per_query:
        seqs = prompt_token_ids(student, pairs)
        n_prefix = common_prefix_length(seqs)
        tails = [s[n_prefix:] for s in seqs]
        lengths = [len(t) for t in tails]
        rows.append({
            "prefix": n_prefix, "tail": float(np.mean(lengths)),
            "closing": common_suffix_length(tails), "total": n_prefix + sum(lengths),
            "padded_over_packed": len(lengths) * max(lengths) / sum(lengths),
        })  # fmt: skip
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _pairs(args, entries, queries, matcher) -> list[list[tuple[str, str]]]:
    if args.candidates == "random":
        rng = np.random.default_rng(args.seed)
        picks = [rng.choice(len(entries), size=args.rerank_k, replace=False) for _ in queries]
        pairs = zip(queries, picks, strict=True)
        return [[(q.query, entries[i].question) for i in p] for q, p in pairs]
    from flipkd.serve.faq_eval import build_index, search_all
    from flipkd.serve.ranking import rerank_pairs

    index = build_index(entries, matcher.encode, {}, None).index
    hits, _ = search_all(index, matcher, queries, depth=args.rerank_k, progress=False)
    return [rerank_pairs(index, q.query, h) for q, h in zip(queries, hits, strict=True)]


def run(args: argparse.Namespace) -> dict:
    from flipkd.serve.faq import load_faq
    from flipkd.serve.protocol import load_matcher
    from flipkd.serve.queries import load_queries

    check_faq_counts(args)
    templates = [t.replace("\\n", "\n") for t in args.template]
    bad = [t for t in templates if "{a}" not in t or "{b}" not in t]
    if bad:
        raise ConfigError(f"--template {bad[0]!r}: a template needs both {{a}} and {{b}}")
    entries = load_faq(args.faq)
    if args.rerank_k > len(entries):
        raise ConfigError(f"--rerank-k {args.rerank_k}: {args.faq} has {len(entries)} entries")
    queries = load_queries(args.queries, [e.id for e in entries], str(args.faq))
    if args.max_queries:
        queries = queries[: args.max_queries]
    matcher = load_matcher(Path(args.model), args.loader)
    student = getattr(matcher, "student", None)
    if student is None:
        raise ConfigError(f"{args.model}: this matcher has no student whose prompts to count")
    pairs = _pairs(args, entries, queries, matcher)
    own = student.prompt
    results = []
    for template in [own.template, *templates]:
        student.prompt = dataclasses.replace(own, template=template)
        results.append({"template": template, "own": template == own.template,
                        **count(student, pairs)})  # fmt: skip
    student.prompt = own
    return {
        **provenance(),
        "model": args.model,
        "faq": {"path": str(args.faq), "entries": len(entries)},
        "queries": {"path": str(args.queries), "n": len(queries)},
        "rerank_k": args.rerank_k,
        "candidates": args.candidates,
        "seed": args.seed,
        "answer_suffix": own.answer_suffix,
        "templates": results,
    }


def markdown(report: dict) -> str:
    head = "| template | prefix | tail | closing | tokens a query | padded ÷ packed |"
    lines = [
        "# Re-ranking prompts in tokens, per template",
        "",
        f"Command: `{report['command']}`  ",
        f"git {report['git_commit']}, {report['date']}, {report['machine']}",
        "",
        f"{report['queries']['n']} queries of `{report['queries']['path']}`, each with "
        f"{report['rerank_k']} {report['candidates']} entries of a {report['faq']['entries']}-"
        f"entry FAQ, tokenised as `{report['model']}` re-ranks them (answer cue "
        f"{report['answer_suffix']!r} after each template). Means over queries: prefix = "
        "tokens run once a query, tail = one candidate's tokens after it, closing = tokens every "
        "tail of a query ends with.",
        "",
        head,
        "|---|---|---|---|---|---|",
    ]
    for t in report["templates"]:
        name = repr(t["template"]) + (" (the model's)" if t["own"] else "")
        lines.append(
            f"| `{name}` | {t['prefix']:.1f} | {t['tail']:.1f} | {t['closing']:.1f} | "
            f"{t['total']:.1f} | {t['padded_over_packed']:.2f} |"
        )
    return "\n".join([*lines, ""])


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
