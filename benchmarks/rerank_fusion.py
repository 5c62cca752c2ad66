"""Which ``rerank_weight`` (how much of the index's cosine ``/search`` mixes into re-ranking)?

    flipkd faq eval RUN --faq FAQ --queries Q --rerank-k 10 --candidates --out RERANK.json
    python benchmarks/rerank_fusion.py RERANK.json --out results/faq/dev/fusion_VARIANT

Reads a ``flipkd faq eval --candidates`` file (each query's re-ranked candidates with their
cosine and generated-label score) and re-orders every query's candidates as ``/search`` does
with ``"rerank_weight": w`` (``flipkd.serve.ranking.mixed_scores``):

    w · z(logit(label score)) + (1 − w) · z(cosine)

where ``z`` standardises over the query's own candidates (so neither score's scale matters;
w = 1, the default, is the generated-label order, w = 0 the index's cosine order), for each w
of ``--weights``, from one scoring pass. Reports top-1, top-5 and MRR@10 per w, and each
w's top-1 difference from w = 1 and from the index (w = 0), each with a paired bootstrap
interval over the queries (flipkd's one bootstrap). Checks first that the file's own weight
reproduces its re-ranked ranks. ``--k K`` (below the file's k) re-ranks only each query's
first K candidates, the rest following in cosine order, as ``/search`` does with
``rerank_candidates = K`` (fewer model calls per query: what a smaller k costs in top-1).
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flipkd.bench.script import (
    add_mix_weight_options,
    check_mix_weights,
    read_faq_result,
    report_main,
)
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.report import retrieval_row
from flipkd.evaluation.retrieval import paired_difference, rank_of, retrieval_metrics
from flipkd.provenance import provenance

WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="flipkd faq eval --candidates --out file")
    parser.add_argument("--k", type=int, default=None, help="re-rank only the first K")
    add_mix_weight_options(parser, WEIGHTS, resamples=10_000)
    args = parser.parse_args(argv)
    check_mix_weights(args)
    if args.k is not None and args.k < 1:
        raise ConfigError(f"--k must be at least 1, not {args.k}")
    return args


def ranks_at(
    rows: list[dict], gold: list[str], weight: float, k: int | None = None
) -> list[int | None]:
    """Each query's gold rank after ordering its first ``k`` (default: all) candidates by
    ``/search``'s mixed score (:func:`flipkd.serve.ranking.mixed_scores`, standardised over
    those k; stable: ties keep the cosine order), the rest following in cosine order; None
    beyond the 10 results ``faq eval`` scores (``CUTOFF``), as it records them."""
    from flipkd.serve.faq_eval import CUTOFF
    from flipkd.serve.ranking import mixed_scores

    out = []
    for row, want in zip(rows, gold, strict=True):
        n = len(row["ids"]) if k is None else min(k, len(row["ids"]))
        score = mixed_scores(row["cos"][:n], row["gen"][:n], weight)
        order = sorted(range(n), key=lambda i: -score[i]) + list(range(n, len(row["ids"])))
        out.append(rank_of([row["ids"][i] for i in order[:CUTOFF]], want))
    return out


def load(file: Path) -> tuple[dict, dict, list[str]]:
    """The file, its re-ranked system (with candidates) and each query's gold id."""
    doc = read_faq_result(file)
    systems = [s for s in doc["systems"] if "gen" in (s.get("candidates") or [{}])[0]]
    if not systems:
        raise ConfigError(f"{file}: no re-ranked system with candidates (run faq eval with "
                          "--rerank-k 10 --candidates)")  # fmt: skip
    from flipkd.serve.faq import load_faq
    from flipkd.serve.queries import load_queries

    faq, queries = Path(doc["faq"]["path"]), Path(doc["queries"]["path"])
    entries = load_faq(faq)
    ids = [q.id for q in load_queries(queries, [e.id for e in entries], str(faq))]
    if doc["queries"].get("sample_seed") is not None or len(ids) != len(systems[0]["ranks"]):
        raise ConfigError(f"{file}: scored a sample of {queries}; run on all of its queries")
    return doc, systems[0], ids


def run(args: argparse.Namespace) -> dict:
    doc, system, gold = load(args.file)
    rows = system["candidates"]
    served = doc.get("rerank_weight", 1.0)
    if ranks_at(rows, gold, served) != system["ranks"]:
        raise ConfigError(f"{args.file}: w = {served:g} does not reproduce the file's ranks")
    label_only, index_only = ranks_at(rows, gold, 1.0, args.k), ranks_at(rows, gold, 0.0)
    table = {}
    for weight in args.weights:
        ranks = ranks_at(rows, gold, weight, args.k)
        top1 = paired_difference(label_only, ranks, args.resamples, args.seed)["top1"]
        gain = paired_difference(index_only, ranks, args.resamples, args.seed)["top1"]
        table[f"{weight:g}"] = {
            **retrieval_metrics(ranks),
            "top1_vs_label_only": top1["diff"],
            "ci": top1["ci"],
            "top1_vs_index": gain["diff"],
            "ci_vs_index": gain["ci"],
        }
    return {
        **provenance(["python", "benchmarks/rerank_fusion.py", *_argv(args)]),
        "file": str(args.file),
        "model": doc.get("model"),
        "system": system["name"],
        "k": args.k or len(rows[0]["ids"]),
        "queries": doc["queries"],
        "resamples": args.resamples,
        "seed": args.seed,
        "weights": table,
    }


def _argv(args: argparse.Namespace) -> list[str]:
    k = ["--k", str(args.k)] if args.k is not None else []
    return [str(args.file), "--weights", *map(str, args.weights), *k, "--resamples",
            str(args.resamples), "--seed", str(args.seed), "--out", str(args.out)]  # fmt: skip


def markdown(report: dict) -> str:
    lines = [
        "# Re-ranking by the label, the cosine, or a mix",
        "",
        f"Command: `{report['command']}`",
        "",
        f"`{report['file']}` ({report['system']}, {report['model']}), "
        f"{report['queries']['n']} queries, the first {report['k']} candidates re-ranked. "
        "w = 1: the generated label alone; w = 0: the index's cosine order. Top-1 differences "
        "paired over "
        f"the queries, {report['resamples']} resamples, seed {report['seed']}.",
        "",
        "| w | top-1 | top-5 | MRR@10 | top-1 − label only [95%] | top-1 − index [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for weight, row in report["weights"].items():
        diffs = [(row["top1_vs_label_only"], row["ci"]), (row["top1_vs_index"], row["ci_vs_index"])]
        lines.append(retrieval_row(weight, row, diffs))
    return "\n".join([*lines, ""])


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
