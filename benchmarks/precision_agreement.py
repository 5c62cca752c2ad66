"""How far a student's scores move when it serves in bf16 (``--precision bfloat16``).

    python benchmarks/precision_agreement.py /work/exports/demo_fip --benchmark mqp \\
        --split dev --out results/perf/precision_agreement_mqp

Loads MODEL (an export or a student run) twice through ``flipkd.load``, in float32 and with
every weight in bf16, scores the split's pairs in both modes with each, and reports per mode:
ROC-AUC in each precision, the median and largest score difference, and how many decisions
at the export's own threshold flip. Dev by default: this measures a serving setting, and
choosing settings does not read test. Writes ``OUT.json`` and ``OUT.md`` with the command,
git commit, versions and machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from flipkd.errors import run_script
from flipkd.provenance import provenance

PRECISIONS = ("float32", "bfloat16")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported student or student run")
    parser.add_argument("--benchmark", default="mqp")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    return parser.parse_args(argv)


def compare(model: str, pairs: list[tuple[str, str]], labels: np.ndarray) -> dict:
    """Scores of both precisions per mode, and how they differ."""
    import flipkd
    from flipkd.evaluation import pair_metrics
    from flipkd.modes import MODES

    scores, thresholds = {}, {}
    for precision in PRECISIONS:
        matcher = flipkd.load(model, precision=precision)
        thresholds = matcher.threshold
        scores[precision] = {mode: matcher.score_pairs(pairs, mode) for mode in MODES}
    out = {}
    for mode in MODES:
        a, b = (scores[p][mode] for p in PRECISIONS)
        diff = np.abs(a - b)
        t = thresholds[mode]
        out[mode] = {
            "threshold": float(t),
            "roc_auc": {
                p: float(pair_metrics(scores[p][mode], labels, t)["roc_auc"]) for p in PRECISIONS
            },  # fmt: skip
            "median_abs_difference": float(np.median(diff)),
            "max_abs_difference": float(diff.max()),
            "decisions_flipped": int(((a >= t) != (b >= t)).sum()),
        }
    return out


def markdown(report: dict) -> str:
    lines = [
        "# Scores of a student served in bf16 against float32",
        "",
        f"Command: `{report['command']}`  ",
        f"git {report['git_commit']}, {report['date']}, {report['machine']}",
        "",
        f"`{report['model']}` on {report['n']} {report['benchmark']} {report['split']} pairs.",
        "",
        "| mode | ROC-AUC float32 | ROC-AUC bf16 | median |Δ| | max |Δ| | threshold | "
        "decisions flipped |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in report["modes"].items():
        lines.append(
            f"| {mode} | {m['roc_auc']['float32']:.4f} | {m['roc_auc']['bfloat16']:.4f} | "
            f"{m['median_abs_difference']:.4f} | {m['max_abs_difference']:.4f} | "
            f"{m['threshold']:.4f} | {m['decisions_flipped']} of {report['n']} |"
        )
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> int:
    from flipkd.data import load_split
    from flipkd.paths import write_report

    args = parse_args(argv)
    split = load_split(args.benchmark, args.split)
    pairs = [(p.text_a, p.text_b) for p in split]
    labels = np.array([int(p.label) for p in split])
    report = {
        **provenance(["python", "benchmarks/precision_agreement.py", *(argv or sys.argv[1:])]),
        "model": args.model, "benchmark": args.benchmark, "split": args.split, "n": len(pairs),
        "modes": compare(args.model, pairs, labels),
    }  # fmt: skip
    write_report(args.out, report, markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    run_script(lambda: main(sys.argv[1:]))
