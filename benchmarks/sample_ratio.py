"""How far a smaller test sample moves one row's Spearman against another's.

    python benchmarks/sample_ratio.py --reference RUN_A --student RUN_B --size 200 \
        --observed 0.93 --out results/atec/cpu-qwen-5k/sample_200

Reads two finished ladder runs (``result.json``: per-pair test scores and labels, the same
pairs in the same order), and draws ``--draws`` label-stratified samples of ``--size`` pairs
from them. Per draw: each row's Spearman ×100 against the labels, and the student's ÷ the
reference's. Reports both rows' Spearman and the ratio on the whole sample and their 2.5 /
50 / 97.5 percentiles over draws, and with ``--observed X`` the share of draws whose ratio is
at or above X — whether a ratio seen on a smaller sample (another ladder's) could be that
sample alone. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from flipkd.bench.script import report_main
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.metrics import correlations
from flipkd.provenance import provenance

MODES = ("rep", "gen")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="run dir (the teacher)")
    parser.add_argument("--student", type=Path, required=True, help="run dir")
    parser.add_argument("--reference-mode", choices=MODES, default="rep")
    parser.add_argument("--student-mode", choices=MODES, default="rep")
    parser.add_argument("--split", default="test")
    parser.add_argument("--size", type=int, required=True, help="pairs per draw")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--observed", type=float, help="a ratio seen elsewhere")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    return parser.parse_args(argv)


def read_scores(run: Path, split: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of one run's split, or a one-line error naming the file."""
    file = run / "result.json"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        part = doc["scores"][split]
        return np.asarray(part[mode], dtype=float), np.asarray(part["labels"], dtype=int)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (not a finished ladder run)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not a ladder run's result.json ({exc})") from None
    except (KeyError, TypeError):
        raise ConfigError(f"{file}: no {mode!r} scores for split {split!r}") from None


def _spearman(scores: np.ndarray, labels: np.ndarray) -> float:
    return correlations(scores, labels)["spearman"]


def _pcts(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(values, [2.5, 50, 97.5])]


def run(args: argparse.Namespace) -> dict:
    ref, labels = read_scores(args.reference, args.split, args.reference_mode)
    stu, stu_labels = read_scores(args.student, args.split, args.student_mode)
    if not np.array_equal(labels, stu_labels):
        raise ConfigError(
            f"{args.reference} and {args.student}: the {args.split} labels differ "
            "(not the same pairs)"
        )
    pos, neg = np.flatnonzero(labels > 0), np.flatnonzero(labels <= 0)
    if not 2 <= args.size < len(labels) or args.draws < 1:
        raise ConfigError(f"--size {args.size} / --draws {args.draws}: need 2 <= size < "
                          f"{len(labels)} (the split's pairs) and draws >= 1")  # fmt: skip
    n_pos = round(args.size * len(pos) / len(labels))
    if not 1 <= n_pos < args.size:
        raise ConfigError(f"--size {args.size}: too small to hold both labels")
    rng = np.random.default_rng(args.seed)
    draws = {"reference": [], "student": [], "ratio": []}
    for _ in range(args.draws):
        idx = np.concatenate(
            [
                rng.choice(pos, n_pos, replace=False),
                rng.choice(neg, args.size - n_pos, replace=False),
            ]
        )
        a, b = _spearman(ref[idx], labels[idx]), _spearman(stu[idx], labels[idx])
        draws["reference"].append(a)
        draws["student"].append(b)
        draws["ratio"].append(b / a if a else float("nan"))
    arrays = {k: np.asarray(v) for k, v in draws.items()}
    ratio = arrays["ratio"][np.isfinite(arrays["ratio"])]
    whole_ref, whole_stu = _spearman(ref, labels), _spearman(stu, labels)
    command = [
        "python", "benchmarks/sample_ratio.py", "--reference", str(args.reference),
        "--student", str(args.student), "--reference-mode", args.reference_mode,
        "--student-mode", args.student_mode, "--split", args.split, "--size", str(args.size),
        "--draws", str(args.draws), "--seed", str(args.seed),
        *(["--observed", str(args.observed)] if args.observed is not None else []),
        "--out", str(args.out),
    ]  # fmt: skip
    return {
        **provenance(command),
        "pairs": len(labels), "positives": len(pos), "size": args.size, "draws": args.draws,
        "whole": {"reference": whole_ref, "student": whole_stu, "ratio": whole_stu / whole_ref},
        "percentiles": {
            "reference": _pcts(arrays["reference"]), "student": _pcts(arrays["student"]),
            "ratio": _pcts(ratio),
        },
        "observed": args.observed,
        "share_at_or_above_observed": (
            None if args.observed is None else float((ratio >= args.observed).mean())
        ),
    }  # fmt: skip


def markdown(report: dict) -> str:
    p = report["percentiles"]
    w = report["whole"]
    lines = [
        f"# A row's Spearman against another's on {report['size']}-pair samples",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{report['draws']} label-stratified draws of {report['size']} of the "
        f"{report['pairs']} pairs ({report['positives']} positive). Spearman ×100 against "
        "the labels; ratio = student ÷ reference.",
        "",
        "| | whole sample | 2.5% | median | 97.5% |",
        "|---|---|---|---|---|",
    ]
    for name, fmt in (("reference", "{:.1f}"), ("student", "{:.1f}"), ("ratio", "{:.2f}")):
        cells = " | ".join(fmt.format(v) for v in p[name])
        lines.append(f"| {name} | {fmt.format(w[name])} | {cells} |")
    if report["observed"] is not None:
        lines += [
            "",
            f"Draws whose ratio is at or above {report['observed']}: "
            f"{100 * report['share_at_or_above_observed']:.1f}%.",
        ]
    return "\n".join([*lines, ""])


main = report_main(parse_args, run, markdown)


if __name__ == "__main__":
    run_script(main)
