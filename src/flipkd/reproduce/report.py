"""Write ``table.md``, ``results.json`` and the plots of a ladder into its output folder."""

from __future__ import annotations

import time
from pathlib import Path

from flipkd.config import FlipkdConfig, config_hash
from flipkd.paths import atomic_file, write_json
from flipkd.provenance import commits_line, provenance, run_commits
from flipkd.reproduce import plots
from flipkd.reproduce.aggregate import aggregate_rows, markdown_table
from flipkd.reproduce.claims import check_claims, claims_markdown, teacher_ratios
from flipkd.reproduce.ladder import ROWS, build_config
from flipkd.reproduce.profiles import PROFILES
from flipkd.reproduce.records import run_name


def write_report(
    results: list[dict], *, benchmark: str, profile: str, out_dir: Path, seeds: int,
    overrides: list[str], command: list[str] | None = None, work_dir: Path | None = None,
    wall_seconds: float | None = None, started: float | None = None,
) -> dict:  # fmt: skip
    """Aggregate the runs and write every artifact; returns the results.json content.

    ``work_dir`` is where the ladder kept its runs (default: ``out_dir``); only the
    aggregate (table, results.json, plots) is written to ``out_dir``. Given ``started``
    (a ``time.perf_counter()`` value), the invocation's wall time is taken after the
    aggregation (the bootstrap can take minutes for a whole ladder), else ``wall_seconds``.
    """
    prof = PROFILES[profile]
    rows = aggregate_rows(
        results, [r for r in ROWS if r in {x["row"] for x in results}], prof.bootstrap
    )
    if started is not None:
        wall_seconds = time.perf_counter() - started
    cfg = build_config(prof, benchmark, "fip", 0, overrides)
    doc = _results_doc(results, rows, cfg, benchmark, profile, seeds, overrides, prof.bootstrap)
    doc["timing"]["invocation_wall_seconds"] = wall_seconds
    doc.update(provenance(command))
    out_dir.mkdir(parents=True, exist_ok=True)
    doc["plots"] = _write_plots(results, out_dir, work_dir or out_dir)
    write_json(out_dir / "results.json", doc)
    _write_table(out_dir / "table.md", doc, results, cfg)
    return doc


def _results_doc(
    results: list[dict], rows: list[dict], cfg: FlipkdConfig, benchmark: str, profile: str,
    seeds: int, overrides: list[str], bootstrap: int,
) -> dict:  # fmt: skip
    """results.json's content but the invocation's wall time, provenance and plots."""
    sizes = {
        split: len(results[0]["scores"][split]["labels"]) for split in ("dev", "test")
    } if results else {}  # fmt: skip
    return {
        "benchmark": benchmark, "profile": profile, "seeds": seeds, "rows": rows,
        "sizes": {**sizes, "train_max": cfg.data.max_train_pairs, "train_steps": cfg.train.steps,
                  "batch_size": cfg.train.batch_size},
        "student": cfg.student.model, "teacher": cfg.teacher.model, "overrides": overrides,
        "fip_config": cfg.model_dump(mode="json"), "fip_config_hash": config_hash(cfg),
        "timing": {
            # this command only: teachers, runs and the bootstrap (not the plots)
            "invocation_wall_seconds": None,
            "runs_wall_seconds": sum(r.get("wall_seconds", 0.0) for r in results),
            "runs_computed": sum(not r.get("read_back") for r in results),
            "runs_read_back": sum(bool(r.get("read_back")) for r in results),
        },
        "run_commits": run_commits(results),
        "claims": check_claims(rows, results, bootstrap),
        "fip_over_teacher": teacher_ratios(rows),
        "teacher_runs": {str(seed): t for seed, t in sorted(_teachers(results).items())},
    }  # fmt: skip


def _write_plots(results: list[dict], out_dir: Path, work_dir: Path) -> list[str]:
    """Draw the plots under ``out_dir/plots``; their paths relative to ``out_dir``."""
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    wanted = {
        plot_dir / "cosine_distributions.png": lambda f: plots.cosine_distributions(results, f),
        plot_dir / "atap_projection.png": lambda f: plots.projection(results, f),
        plot_dir / "training_curves.png": lambda f: plots.training_curves(
            _logged_runs(results, work_dir), f
        ),
    }
    made = [draw(path) for path, draw in wanted.items()]
    for path, result in zip(wanted, made, strict=True):
        if result is None:  # nothing to draw: no stale plot of an earlier report beside it
            path.unlink(missing_ok=True)
    return [str(p.relative_to(out_dir)) for p in made if p]


def _write_table(path: Path, doc: dict, results: list[dict], cfg: FlipkdConfig) -> None:
    """table.md: the header (sizes, timing, teachers, command), the table, ratios, claims."""
    sizes, rows = doc["sizes"], doc["rows"]
    header = (
        f"# {doc['benchmark']} / {doc['profile']}: {doc['seeds']} seed(s)\n\n"
        f"{_partial_line(rows, doc['seeds'])}"
        f"Student `{cfg.student.model}`, teacher `{cfg.teacher.model}`; dev {sizes.get('dev')} / "
        f"test {sizes.get('test')} pairs; {cfg.train.steps} steps of batch "
        f"{cfg.train.batch_size}.{_timing_line(doc['timing'])}\n"
        f"{_teacher_line(_teachers(results))}"
        "Mean over seeds; [95% bootstrap CI over test pairs]. Gen = generated-label probability, "
        "rep = A-tap cosine. Thresholds chosen on dev (F1), applied to test. Spearman ×100.\n\n"
        f"Command: `{doc['command']}` at `{doc['git_commit']}`. "
        f"{commits_line(doc['run_commits'])}\n\n"
    )
    with atomic_file(path) as fh:
        fh.write(header + markdown_table(rows) + "\n")
        if doc["fip_over_teacher"]:
            fh.write(f"\n{_ratio_line(doc['fip_over_teacher'])}\n")
        if doc["claims"]:
            fh.write(f"\n## The paper's claims at this scale\n\n{CLAIMS_NOTE}\n\n")
            fh.write(claims_markdown(doc["claims"]) + "\n")


CLAIMS_NOTE = (
    "Seed-paired: a claim *held* when it held in every seed, *not held* in none, *mixed* "
    "otherwise; *intervals* says whether the two rows' 95% bootstrap intervals over test pairs "
    "are disjoint (when they overlap, the difference is within test-sampling noise). Gen: "
    "ROC-AUC of the generated-label probability; rep: Spearman ×100 of the A-tap cosine; mix: "
    "ROC-AUC of the two z-scaled on dev and mixed half and half (what `/search` re-ranks with). "
    "\"mix vs gen\" compares the first row's mix with the second row's label. Written by "
    "`flipkd reproduce` (`src/flipkd/reproduce/claims.py`), not by hand."
)


def _logged_runs(results: list[dict], work_dir: Path) -> dict[str, Path]:
    """The training-curve runs: per student row, its lowest seed whose run folder has a
    training log (runs imported as records have none), named with the seed when not 0."""
    found: dict[str, tuple[int, Path]] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        run_dir = work_dir / "runs" / run_name(r)
        if (
            r["row"] in ("sft", "fip")
            and r["row"] not in found
            and (run_dir / "logs" / "train.jsonl").is_file()
        ):
            found[r["row"]] = (r["seed"], run_dir)
    return {
        row if seed == 0 else f"{row} (seed {seed})": run_dir
        for row, (seed, run_dir) in found.items()
    }


def _teachers(results: list[dict]) -> dict[int, dict]:
    """Seed → which model its teacher run kept (``teacher.workflow.kept_model``), where known."""
    return {r["seed"]: r["teacher_kept"] for r in results if r.get("teacher_kept")}


_KEPT_TEXT = {
    "checkpoint": "fine-tuned, step {step} of {steps} kept ({dev})",
    "base": "fine-tuned, but **the untrained base model kept** ({dev})",
    "zero-shot": "not fine-tuned (zero-shot)",
    "unknown": "its records unreadable",
}


def _teacher_line(teachers: dict[int, dict]) -> str:
    """One line saying, per seed, which model the teacher kept: a fine-tuned run keeps its
    base when that beat every checkpoint on dev (docs/quality.md §21)."""
    if not teachers:
        return ""
    cells = "; ".join(f"seed {seed}: {kept_text(t)}" for seed, t in sorted(teachers.items()))
    return f"Teacher: {cells}.\n"


def kept_text(t: dict) -> str:
    """``teacher.workflow.kept_model``'s record in words."""
    dev = ""
    if t["kept"] in ("checkpoint", "base"):
        best = t.get("checkpoint_value")
        best = "–" if best is None else f"{best:.3f}"
        dev = (
            f"dev {t['metric']} {t['base_value']:.3f} untrained, {best} best checkpoint, "
            f"{t['dev_pairs']:,} pairs"
        )
    return _KEPT_TEXT[t["kept"]].format(step=t.get("step"), steps=t.get("steps"), dev=dev)


RATIO_KEYS = ("f1", "accuracy", "roc_auc", "spearman", "rep_f1", "rep_roc_auc", "rep_spearman")


def _ratio_line(ratios: dict[str, float]) -> str:
    cells = ", ".join(f"{k} {ratios[k]:.2f}" for k in RATIO_KEYS if k in ratios)
    return f"`fip` ÷ teacher (seed means; the teacher is the reference): {cells}."


def _partial_line(rows: list[dict], seeds: int) -> str:
    short = [f"{r['name']} ({r['seeds']})" for r in rows if r["seeds"] < seeds]
    if not short:
        return ""
    return (
        f"**Partial**: these rows have fewer than {seeds} finished seeds so far: "
        f"{', '.join(short)}. Means and claims use the seeds that finished.\n\n"
    )


def _timing_line(timing: dict) -> str:
    wall = timing["invocation_wall_seconds"]
    if wall is None:
        return ""
    resumed = (
        f" ({timing['runs_read_back']} runs read back from an earlier invocation)"
        if timing["runs_read_back"] else ""
    )  # fmt: skip
    return f" Wall time of this command: {wall / 60:.1f} min{resumed}."
