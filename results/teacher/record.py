"""Collect one teacher measurement into results/teacher/<name>.json.

Usage (after `flipkd teacher train` and `flipkd eval` have run):

    .venv/bin/python results/teacher/record.py NAME RUN BENCHMARK WALL_S "COMMANDS"

Reads RUN/run.json, RUN/metrics.json, RUN/cache/<benchmark>/manifest.json and
RUN/eval/<benchmark>-test.json (and any other RUN/eval/*-test.json, under
``other_tests``); adds the git commit, package versions and machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

PUBLISHED_ATEC_TEST_SPEARMAN = {
    "CoSENT (RoBERTa-wwm-ext), as published": 50.81,
    "AnglE, as published": 51.30,
}
PACKAGES = ["torch", "transformers", "sentence-transformers", "scikit-learn", "scipy", "flipkd"]


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()


def main(name: str, run: str, benchmark: str, wall_s: str, commands: str) -> None:
    run_dir = Path(run)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    manifest = json.loads((run_dir / "cache" / benchmark / "manifest.json").read_text())
    test = json.loads((run_dir / "eval" / f"{benchmark}-test.json").read_text())
    record = {
        "name": name,
        "commands": commands.strip().splitlines(),
        "git_commit": _git("rev-parse", "HEAD") or "(no commit yet)",
        "git_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "versions": {p: version(p) for p in PACKAGES} | {"python": sys.version.split()[0]},
        "machine": f"{os.cpu_count()} CPU cores ({_cpu()}), no GPU; shared with other jobs",
        "wall_seconds": float(wall_s),
        "run": json.loads((run_dir / "run.json").read_text()),
        "train": {k: v for k, v in metrics.items() if k not in ("dev", "history")},
        "dev_history": metrics.get("history", []),
        "dev": metrics["dev"],
        "test": test,
        "other_tests": {
            f.stem.removesuffix("-test"): json.loads(f.read_text())
            for f in sorted((run_dir / "eval").glob("*-test.json"))
            if f.stem != f"{benchmark}-test"
        },
        "cache": {k: manifest[k] for k in ("count", "dim", "encode_seconds", "texts_per_second")}
        | {"calibration": manifest["calibration"]},
    }
    if benchmark == "atec":
        record["published_atec_test_spearman_for_scale"] = PUBLISHED_ATEC_TEST_SPEARMAN
    out = Path(__file__).with_name(f"{name}.json")
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
