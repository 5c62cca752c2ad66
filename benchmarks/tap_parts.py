"""Which tapped module carries a student's A-tap? Each part of a concat tap scored alone.

    python benchmarks/tap_parts.py RUN [RUN ...] --teacher TEACHER_RUN --pairs 1000 \\
        --out results/dev/atec/atec-tap-pool/tap_parts

A concat tap's representation is its modules' L2-normalised pooled ``A · x`` side by side
(``flipkd.student.tap``), so each module's part can be cut out of the served representation
and scored by itself. Per student run, on the first ``--pairs`` dev pairs: for each tapped
module alone and for the whole tap as served, the ROC-AUC and Spearman of the cosine with the
gold label, and its Spearman with the teacher's cosine. A part far below the whole is dead
weight in the concat; a part above it says the other part costs the served cosine.
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from flipkd.bench.script import (
    check_student_runs,
    report_main,
    student_runs_parser,
    student_runs_report,
)
from flipkd.errors import ConfigError, run_script


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = student_runs_parser(__doc__, "dev pairs (first N)").parse_args(argv)
    check_student_runs(args)
    return args


def split_parts(reps: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    """Cut ``[n, sum(widths)]`` concat representations into unit-norm per-module parts."""
    if reps.shape[1] != sum(widths):
        raise ValueError(f"representation width {reps.shape[1]} is not the sum of {widths}")
    parts = np.split(reps, np.cumsum(widths)[:-1], axis=1)
    return [p / np.clip(np.linalg.norm(p, axis=1, keepdims=True), 1e-12, None) for p in parts]


def pair_cosines(reps: np.ndarray, index: dict[str, int], pairs) -> np.ndarray:
    """Cosine of each pair's two unit-norm representations."""
    a = reps[[index[p.text_a] for p in pairs]]
    b = reps[[index[p.text_b] for p in pairs]]
    return (a * b).sum(1)


def scores(cos: np.ndarray, labels: np.ndarray, teacher: np.ndarray) -> dict:
    """ROC-AUC and Spearman (× 100) with the label, Spearman (× 100) with the teacher."""
    return {
        "roc_auc": round(float(roc_auc_score(labels, cos)), 4),
        "spearman_label": round(100 * float(spearmanr(cos, labels)[0]), 2),
        "spearman_teacher": round(100 * float(spearmanr(cos, teacher)[0]), 2),
    }


def gold_labels(pairs, run: Path) -> np.ndarray:
    """The pairs' gold labels as floats; one line naming the run when a pair has none or when
    only one class is present (ROC-AUC and the Spearman with the label are then undefined)."""
    unlabelled = sum(p.label is None for p in pairs)
    if unlabelled:
        raise ConfigError(f"{run}: {unlabelled} of the first {len(pairs)} dev pairs have no label")
    labels = np.asarray([p.label for p in pairs], dtype=float)
    if len(np.unique(labels)) < 2:
        raise ConfigError(
            f"{run}: the first {len(pairs)} dev pairs are all of one class (label "
            f"{labels[0]:g}); the scores need both: raise --pairs"
        )
    return labels


def measure(run: Path, teacher: Path, n: int) -> dict:
    """One student run: every tapped module's part alone, and the whole tap."""
    from flipkd.config import load_config
    from flipkd.export.load import load_matcher
    from flipkd.recipes.pipeline import load_splits
    from flipkd.student.lora import lora_a
    from flipkd.teacher.scoring import score_pairs

    cfg = load_config(run / "config.yaml")
    if cfg.student.tap.combine != "concat":
        raise ConfigError(f"{run}: tap combine is {cfg.student.tap.combine!r}; parts need concat")
    pairs = load_splits(cfg, ("dev",))["dev"][:n]
    labels = gold_labels(pairs, run)
    matcher = load_matcher(run, merge=False, verify_base=False)
    tap = matcher.student.tap
    widths = [lora_a(layer, tap.adapter).out_features for layer in tap.layers]
    texts = sorted({t for p in pairs for t in (p.text_a, p.text_b)})
    index = {t: i for i, t in enumerate(texts)}
    whole = matcher.encode(texts)
    teacher_cos = np.asarray(score_pairs(teacher, pairs, benchmark=cfg.data.benchmark), float)
    parts = split_parts(whole, widths)
    rows = [
        {
            "part": name,
            "dims": width,
            **scores(pair_cosines(part, index, pairs), labels, teacher_cos),
        }
        for name, width, part in zip(tap.names, widths, parts, strict=True)
    ]
    rows.append({"part": "whole tap (served)", "dims": sum(widths),
                 **scores(pair_cosines(whole, index, pairs), labels, teacher_cos)})  # fmt: skip
    return {"run": str(run), "pool": cfg.student.tap.pool, "pairs": len(pairs), "parts": rows,
            "teacher": scores(teacher_cos, labels, teacher_cos)}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    return student_runs_report("benchmarks/tap_parts.py", args, measure)


def markdown(report: dict) -> str:
    lines = [
        "# A-tap parts: each tapped module alone against the whole tap (dev)",
        "",
        f"Teacher `{report['teacher']}`; the first {report['pairs']} dev pairs; Spearman × 100.",
        "",
        "| run | pool | part | dims | ROC-AUC | Spearman with label | Spearman with teacher |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        for p in r["parts"]:
            lines.append(
                f"| `{r['run']}` | {r['pool']} | `{p['part']}` | {p['dims']} | {p['roc_auc']:.3f} "
                f"| {p['spearman_label']:.1f} | {p['spearman_teacher']:.1f} |"
            )
        t = r["teacher"]
        lines.append(
            f"| `{r['run']}` | – | teacher | – | {t['roc_auc']:.3f} | {t['spearman_label']:.1f} "
            "| 100.0 |"
        )
    return "\n".join(lines) + "\n"


main = report_main(parse_args, run, markdown)

if __name__ == "__main__":
    run_script(main)
