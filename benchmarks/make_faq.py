"""Build an FAQ file from MQP: one entry per question group, answered by its group id.

    python benchmarks/make_faq.py --out /tmp/mqp_faq.csv

Each MQP ``question_1`` is a group (it has one similar and one dissimilar rewrite); the FAQ
entry is that question, and its answer names the group, so a search for a rewrite can be
checked against the group it came from. The file is written outside the repository (the
data's licence does not allow committing it).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from flipkd.data import load_split
from flipkd.errors import run_script


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (id,question,answer)")
    args = parser.parse_args(argv)
    questions: dict[str, None] = {}
    for split in ("train", "dev", "test"):
        for pair in load_split("mqp", split):
            questions.setdefault(pair.text_a, None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "answer"])
        for i, question in enumerate(questions):
            writer.writerow([f"g{i:04d}", question, f"MQP question group g{i:04d}"])
    print(f"wrote {len(questions)} FAQ entries to {args.out}")


if __name__ == "__main__":
    run_script(main)
