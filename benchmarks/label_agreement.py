"""Does a student's generated label rank pairs as its teacher does? Per run, against the teacher.

    python benchmarks/label_agreement.py LADDER_WORK --split test --out results/.../agreement
    python benchmarks/label_agreement.py SWEEP/results.json --variant V \\
        --teacher 0=WORK/teachers/s0-... --teacher 1=... --out results/dev/.../agreement
    (add --baseline-variant plain when V trains only fip: its sft is the plain variant's)

The flipped terms train the A-tap towards the teacher's similarities; the generated label is
trained by L_gen alone and can only gain from them through the weights the two share. This
measures whether it does, on each run's per-pair scores: Spearman of the label's logit with
the teacher's cosine (and of the A-tap cosine with it, and of the label with the A-tap), and,
against the ``--baseline`` row of the same seed, where the label gains or loses ranking: the
pairs are cut into thirds by the teacher's cosine, separately for positives and negatives,
and each positive's share of negatives ranked below it (each negative's share of positives
ranked above it) is averaged per third — their mean over all positives is the ROC-AUC. A label
that learned from the teacher should gain where the teacher is right (high-cosine positives,
low-cosine negatives) and may lose where it is wrong.

The input is a ``flipkd reproduce --work`` folder (its teacher rows hold the teacher's cosine
per pair) or a ``flipkd sweep`` ``results.json`` (dev scores) with ``--teacher SEED=RUN`` for
each seed: that teacher run's cache scores the pairs, re-read with the run's own config.
Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from flipkd.bench.script import read_json_object, report_main
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.metrics import pair_metric
from flipkd.provenance import provenance

roc_auc = pair_metric("roc_auc", 0.5)
THIRDS = ("low", "mid", "high")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="a ladder's --work folder or a sweep's results")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--variant", help="the sweep variant to read (sweeps only)")
    parser.add_argument("--teacher", action="append", default=[], metavar="SEED=RUN",
                        help="a seed's teacher run (sweeps only; repeat per seed)")  # fmt: skip
    parser.add_argument("--baseline", default="sft", help="row the others are compared with")
    parser.add_argument("--baseline-variant",
                        help="the sweep variant to take the --baseline row from (default: "
                             "--variant; for a variant that trains only some rows)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = parser.parse_args(argv)
    args.teachers = {}
    for item in args.teacher:
        seed, sep, run = item.partition("=")
        if not sep or not seed.strip().isdigit():
            raise ConfigError(f"--teacher {item!r}: expected SEED=RUN_DIR, e.g. 0=teachers/s0-…")
        args.teachers[int(seed)] = Path(run)
    if args.file.is_dir() and (args.variant or args.teachers or args.baseline_variant):
        raise ConfigError(
            "--variant, --baseline-variant and --teacher are for a sweep's results.json, "
            "not a ladder"
        )
    if not args.file.is_dir() and (args.variant is None or not args.teachers):
        raise ConfigError(f"{args.file}: a sweep needs --variant and --teacher SEED=RUN")
    if not args.file.is_dir() and args.split != "dev":
        raise ConfigError(f"{args.file}: a sweep holds dev scores only (--split dev)")
    return args


def _ladder(work: Path, split: str) -> list[dict]:
    files = sorted(work.glob("runs/*/result.json"))
    if not files:
        raise ConfigError(f"{work}: no runs/*/result.json (a flipkd reproduce --work folder?)")
    runs = [read_json_object(f, "flipkd ladder result.json") for f in files]
    teacher = {r["seed"]: r["scores"][split]["rep"] for r in runs if r.get("row") == "teacher"}
    out = []
    for r in runs:
        if r.get("row") in ("teacher", None) or r.get("seed") not in teacher:
            continue
        out.append({"row": r["row"], "seed": r["seed"], **_scores(r, split, teacher[r["seed"]])})
    return out


def _teacher_cosines(run_dir: Path, teacher_run: Path, labels: list[int]) -> list[float]:
    """The teacher run's cached cosine for the dev pairs the student run was scored on."""
    from flipkd.config.loader import load_config
    from flipkd.recipes.pipeline import load_splits
    from flipkd.teacher.cache import default_cache_dir, open_teacher_cache

    cfg = load_config(run_dir / "config.yaml")
    dev = load_splits(cfg, ("dev",))["dev"]
    if [int(p.label) for p in dev] != labels:
        raise ConfigError(f"{run_dir}: its config's dev pairs are not the ones it was scored on")
    texts_a, texts_b = [p.text_a for p in dev], [p.text_b for p in dev]
    cache = open_teacher_cache(
        default_cache_dir(teacher_run, cfg.data.benchmark), teacher=teacher_run,
        texts=[*texts_a, *texts_b],
    )  # fmt: skip
    return np.asarray(cache.pair_sim(texts_a, texts_b), np.float64).tolist()


def _sweep(
    file: Path, variant: str, teachers: dict[int, Path], baseline: str, baseline_variant: str
) -> list[dict]:
    """The variant's runs of the teachers' seeds, its ``baseline`` row taken from
    ``baseline_variant``."""

    def wanted(r: dict) -> bool:
        home = baseline_variant if r.get("row") == baseline else variant
        return r.get("variant") == home and r.get("seed") in teachers

    runs = [
        r
        for r in read_json_object(file, "flipkd sweep results.json").get("runs") or []
        if isinstance(r, dict) and wanted(r)
    ]
    if not runs:
        raise ConfigError(f"{file}: no run of variant {variant!r} for seeds {sorted(teachers)}")
    cosines: dict[int, list[float]] = {}
    out = []
    for r in sorted(runs, key=lambda r: (r["seed"], r["row"])):
        labels = r["scores"]["dev"]["labels"]
        if r["seed"] not in cosines:
            cosines[r["seed"]] = _teacher_cosines(Path(r["run_dir"]), teachers[r["seed"]], labels)
        out.append({"row": r["row"], "seed": r["seed"], **_scores(r, "dev", cosines[r["seed"]])})
    return out


def _scores(run: dict, split: str, teacher: list[float]) -> dict:
    scores = run["scores"][split]
    if len(scores["labels"]) != len(teacher):
        raise ConfigError(f"run {run['row']} seed {run['seed']}: not the teacher's {split} pairs")
    p = np.clip(np.asarray(scores["gen"], np.float64), 1e-7, 1 - 1e-7)
    return {
        "labels": np.asarray(scores["labels"]),
        "gen": np.log(p / (1 - p)),
        "rep": np.asarray(scores["rep"], np.float64),
        "teacher": np.asarray(teacher, np.float64),
    }


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def ranked_share(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per positive, the share of negatives scored below it (ties count half); per negative,
    the share of positives scored above it. Each one's mean is the ROC-AUC."""
    pos, neg = np.sort(score[y == 1]), np.sort(score[y == 0])

    def below(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
        left, right = np.searchsorted(ref, values, "left"), np.searchsorted(ref, values, "right")
        return (left + right) / 2 / len(ref)

    return below(score[y == 1], neg), 1 - below(score[y == 0], pos)


def thirds(teacher: np.ndarray) -> np.ndarray:
    """0 / 1 / 2: the teacher-cosine third each value falls in (ties by order)."""
    order = np.argsort(np.argsort(teacher, kind="stable"), kind="stable")
    return np.minimum(order * 3 // len(teacher), 2)


def analyse(run: dict, base: dict | None) -> dict:
    y, t = run["labels"], run["teacher"]
    out = {
        "row": run["row"], "seed": run["seed"], "pairs": int(len(y)),
        "gen_roc_auc": roc_auc(run["gen"], y), "rep_roc_auc": roc_auc(run["rep"], y),
        "teacher_roc_auc": roc_auc(t, y), "rho_gen_teacher": _rho(run["gen"], t),
        "rho_rep_teacher": _rho(run["rep"], t), "rho_gen_rep": _rho(run["gen"], run["rep"]),
    }  # fmt: skip
    if base is None:
        return out
    if not np.array_equal(base["labels"], y):
        raise ConfigError(f"{run['row']} and its baseline of seed {run['seed']}: other pairs")
    mine, theirs = ranked_share(run["gen"], y), ranked_share(base["gen"], y)
    teacher_share = ranked_share(t, y)
    out["rho_gen_baseline_gen"] = _rho(run["gen"], base["gen"])
    out["by_teacher_third"] = {}
    for side, k in (("positives", 0), ("negatives", 1)):
        third = thirds(t[y == (1 if k == 0 else 0)])
        out["by_teacher_third"][side] = {
            name: {
                "pairs": int((third == i).sum()),
                "difference": float((mine[k] - theirs[k])[third == i].mean()),
                "baseline": float(theirs[k][third == i].mean()),
                "teacher": float(teacher_share[k][third == i].mean()),
            }
            for i, name in enumerate(THIRDS)
        }
    return out


def run(args: argparse.Namespace) -> dict:
    if args.file.is_dir():
        runs = _ladder(args.file, args.split)
    else:
        home = args.baseline_variant or args.variant
        runs = _sweep(args.file, args.variant, args.teachers, args.baseline, home)
    base = {r["seed"]: r for r in runs if r["row"] == args.baseline}
    if not base:
        rows = sorted({r["row"] for r in runs})
        hint = "" if args.file.is_dir() else "; --baseline-variant names a variant that has it"
        raise ConfigError(
            f"{args.file}: no {args.baseline!r} row to compare with (rows: {rows}){hint}"
        )
    results = [
        analyse(r, None if r["row"] == args.baseline else base.get(r["seed"]))
        for r in sorted(runs, key=lambda r: (r["row"] != args.baseline, r["row"], r["seed"]))
    ]
    argv = [str(args.file), "--split", args.split, "--baseline", args.baseline]
    if args.variant:
        argv += ["--variant", args.variant]
    if args.baseline_variant:
        argv += ["--baseline-variant", args.baseline_variant]
    for seed, path in sorted(args.teachers.items()):
        argv += ["--teacher", f"{seed}={path}"]
    return {
        **provenance(["python", "benchmarks/label_agreement.py", *argv, "--out", str(args.out)]),
        "file": str(args.file),
        "split": args.split,
        "variant": args.variant,
        "baseline_variant": args.baseline_variant or args.variant,
        "baseline": args.baseline,
        "runs": results,
    }


def _mean(runs: list[dict], key: str, digits: int = 3) -> str:
    values = [r[key] for r in runs]
    return f"{np.mean(values):.{digits}f} ({' / '.join(f'{v:.{digits}f}' for v in values)})"


def markdown(report: dict) -> str:
    base = report["baseline"]
    source = f"`{report['file']}`" + (
        f", variant `{report['variant']}`" if report["variant"] else ""
    )
    if report.get("baseline_variant") not in (None, report["variant"]):
        source += f" (`{base}` from variant `{report['baseline_variant']}`)"
    lines = [
        "# The generated label against the teacher, per pair",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{source}, {report['split']} pairs. Mean over seeds (each seed in brackets). "
        "ρ: Spearman over the pairs; gen: the generated label's logit; rep: the A-tap cosine.",
        "",
        "| row | pairs | gen AUC | rep AUC | teacher AUC | ρ(gen, teacher) | ρ(rep, teacher) "
        f"| ρ(gen, rep) | ρ(gen, `{base}` gen) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows: dict[str, list[dict]] = {}
    for r in report["runs"]:
        rows.setdefault(r["row"], []).append(r)
    for name, runs in rows.items():
        vs = _mean(runs, "rho_gen_baseline_gen") if "rho_gen_baseline_gen" in runs[0] else "–"
        lines.append(
            f"| {name} | {runs[0]['pairs']} | {_mean(runs, 'gen_roc_auc')} | "
            f"{_mean(runs, 'rep_roc_auc')} | {_mean(runs, 'teacher_roc_auc')} | "
            f"{_mean(runs, 'rho_gen_teacher')} | {_mean(runs, 'rho_rep_teacher')} | "
            f"{_mean(runs, 'rho_gen_rep')} | {vs} |"
        )
    lines += [
        "",
        f"## Where each label gains or loses on `{base}`'s, by the teacher's cosine",
        "",
        "Positives and negatives each cut into thirds by the teacher's cosine. Per third: the "
        f"label's mean share of the other class it ranks correctly, minus `{base}`'s (mean over "
        f"seeds; in brackets `{base}`'s share and the teacher's own). The teacher is right on "
        "high-cosine positives and low-cosine negatives, wrong on the others.",
        "",
        "| row | side | low third | mid third | high third |",
        "|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        if "by_teacher_third" not in runs[0]:
            continue
        for side in ("positives", "negatives"):
            cells = []
            for third in THIRDS:
                cell = [r["by_teacher_third"][side][third] for r in runs]
                diff = np.mean([c["difference"] for c in cell])
                b, t = np.mean([c["baseline"] for c in cell]), np.mean([c["teacher"] for c in cell])
                cells.append(f"{diff:+.3f} ({b:.3f}; teacher {t:.3f})")
            lines.append(f"| {name} | {side} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


main = report_main(parse_args, run, markdown)

if __name__ == "__main__":
    run_script(main)
