"""Build an FAQ retrieval benchmark (an FAQ file and a queries file) from paraphrase pairs.

    python benchmarks/make_faq.py mqp --out-dir ~/faq/mqp --splits test --exclude-train mqp
    python benchmarks/make_faq.py lcqmc --out-dir ~/faq/lcqmc --exclude-train atec bq lcqmc

Questions joined by positive pairs (label 1) form a group: the connected components of the
positive-pair graph. Each group of two or more questions gives one FAQ entry, its most connected
question (the first seen on a tie, which for MQP is ``question_1``), and the group's other
questions are the queries whose right answer is that entry. For MQP a group is a ``question_1``
with its similar rewrite; for LCQMC and BQ a group can be larger.

``--exclude-train B ...`` drops every question that appears (either side, any label) in the
train split of benchmark B before grouping, so that neither a student nor a teacher trained on
B has seen an entry or a query. ``--exclude-run RUN ...`` drops only the questions of the pairs
RUN trained on (the seeded train sample its ``config.yaml`` names), so that the rest of a train
split becomes a held-out FAQ for that run, larger than its dev split:

    python benchmarks/make_faq.py mqp --out-dir ~/faq/mqp_unseen --splits train \
        --exclude-run runs/demo/work/runs/fip-s0-...

A run's teacher trained on the same sample is covered; a teacher given as ``teacher.run``
trained on its own pairs, which this does not exclude (the script says so).

Written to ``OUT_DIR/faq.csv`` (id,question,answer), ``OUT_DIR/queries.csv`` (query,id) and
``OUT_DIR/manifest.json`` (how, counts), outside the repository: the data's licences do not
allow committing them. Then:

    flipkd faq eval MODEL --faq OUT_DIR/faq.csv --queries OUT_DIR/queries.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence, Set
from pathlib import Path

from flipkd.data import load_split
from flipkd.errors import DataError, run_script
from flipkd.provenance import provenance

REPO = Path(__file__).resolve().parents[1]


def paraphrase_groups(
    pairs: Iterable[tuple[str, str, int | None]], exclude: Set[str] = frozenset()
) -> list[tuple[str, list[str]]]:
    """Group questions by the connected components of the positive pairs.

    Args:
        pairs: ``(text_a, text_b, label)``; label 1 joins two questions, others are ignored.
        exclude: Questions to leave out (a pair with one of them joins nothing).

    Returns:
        ``(entry, queries)`` per group of two or more questions, in order of first
        appearance: the entry is the question with the most positive pairs (first seen
        on a tie), the queries are the group's other questions in order of appearance.
    """
    parent: dict[str, str] = {}
    degree: dict[str, int] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, label in pairs:
        if label != 1 or a == b or a in exclude or b in exclude:
            continue
        for text in (a, b):
            parent.setdefault(text, text)
            degree[text] = degree.get(text, 0) + 1
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    members: dict[str, list[str]] = {}
    for text in parent:  # insertion order: first appearance
        members.setdefault(find(text), []).append(text)
    groups = []
    for texts in members.values():
        best = max(range(len(texts)), key=lambda i: (degree[texts[i]], -i))
        entry = texts[best]
        groups.append((entry, [t for t in texts if t != entry]))
    return groups


def train_questions(benchmarks: Sequence[str]) -> set[str]:
    """Every text of the train splits of ``benchmarks``."""
    seen: set[str] = set()
    for name in benchmarks:
        for pair in load_split(name, "train"):
            seen.update((pair.text_a, pair.text_b))
        print(f"{name} train: {len(seen)} questions to exclude so far", file=sys.stderr)
    return seen


def run_questions(runs: Sequence[Path]) -> set[str]:
    """Every text of the training pairs of ``runs`` (each run's seeded train sample)."""
    from flipkd.config import load_config
    from flipkd.recipes.pipeline import load_splits

    seen: set[str] = set()
    for run in runs:
        config = Path(run) / "config.yaml"
        if not config.is_file():
            raise DataError("not a run directory (no config.yaml)", where=str(run))
        cfg = load_config(config)
        for pair in load_splits(cfg, ("train",))["train"]:
            seen.update((pair.text_a, pair.text_b))
        print(f"{run}: {len(seen)} questions to exclude so far", file=sys.stderr)
        if cfg.teacher.run:
            print(f"{run}: its teacher {cfg.teacher.run} trained on its own pairs; their "
                  "questions are not excluded", file=sys.stderr)  # fmt: skip
    return seen


def write_benchmark(out_dir: Path, groups: list[tuple[str, list[str]]], prefix: str) -> int:
    """Write ``faq.csv`` and ``queries.csv``; return the number of queries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_queries = 0
    with (
        open(out_dir / "faq.csv", "w", newline="", encoding="utf-8") as faq,
        open(out_dir / "queries.csv", "w", newline="", encoding="utf-8") as queries,
    ):
        faq_w, query_w = csv.writer(faq), csv.writer(queries)
        faq_w.writerow(["id", "question", "answer"])
        query_w.writerow(["query", "id"])
        for i, (entry, others) in enumerate(groups):
            entry_id = f"{prefix}-{i:05d}"
            faq_w.writerow([entry_id, entry, f"{prefix} paraphrase group {i} ({len(others) + 1})"])
            query_w.writerows([q, entry_id] for q in others)
            n_queries += len(others)
    return n_queries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", help="mqp, lcqmc, bq, atec or a pair file/folder")
    parser.add_argument("--out-dir", type=Path, required=True, help="where to write (not the repo)")
    parser.add_argument("--splits", nargs="+", default=["test"], help="splits to group (test)")
    parser.add_argument(
        "--exclude-train", nargs="*", default=[], metavar="B", help="drop B's train questions"
    )
    parser.add_argument(
        "--exclude-run", nargs="*", type=Path, default=[], metavar="RUN",
        help="drop the questions of the pairs RUN trained on",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out_dir = args.out_dir.expanduser().resolve()
    if out_dir == REPO or REPO in out_dir.parents:
        msg = "write the benchmark outside the repository (data licences)"
        raise DataError(msg, where=str(out_dir))
    exclude = train_questions(args.exclude_train) | run_questions(args.exclude_run)
    pairs = [
        (p.text_a, p.text_b, p.label)
        for split in args.splits
        for p in load_split(args.benchmark, split)
    ]
    groups = paraphrase_groups(pairs, exclude)
    if not groups:
        raise DataError("no paraphrase groups left (all excluded?)", where=args.benchmark)
    prefix = Path(args.benchmark).stem if Path(args.benchmark).exists() else args.benchmark
    n_queries = write_benchmark(out_dir, groups, prefix)
    manifest = {
        **provenance(),
        "benchmark": args.benchmark,
        "splits": args.splits,
        "exclude_train": args.exclude_train,
        "exclude_runs": [str(r) for r in args.exclude_run],
        "excluded_questions": len(exclude),
        "pairs": len(pairs),
        "entries": len(groups),
        "queries": n_queries,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(groups)} FAQ entries and {n_queries} queries to {out_dir}")


if __name__ == "__main__":
    run_script(main)
