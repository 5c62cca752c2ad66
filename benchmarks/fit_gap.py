"""Does a student's A-tap copy its teacher better on its own training pairs than on dev?

    python benchmarks/fit_gap.py RUN [RUN ...] --teacher TEACHER_RUN --pairs 1000 \\
        --out results/dev/atec/atec-rep-levers3/fit_gap

Per student run: the A-tap cosine (``rep``) and the teacher's cosine on the first ``--pairs``
of the run's own training pairs (its config's seeded sample, in order) and of its dev pairs,
and three Spearman correlations on each: A-tap with the teacher, A-tap with the label, the
teacher with the label. An A-tap that agrees with its teacher as little on the pairs it was
trained on as on dev is short of fitting (more steps or a larger step may help); one that
agrees much more on its training pairs has begun to fit them alone (more pairs may help).
The teacher's train-pair numbers are optimistic when it was trained on the same split.
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from flipkd.bench.script import (
    check_student_runs,
    report_main,
    student_runs_parser,
    student_runs_report,
)
from flipkd.errors import run_script

SPLITS = ("train", "dev")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = student_runs_parser(__doc__, "pairs per split (first N)").parse_args(argv)
    check_student_runs(args)
    return args


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(spearmanr(a, b)[0]), 4)


def measure(run: Path, teacher: Path, n: int) -> dict:
    """One student run: per split, the pairs and the three correlations."""
    from flipkd.config import load_config
    from flipkd.export.scoring import score_run_pairs
    from flipkd.recipes.pipeline import load_splits
    from flipkd.teacher.scoring import score_pairs

    cfg = load_config(run / "config.yaml")
    bench = cfg.data.benchmark
    out: dict = {"run": str(run), "steps": cfg.train.steps, "train_max": cfg.data.max_train_pairs}
    for split, pairs in load_splits(cfg, SPLITS).items():
        pairs = pairs[:n]
        rep = np.asarray(score_run_pairs(run, pairs, benchmark=bench, mode="rep"), dtype=float)
        cos = np.asarray(score_pairs(teacher, pairs, benchmark=bench), dtype=float)
        y = np.asarray([p.label for p in pairs], dtype=float)
        out[split] = {
            "pairs": len(pairs),
            "rep_teacher": _spearman(rep, cos),
            "rep_label": _spearman(rep, y),
            "teacher_label": _spearman(cos, y),
        }
    return out


def run(args: argparse.Namespace) -> dict:
    return student_runs_report("benchmarks/fit_gap.py", args, measure)


def markdown(report: dict) -> str:
    lines = [
        "# A-tap fit: training pairs against dev",
        "",
        f"Teacher `{report['teacher']}`; the first {report['pairs']} pairs of each split; "
        "Spearman × 100.",
        "",
        "| run | steps | train pairs | A-tap ~ teacher (train / dev) | A-tap ~ label "
        "(train / dev) | teacher ~ label (train / dev) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        t, d = r["train"], r["dev"]
        cells = [f"{100 * t[k]:.1f} / {100 * d[k]:.1f}" for k in ("rep_teacher", "rep_label",
                                                                   "teacher_label")]  # fmt: skip
        lines.append(f"| `{r['run']}` | {r['steps']} | {r['train_max']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


main = report_main(parse_args, run, markdown)

if __name__ == "__main__":
    run_script(main)
