"""Ratios, targets and the committed files (``bench.json`` + ``README.md``) of a bench run."""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flipkd.paths import atomic_file, write_json

# name -> (ratio key, threshold, comparison)
# The FLOP targets take the matmul peak measured right before and after that mode's steps
# (the higher of the two); ``*_flops_vs_run_peak`` keeps the ratio to the run's start/end peak.
TARGETS: dict[str, tuple[str, float, Callable[[float, float], bool]]] = {
    "rep-only training useful FLOP/s >= 0.7 x matmul peak": ("rep_flops_vs_peak", 0.7, operator.ge),
    "full training useful FLOP/s >= 0.7 x matmul peak": ("full_flops_vs_peak", 0.7, operator.ge),
    "rep-only training pairs/s >= 1.5 x peer": ("rep_pairs_vs_peer", 1.5, operator.ge),
    "encode texts/s >= 1.2 x peer": ("encode_vs_peer", 1.2, operator.ge),
    "LoRA training peak RSS <= 8 GB": ("train_peak_rss_gb", 8.0, operator.le),
}
SHARED_NOTE = (
    "The machine (2 CPU cores) is shared with other jobs; the load average at the start and end "
    "of the run and of each task is recorded (the bench itself keeps 2 threads busy, so a 1-minute "
    "load near 2 means nothing else ran), and ratios are taken within this one run. Each training "
    "mode's FLOP ratio is taken against the matmul peak measured in the same process right before "
    "and after its steps (the higher of the two); the ratio to the run's start/end peak is shown "
    "beside it."
)


def peak_gflops(results: dict[str, Any]) -> float | None:
    """The higher of the two matmul peaks (start and end): the stricter denominator."""
    peaks = [results[k]["peak_gflops"] for k in ("matmul_peak", "matmul_peak_end") if k in results]
    return max(peaks) if peaks else None


def adjacent_peak(mode_result: dict[str, Any]) -> float | None:
    """The matmul peak measured right before and after one training mode (the higher)."""
    return mode_result.get("matmul_peak_adjacent", {}).get("peak_gflops")


def student_ratios(entry: dict[str, Any], peak: float | None) -> dict[str, float]:
    """The ratios the targets are stated in, for whatever parts were measured."""
    train, out = entry.get("train", {}), {}
    for mode in ("rep", "full"):
        if mode not in train:
            continue
        flops, near = train[mode]["useful_flop_per_s"], adjacent_peak(train[mode])
        if near or peak:
            out[f"{mode}_flops_vs_peak"] = flops / ((near or peak) * 1e9)
        if near and peak:
            out[f"{mode}_flops_vs_run_peak"] = flops / (peak * 1e9)
    if "rep" in train and "peer" in entry:
        out["rep_pairs_vs_peer"] = train["rep"]["pairs_per_s"] / entry["peer"]["pairs_per_s"]
    if "encode" in entry:
        out["encode_vs_peer"] = entry["encode"]["ratio"]
    if "peak_rss_gb" in train:
        out["train_peak_rss_gb"] = train["peak_rss_gb"]
    return out


def finalize(results: dict[str, Any]) -> dict[str, Any]:
    """Add per-student ratios and the target table (met or not) to ``results``."""
    peak = peak_gflops(results)
    rows = []
    for student, entry in results["students"].items():
        entry["ratios"] = ratios = student_ratios(entry, peak)
        for name, (key, threshold, ok) in TARGETS.items():
            if key in ratios:
                value = ratios[key]
                rows.append(
                    {
                        "student": student,
                        "target": name,
                        "value": round(value, 4),
                        "threshold": threshold,
                        "met": bool(ok(value, threshold)),
                    }
                )
    results["peak_gflops_used"] = peak
    results["targets"] = rows
    results["note"] = SHARED_NOTE
    return results


def _train_line(student: str, mode: str, t: dict[str, Any]) -> str:
    return (
        f"{student} {mode}: {t['mean_step_s']:.2f} s/step, {t['pairs_per_s']:.2f} pairs/s, "
        f"{t['tokens_per_s']:.0f} tok/s, {t['useful_flop_per_s'] / 1e9:.1f} useful GFLOP/s"
    )


def summary_lines(results: dict[str, Any]) -> list[str]:
    """What the CLI prints: the ratios and whether each target was met."""
    lines = []
    if results.get("peak_gflops_used"):
        lines.append(f"matmul peak: {results['peak_gflops_used']} GFLOP/s")
    for student, entry in results["students"].items():
        train = entry.get("train", {})
        lines += [_train_line(student, m, train[m]) for m in ("rep", "full") if m in train]
        lines += [f"{student} {k}: {v:.3f}" for k, v in entry.get("ratios", {}).items()]
    lines += [
        f"[{'met' if r['met'] else 'NOT met'}] {r['student']}: {r['target']} (got {r['value']})"
        for r in results.get("targets", [])
    ]
    return lines


def _fmt(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A markdown table (floats to 2 decimals)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def _loads(results: dict[str, Any], key: str) -> str:
    return " / ".join(f"{x:.2f}" for x in results[key])


def _header(results: dict[str, Any], title: str) -> list[str]:
    prov = results["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    machine = ", ".join(f"{k} {v}" for k, v in prov["machine"].items())
    return [
        f"# {title}",
        "",
        "Written by `flipkd bench`; do not edit by hand.",
        "",
        f"- command: `{prov['command']}`",
        f"- date: {prov['date']}; git commit: {prov['git_commit']}",
        f"- versions: {versions}",
        f"- machine: {machine}; environment: {results.get('env', {})}",
        f"- load average (1/5/15 min) at start: {_loads(results, 'load_average_start')}; "
        f"at end: {_loads(results, 'load_average_end')}",
        f"- {results['note']}",
        "",
    ]


LOAD_KEYS = ("load_average_start", "load_average_end")
TRAIN_HEADER = [
    "student", "benchmark", "mode", "s/step mean", "s/step median", "pairs/s", "tokens/s",
    "useful GFLOP/s", "matmul peak next to it", "÷ that peak", "padding", "peak RSS GB",
    "load avg (1 min) start / end",
]  # fmt: skip


def _train_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for student, entry in results["students"].items():
        train = entry.get("train", {})
        load = " / ".join(f"{train[k][0]:.2f}" for k in LOAD_KEYS if k in train) or "-"
        for mode in ("rep", "full"):
            if mode in train:
                t, near = train[mode], adjacent_peak(train[mode])
                flops = t["useful_flop_per_s"] / 1e9
                rows.append([
                    student, entry["benchmark"], mode, t["mean_step_s"], t["median_step_s"],
                    t["pairs_per_s"], round(t["tokens_per_s"]), flops, near or "-",
                    f"{flops / near:.3f}" if near else "-",
                    f"{t['padding_fraction']:.0%}", train["peak_rss_gb"], load,
                ])  # fmt: skip
    return rows


def _peer_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for student, entry in results["students"].items():
        peer, enc = entry.get("peer", {}), entry.get("encode", {})
        rep = entry.get("train", {}).get("rep", {})
        rows.append([
            student, peer.get("pairs_per_s", "-"), rep.get("pairs_per_s", "-"),
            enc.get("flipkd_texts_per_s", "-"), enc.get("peer_texts_per_s", "-"),
            ", ".join(f"{k} {v:.3f}" for k, v in entry.get("ratios", {}).items()),
        ])  # fmt: skip
    return rows


def _target_rows(results: dict[str, Any]) -> list[list[Any]]:
    return [
        [r["student"], r["target"], f"{r['value']:.3f}", "yes" if r["met"] else "no"]
        for r in results["targets"]
    ]


def _write_md(path: Path, lines: list[str]) -> None:
    with atomic_file(path) as fh:
        fh.write("\n".join(lines) + "\n")


def write_perf(results: dict[str, Any], out_dir: Path) -> None:
    """``bench.json`` (everything) and ``README.md`` (tables, targets) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "bench.json", results)
    lines = _header(results, "Performance: flipkd against the matmul peak and the ST + peft peer")
    if results.get("peak_gflops_used"):
        threads = results["matmul_peak"]["threads"]
        peak = results["peak_gflops_used"]
        lines += [
            f"fp32 matmul peak of the run (best of start/end, {threads} threads): {peak} GFLOP/s;"
            " each training mode also has the peak measured right before and after it.",
            "",
        ]
    peer_header = ["student", "peer pairs/s", "flipkd rep pairs/s", "encode flipkd texts/s",
                   "encode peer texts/s", "ratios"]  # fmt: skip
    lines += ["## Training", ""] + _table(TRAIN_HEADER, _train_rows(results))
    lines += ["", "## Peer and encode", ""] + _table(peer_header, _peer_rows(results))
    lines += ["", "## Targets", ""]
    lines += _table(["student", "target", "value", "met"], _target_rows(results))
    _write_md(out_dir / "README.md", lines)


def write_train(results: dict[str, Any], out_dir: Path) -> None:
    """The training issue's figures: step time, tokens/s, peak RSS per student."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ("provenance", "load_average_start", "load_average_end", "note", "env", "settings")
    keep = {k: results[k] for k in keys if k in results}
    keep["students"] = {
        s: {"benchmark": e["benchmark"], "train": e["train"]}
        for s, e in results["students"].items()
        if "train" in e
    }
    write_json(out_dir / "train.json", keep)
    lines = _header(keep, "Training speed at the cpu profile's student settings")
    lines += [
        "`full` is the cpu profile's training step (L_gen + MCL + L_dist); `rep` leaves out L_gen.",
        "",
    ]
    _write_md(out_dir / "README.md", lines + _table(TRAIN_HEADER, _train_rows(keep)))
