"""Pair matching by the generated label mixed with the A-tap cosine, as ``/search`` re-ranks.

    flipkd sweep SPEC --out SWEEP                     # dev scores of every run, both modes
    python benchmarks/pair_mix.py SWEEP/results.json --out results/dev/.../mix
    python benchmarks/pair_mix.py LADDER_WORK --split test --out results/.../mix   # a ladder

A `fip` student carries two scorers of a pair: its generated label (gen) and the cosine of
its A-tap representations (rep). ``/search`` with ``"rerank": true`` orders candidates by
``w · z(logit label) + (1 − w) · z(cosine)`` (:func:`flipkd.mixing.mix_scores`;
w = 0.5 served by default, chosen on FAQ dev). This scores pairs the same way, ``z`` taking
each score's mean and spread from the run's dev pairs (so a test pair's score does not depend
on the other test pairs, as a threshold chosen on dev), and reports each run's ROC-AUC for
every ``--weights`` w (w = 1 is gen, w = 0 is rep) and, per variant and weight, each row's mix
against the ``--baseline`` row's generated label and against that row mixed the same way, on
the same seed (paired over the pairs, flipkd's one bootstrap): does the model `fip` trains
match pairs better, used as it is served, than `sft`'s label? The input is a ``flipkd sweep``
``results.json`` (dev scores) or a ``flipkd reproduce --work`` folder (each run's
``result.json`` holds dev and test scores). Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from flipkd.bench.script import (
    add_mix_weight_options,
    check_mix_weights,
    read_json_object,
    report_main,
)
from flipkd.errors import ConfigError, run_script
from flipkd.evaluation.metrics import bootstrap_interval, pair_metric, resampled_pair_metric
from flipkd.mixing import mix_scores
from flipkd.provenance import provenance

WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
roc_auc = pair_metric("roc_auc", 0.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="a sweep's results.json or a ladder's --work")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--baseline", default="sft", help="row whose generated label is the bar")
    add_mix_weight_options(parser, WEIGHTS, resamples=1000)
    args = parser.parse_args(argv)
    check_mix_weights(args)
    return args


def _sweep_runs(file: Path) -> list[dict]:
    runs = read_json_object(file, "flipkd sweep results.json").get("runs") or []
    return [r for r in runs if isinstance(r, dict)]


def _ladder_runs(work: Path) -> list[dict]:
    files = sorted(work.glob("runs/*/result.json"))
    if not files:
        raise ConfigError(f"{work}: no runs/*/result.json (a flipkd reproduce --work folder?)")
    runs = [read_json_object(f, "flipkd ladder result.json") for f in files]
    return [{**r, "variant": "ladder"} for r in runs]


def load_runs(source: Path, split: str = "dev") -> list[dict]:
    """``{variant, row, seed, split, dev}`` of each run with both modes' scores on ``split``
    and on dev (the scales), from a sweep's results.json or a ladder's work folder."""
    runs = _ladder_runs(source) if Path(source).is_dir() else _sweep_runs(source)
    out = []
    for r in runs:
        scores = r.get("scores") or {}
        if r.get("row") == "teacher":  # one cosine, no generated label to mix
            continue
        if all({"gen", "rep", "labels"} <= set(scores.get(s) or {}) for s in {split, "dev"}):
            keep = ("variant", "row", "seed")
            out.append(
                {**{k: r.get(k) for k in keep}, "split": scores[split], "dev": scores["dev"]}
            )
    if not out:
        which = "dev" if split == "dev" else f"{split} and dev"
        raise ConfigError(f"{source}: no run with {which} scores in both modes")
    return out


def mixed(run: dict, weight: float) -> np.ndarray:
    """The run's ``split`` pairs at ``weight``, standardised by its dev pairs' scores."""
    split, dev = run["split"], run["dev"]
    reference = (dev["rep"], dev["gen"])
    return np.asarray(mix_scores(split["rep"], split["gen"], weight, reference), np.float64)


def paired(score: np.ndarray, bar: np.ndarray, y: np.ndarray, n: int, seed: int) -> dict:
    """ROC-AUC of ``score`` minus ``bar`` on the same pairs, with its paired 95% interval."""

    def diff(index: np.ndarray) -> np.ndarray:
        high = resampled_pair_metric("roc_auc", 0.5, score, y, index)
        return high - resampled_pair_metric("roc_auc", 0.5, bar, y, index)

    return {
        "diff": roc_auc(score, y) - roc_auc(bar, y),
        "ci": list(bootstrap_interval(diff, len(y), n, seed)),
    }


def run(args: argparse.Namespace) -> dict:
    runs = load_runs(args.file, args.split)
    by = {(r["variant"], r["row"], r["seed"]): r for r in runs}
    rows = []
    for r in sorted(runs, key=lambda r: (r["variant"], r["row"], r["seed"])):
        y = np.asarray(r["split"]["labels"])
        base = by.get((r["variant"], args.baseline, r["seed"]))
        entry = {"variant": r["variant"], "row": r["row"], "seed": r["seed"], "weights": {}}
        for w in args.weights:
            score = mixed(r, w)
            cell: dict = {"roc_auc": roc_auc(score, y)}
            if base is not None and base is not r:
                if not np.array_equal(np.asarray(base["split"]["labels"]), y):
                    raise ConfigError(f"{args.file}: {r['row']} and {args.baseline} of seed "
                                      f"{r['seed']} were scored on different pairs")  # fmt: skip
                # the baseline's generated label, and the baseline scored the same way
                for key, bar in (
                    ("baseline_gen", mixed(base, 1.0)),
                    ("baseline_mix", mixed(base, w)),
                ):
                    cell[key] = paired(score, bar, y, args.resamples, args.seed)
            entry["weights"][f"{w:g}"] = cell
        rows.append(entry)
    return {
        **provenance(["python", "benchmarks/pair_mix.py", *_argv(args)]),
        "file": str(args.file),
        "split": args.split,
        "baseline": args.baseline,
        "resamples": args.resamples,
        "seed": args.seed,
        "runs": rows,
    }


def _argv(args: argparse.Namespace) -> list[str]:
    return [str(args.file), "--split", args.split, "--weights", *map(str, args.weights),
            "--baseline", args.baseline, "--resamples", str(args.resamples),
            "--seed", str(args.seed), "--out", str(args.out)]  # fmt: skip


def markdown(report: dict) -> str:
    weights = list(report["runs"][0]["weights"])
    base = report["baseline"]
    lines = [
        "# Pair matching by the label, the A-tap cosine, or a mix",
        "",
        f"Command: `{report['command']}`",
        "",
        f"`{report['file']}`: {report['split']} ROC-AUC of `w · z(logit label) + (1 − w) · "
        "z(cosine)` (z: each score's mean and spread on the run's dev pairs; w = 1 the "
        "generated label, w = 0 the A-tap cosine), "
        "mean over seeds. The other rows against the "
        f"`{base}` row of the same variant and seed, paired over the pairs "
        f"({report['resamples']} resamples): the mean difference and in how many seeds its "
        "interval lies above 0.",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in report["runs"]:
        groups.setdefault((r["variant"], r["row"]), []).append(r)
    tables = (
        ("ROC-AUC", None),
        (f"Against `{base}`'s generated label (the ladder's gen baseline)", "baseline_gen"),
        (f"Against `{base}` mixed at the same w", "baseline_mix"),
    )
    for title, key in tables:
        lines += ["", f"## {title}", "", "| variant | row | " +
                  " | ".join(f"w = {w}" for w in weights) + " |",
                  "|---|---|" + "---|" * len(weights)]  # fmt: skip
        for (variant, row), runs in groups.items():
            if key is not None and row == base:
                continue
            lines.append(f"| {variant} | {row} | " + " | ".join(
                _cell(runs, w, key) for w in weights) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _cell(runs: list[dict], weight: str, key: str | None) -> str:
    if key is None:
        return f"{np.mean([r['weights'][weight]['roc_auc'] for r in runs]):.3f}"
    diffs = [r["weights"][weight][key] for r in runs if key in r["weights"][weight]]
    if not diffs:
        return "–"
    up = sum(d["ci"][0] > 0 for d in diffs)
    return f"{np.mean([d['diff'] for d in diffs]):+.3f} ({up}/{len(diffs)})"


main = report_main(parse_args, run, markdown)

if __name__ == "__main__":
    run_script(main)
