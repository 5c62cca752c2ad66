"""Tables of a dev sweep: every candidate's dev metrics in each mode, time, and resolution.

``results.json`` keeps every run (dev scores included, so any other metric can be computed
later); ``table.md`` shows, per variant and row, the mean over seeds of gen ROC-AUC, gen
label accuracy (P(positive word) ≥ 0.5), rep ROC-AUC, rep Spearman, mix ROC-AUC (the two
mixed as ``/search`` re-ranks, :mod:`flipkd.mixing`), train and eval seconds,
and the paired-bootstrap 95% interval of the ROC-AUC difference to the first variant (same
row, same seed, same dev pairs resampled together): an interval that spans 0 is a
difference this dev set cannot resolve. A spec with ``row_baseline`` also gets, per variant,
every other row against that row (same variant, same seed): "does `fip` beat `sft` here?";
with ``row_baseline_variant`` that row is taken from one variant for all of them: "does `fip`
with option X beat the plain `sft`?"; a variant that does not train that row
(``variant_rows``) takes the first variant's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from flipkd.evaluation.metrics import bootstrap_interval, resampled_pair_metric
from flipkd.modes import PAIR_MODES, metric_prefix
from flipkd.paths import atomic_file, write_json
from flipkd.provenance import commits_line, provenance, run_commits

BOOTSTRAP = 1000
COLUMNS = (
    ("gen AUC", "roc_auc", 3), ("gen acc", "gen_label_accuracy", 3),
    ("rep AUC", "rep_roc_auc", 3), ("rep Spearman", "rep_spearman", 1),
    ("mix AUC", "mix_roc_auc", 3),
)  # fmt: skip


def paired_difference(a: dict, b: dict, mode: str, seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC of ``a`` minus ``b`` on the same dev pairs, with a paired 95% interval."""
    y = np.asarray(a["scores"]["dev"]["labels"])
    sa, sb = np.asarray(a["scores"]["dev"][mode]), np.asarray(b["scores"]["dev"][mode])

    def difference(index: np.ndarray) -> np.ndarray:
        da = resampled_pair_metric("roc_auc", 0.5, sa, y, index)
        return da - resampled_pair_metric("roc_auc", 0.5, sb, y, index)

    point = float(a["dev"][_metric(mode)] - b["dev"][_metric(mode)])
    lo, hi = bootstrap_interval(difference, len(y), BOOTSTRAP, seed)
    return point, lo, hi


def _metric(mode: str) -> str:
    return f"{metric_prefix(mode)}roc_auc"


def _cell(values: list[float | None], digits: int) -> str:
    if any(x is None for x in values):  # the teacher's gen acc: no generated label
        return "–"
    v = np.asarray(values, dtype=float)
    text = f"{v.mean():.{digits}f}"
    return text + (f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else "")


def _paired_against(runs: list[dict], by: dict, variant: str, row: str) -> dict[str, list]:
    """Per mode, each run's paired ROC-AUC difference to the run of ``variant`` / ``row`` with
    the same seed (runs without one are skipped)."""
    out = {}
    for mode in PAIR_MODES:
        if any(_metric(mode) not in r["dev"] for r in runs):
            continue
        diffs = [
            list(paired_difference(r, by[(variant, row, r["seed"])], mode))
            for r in runs if (variant, row, r["seed"]) in by
        ]  # fmt: skip
        if diffs:
            out[mode] = diffs
    return out


def summarise(
    records: list[dict],
    row_baseline: str | None = None,
    baseline_variant: str | Mapping[str, str] | None = None,
) -> list[dict]:
    """One entry per (variant, row): seeds, mean dev metrics, times, difference to the first
    variant (same row) and, given ``row_baseline``, to that row (same variant, or
    ``baseline_variant``'s for every variant, or per variant as a mapping:
    :meth:`SweepSpec.baseline_homes`)."""
    variants = list(dict.fromkeys(r["variant"] for r in records))
    rows = list(dict.fromkeys(r["row"] for r in records))
    base = variants[0]
    by = {(r["variant"], r["row"], r["seed"]): r for r in records}
    out = []
    for row in rows:
        for variant in variants:
            runs = [r for r in records if r["variant"] == variant and r["row"] == row]
            if not runs:
                continue
            entry = {
                "variant": variant, "row": row, "seeds": [r["seed"] for r in runs],
                "overrides": runs[0]["overrides"],
                "dev": {k: [r["dev"][k] for r in runs] for k in runs[0]["dev"]},
                "train_seconds": _train_seconds(runs),
                "eval_seconds": float(np.mean([r["eval_seconds"] for r in runs])),
            }  # fmt: skip
            homes = {Path(r["run_dir"]).parent.name for r in runs if r.get("run_dir")}
            if len(homes) == 1 and (home := homes.pop()) != variant:
                entry["same_runs_as"] = home  # its config is that variant's: computed once
            if variant != base:
                same_row = _paired_against(runs, by, base, row)
                entry.update({f"{mode}_auc_vs_{base}": d for mode, d in same_row.items()})
            if row_baseline and row not in (row_baseline, "teacher"):
                home = _home(baseline_variant, variant)
                if home != variant:
                    entry["baseline_from"] = home
                same_variant = _paired_against(runs, by, home, row_baseline)
                entry.update(
                    {f"{mode}_auc_vs_row_{row_baseline}": d for mode, d in same_variant.items()}
                )
            out.append(entry)
    return out


def _home(baseline_variant: str | Mapping[str, str] | None, variant: str) -> str:
    """The variant whose baseline row ``variant``'s rows are compared with."""
    if isinstance(baseline_variant, Mapping):
        return baseline_variant.get(variant, variant)
    return baseline_variant or variant


def _train_seconds(runs: list[dict]) -> float | None:
    """Mean training time over the runs that recorded one; None when none did.

    A run read back from before training time was kept across invocations recorded only
    its last invocation (``train_seconds_known`` false); averaging it in would understate
    the cost.
    """
    known = [r["train_seconds"] for r in runs if r.get("train_seconds_known", True)]
    return float(np.mean(known)) if known else None


UNKNOWN_TIME = (
    " Train s `–`: not recorded (runs read back from before training time was kept across"
    " invocations)."
)


SAME_RUNS = (
    " `(= V's runs)`: the variant leaves this row's config as V has it (e.g. a change to the"
    " representation terms, for `sft`), so its runs are V's, computed once."
)


def _variant_cell(entry: dict) -> str:
    same = entry.get("same_runs_as")
    return entry["variant"] + (f" (= {same}'s runs)" if same else "")


def _seconds_cell(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.0f}"


def _diff_cell(entry: dict, mode: str, base: str) -> str:
    return _diffs_text(entry.get(f"{mode}_auc_vs_{base}"))


def _diffs_text(diffs: list | None) -> str:
    """One seed: ``d [lo, hi]``; several: the mean, how many intervals lie above 0, each."""
    if not diffs:
        return "–"
    each = "; ".join(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in diffs)
    if len(diffs) == 1:
        return each
    above = sum(d[1] > 0 for d in diffs)
    return f"{np.mean([d[0] for d in diffs]):+.3f} ({above}/{len(diffs)} above 0: {each})"


def teachers_line(records: list[dict]) -> str:
    """Which model each teacher run behind the records kept, one cell a run (seeds named)."""
    from flipkd.reproduce.report import kept_text

    runs: dict[str, tuple[dict, set[int]]] = {}
    for r in records:
        if r.get("teacher_kept"):
            runs.setdefault(r["teacher_kept"]["run"], (r["teacher_kept"], set()))[1].add(r["seed"])
    cells = [
        f"`{Path(run).name}` (seed {', '.join(map(str, sorted(seeds)))}): {kept_text(kept)}"
        for run, (kept, seeds) in sorted(runs.items())
    ]
    return f"Teachers: {'; '.join(cells)}." if cells else ""


def markdown(
    entries: list[dict], spec, n_dev: int, command: list[str],
    commits: dict[str, int] | None = None, teachers: str = "",
) -> str:  # fmt: skip
    base = next(iter(spec.variants))
    head = ["variant", "row", "seeds", *(c[0] for c in COLUMNS), "train s", "eval s",
            f"Δgen AUC vs {base} [95%]", f"Δrep AUC vs {base} [95%]"]  # fmt: skip
    lines = [
        f"# Dev sweep `{spec.name}` ({spec.benchmark}, profile `{spec.profile}`, "
        f"{n_dev} dev pairs)",
        "",
        f"Command: `{' '.join(command)}`",
        "",
        *([commits_line(commits), ""] if commits else []),
        f"Shared overrides: `{' '.join(spec.overrides) or '(none)'}`",
        "",
        *([teachers, ""] if teachers else []),
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in entries:
        # Spearman ×100; "–" where a run has no such score (the teacher's gen acc)
        cells = [_cell(e["dev"].get(key, [None]), digits) for _, key, digits in COLUMNS]
        lines.append(
            f"| {_variant_cell(e)} | {e['row']} | {len(e['seeds'])} | " + " | ".join(cells)
            + f" | {_seconds_cell(e['train_seconds'])} | {e['eval_seconds']:.0f} | "
            + f"{_diff_cell(e, 'gen', base)} | {_diff_cell(e, 'rep', base)} |"
        )  # fmt: skip
    lines += [
        "",
        "Train s / eval s: wall seconds here. Runs of one `flipkd sweep` process share the "
        "frozen-prefix cache, so a variant run after another with the same adapted layers "
        "trains and scores faster (and a shared machine slows any run): read them as rough."
        + (UNKNOWN_TIME if any(e["train_seconds"] is None for e in entries) else "")
        + (SAME_RUNS if any("same_runs_as" in e for e in entries) else ""),
        "", "Variants (overrides on top of the profile):", "",
    ]  # fmt: skip
    lines += [
        f"- `{name}`: `{' '.join(ov) or '(profile as is)'}`" for name, ov in spec.variants.items()
    ]
    if spec.row_baseline:
        lines += _row_table(entries, spec.row_baseline, spec.row_baseline_variant)
    return "\n".join(lines) + "\n"


def _row_table(entries: list[dict], baseline: str, variant: str | None = None) -> list[str]:
    """Every row against the baseline row inside its variant (or ``variant``'s), paired by seed
    and dev pair."""
    key = f"auc_vs_row_{baseline}"
    which = f"`{variant}`'s" if variant else "same variant unless marked"
    lines = [
        "", f"## Rows against `{baseline}` ({which}, same seed, paired over dev pairs)", "",
        "One seed: the difference and its 95% interval; several: the mean difference and in how "
        "many seeds the interval lies above 0.", "",
        f"| variant | row | Δgen AUC vs {baseline} [95%] | Δrep AUC vs {baseline} [95%] "
        f"| Δmix AUC vs {baseline} [95%] |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for e in entries:
        if any(f"{mode}_{key}" in e for mode in PAIR_MODES):
            cells = " | ".join(_diffs_text(e.get(f"{mode}_{key}")) for mode in PAIR_MODES)
            borrowed = (
                f" (vs `{e['baseline_from']}`'s)" if "baseline_from" in e and not variant else ""
            )
            lines.append(f"| {_variant_cell(e)}{borrowed} | {e['row']} | {cells} |")
    return lines


DIAG_COLUMNS = (
    ("step", "step"), ("gen", "L_gen"), ("collapse/gen", "prior"), ("contrast", "L_con"),
    ("collapse/contrast", "collapse"), ("dist", "L_dist"), ("collapse/dist", "collapse"),
    ("rep/mean_cos", "mean cos"), ("rep/eff_rank", "eff. rank"), ("grad/gen_A", "∇gen A"),
    ("grad/gen_B", "∇gen B"), ("grad/contrast_A", "∇con A"), ("grad/contrast_B", "∇con B"),
    ("grad/dist_A", "∇dist A"), ("grad/dist_B", "∇dist B"), ("gen/margin_gap", "margin gap"),
)  # fmt: skip


def diagnostics_markdown(records: list[dict]) -> str:
    """The diagnosed steps of every run (``train.diagnose_every``), one table per run."""
    import json

    parts = ["# Training diagnostics of the sweep's runs", "",
             "Per diagnosed step: each loss term beside its collapse value (prior for L_gen), "
             "the A-tap's anisotropy, each weighted term's gradient norm on LoRA A and B, "
             "and the label-margin gap between gold positives and negatives "
             "(`src/flipkd/trainer/diagnose.py`).", ""]  # fmt: skip
    for rec in records:
        log = Path(rec.get("run_dir", "")) / "logs" / "train.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(x) for x in log.read_text().splitlines()]
        rows = [
            r for r in rows if r.get("kind") == "train" and any(k.startswith("grad/") for k in r)
        ]
        if not rows:
            continue
        parts += [f"## {rec['variant']} / {rec['row']} / seed {rec['seed']}", "",
                  "| " + " | ".join(h for _, h in DIAG_COLUMNS) + " |",
                  "|" + "---|" * len(DIAG_COLUMNS)]  # fmt: skip
        for r in rows:
            cells = [f"{r[k]:.3g}" if isinstance(r.get(k), float) else str(r.get(k, "–"))
                     for k, _ in DIAG_COLUMNS]  # fmt: skip
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts) + "\n"


CURVE_COLUMNS = (
    ("step", "step"), ("gen_roc_auc", "gen AUC"), ("gen_accuracy", "gen acc @F1 thr."),
    ("rep_roc_auc", "rep AUC"), ("rep_spearman", "rep Spearman"),
)  # fmt: skip


def dev_curves(records: list[dict]) -> list[dict]:
    """The in-training dev evaluations (``train.eval_every``) of every run, from its log."""
    import json

    curves = []
    for rec in records:
        log = Path(rec.get("run_dir", "")) / "logs" / "train.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        points = [{k: r.get(k) for k, _ in CURVE_COLUMNS} for r in rows if r.get("kind") == "dev"]
        if points:
            curves.append({"variant": rec["variant"], "row": rec["row"], "seed": rec["seed"],
                           "points": points})  # fmt: skip
    return curves


def curves_markdown(curves: list[dict]) -> str:
    """Dev metrics at each in-training evaluation: where a curve still rises or flattens."""
    parts = ["# Dev curves of the sweep's runs", "",
             "Dev split scored during training every `train.eval_every` steps (same pairs as "
             "the table; the step-N row of a run is its checkpoint at step N). Accuracy here is at "
             "the dev-F1-best threshold (the trainer's own dev check); the table's gen acc is "
             "the generated label's (p(yes) ≥ 0.5).", "",
             "| variant | row | seed | " + " | ".join(h for _, h in CURVE_COLUMNS) + " |",
             "|" + "---|" * (3 + len(CURVE_COLUMNS))]  # fmt: skip
    for curve in curves:
        for point in curve["points"]:
            cells = [f"{v:.3f}" if isinstance(v, float) and k != "rep_spearman" else
                     f"{v:.1f}" if isinstance(v, float) else str(v if v is not None else "–")
                     for (k, _), v in zip(CURVE_COLUMNS, point.values(), strict=True)]  # fmt: skip
            parts.append(f"| {curve['variant']} | {curve['row']} | {curve['seed']} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(parts) + "\n"


def missing_markdown(missing: list[dict], total: int) -> str:
    """The runs a partial report leaves out, each with how far it got; "" when none."""
    if not missing:
        return ""

    def progress(r: dict) -> str:
        if r.get("checkpoint_step") is None:
            return "no checkpoint yet" if Path(r["run_dir"]).is_dir() else "not started"
        return f"at step {r['checkpoint_step']} of {r['steps']}"

    items = [f"- `{r['variant']}` / {r['row']} / seed {r['seed']}: {progress(r)} (`{r['run_dir']}`)"
             for r in missing]  # fmt: skip
    return "\n".join([
        "", f"## Partial: {len(missing)} of {total} runs have not finished", "",
        "Written with `--finished-only`: the table above holds the finished runs only, so a "
        "variant's means may cover other seeds than the first variant's; the Δ columns pair "
        "runs of the same seed and skip the rest. Not finished:", "", *items,
    ]) + "\n"  # fmt: skip


def write_sweep_report(records: list[dict], spec, out_dir: Path, command: list[str]) -> Path:
    """Write ``results.json`` and ``table.md`` into ``out_dir``; returns the table's path.

    Records marked ``missing`` (runs a ``--finished-only`` sweep found unfinished) are left
    out of every number and listed in the table and in ``results.json``.
    """
    missing = [r for r in records if r.get("missing")]
    records = [r for r in records if not r.get("missing")]
    entries = summarise(records, spec.row_baseline, spec.baseline_homes())
    n_dev = len(records[0]["scores"]["dev"]["labels"]) if records else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = dev_curves(records)
    write_json(
        out_dir / "results.json",
        {"spec": spec.model_dump(), "summary": entries, "runs": records, "dev_curves": curves,
         "missing_runs": missing, "run_commits": run_commits(records), **provenance(command)},
    )  # fmt: skip
    table = out_dir / "table.md"
    with atomic_file(table) as fh:
        fh.write(
            markdown(entries, spec, n_dev, command, run_commits(records), teachers_line(records))
            + missing_markdown(missing, len(records) + len(missing))
        )
    diagnostics = diagnostics_markdown(records)
    if "## " in diagnostics:
        with atomic_file(out_dir / "diagnostics.md") as fh:
            fh.write(diagnostics)
    if curves:
        with atomic_file(out_dir / "dev_curves.md") as fh:
            fh.write(curves_markdown(curves))
    return table
