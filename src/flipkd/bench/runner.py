"""Run the bench: each task in its own process, in a fixed order, results in one dict."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flipkd.errors import FlipkdError
from flipkd.provenance import provenance

log = logging.getLogger(__name__)

DEFAULT_BENCHMARK = {"smollm2-135m": "mqp", "qwen2.5-0.5b": "atec"}  # English / Chinese
PARTS = ("peak", "train", "peer", "encode")
USER_ERROR = 2


@dataclass
class BenchSettings:
    """What one ``flipkd bench`` run measures."""

    students: list[str]
    benchmark: str | None = None  # None: DEFAULT_BENCHMARK per student
    steps: int = 8
    warmup: int = 3
    threads: int = 2
    parts: tuple[str, ...] = PARTS
    overrides: list[str] = field(default_factory=list)
    # the trainer's packing rows (student.pack_tokens); None: the config's; 0: training pads
    pack_tokens: int | None = None

    def task_overrides(self) -> list[str]:
        """The config overrides every task applies: ``overrides``, then ``pack_tokens``."""
        pack = [] if self.pack_tokens is None else [f"student.pack_tokens={self.pack_tokens}"]
        return [*self.overrides, *pack]

    def benchmark_of(self, student: str) -> str:
        """The benchmark whose batches ``student`` trains on."""
        return self.benchmark or DEFAULT_BENCHMARK.get(student, "mqp")


def run_task(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Run one worker task in a fresh Python process and return its JSON result."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with tempfile.TemporaryDirectory(prefix="flipkd-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "flipkd.bench.worker", json.dumps(spec), str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode == USER_ERROR:
            raise FlipkdError(proc.stderr.strip().splitlines()[-1])
        if proc.returncode:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(f"bench task {spec['task']} failed:\n{tail}")
        return json.loads(out.read_text())


def run_bench(
    settings: BenchSettings,
    command: list[str] | None = None,
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Measure every part of ``settings`` and return the raw results (see report.py)."""
    results: dict[str, Any] = {
        "provenance": provenance(command),
        "load_average_start": list(os.getloadavg()),
        "settings": asdict(settings),
        "env": {
            k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
        },
        "students": {},
    }
    peak_spec = {"task": "peak", "threads": settings.threads}
    if "peak" in settings.parts:
        say("matmul peak ...")
        results["matmul_peak"] = run_task(peak_spec, settings.threads)
    for student in settings.students:
        base = {
            "student": student,
            "benchmark": settings.benchmark_of(student),
            "steps": settings.steps,
            "warmup": settings.warmup,
            "threads": settings.threads,
            "overrides": settings.task_overrides(),
        }
        entry: dict[str, Any] = {"benchmark": base["benchmark"]}
        for part in ("train", "peer", "encode"):
            if part in settings.parts:
                say(f"{student} on {base['benchmark']}: {part} ...")
                entry[part] = run_task({**base, "task": part}, settings.threads)
        results["students"][student] = entry
    if "peak" in settings.parts:
        say("matmul peak again (the machine is shared) ...")
        results["matmul_peak_end"] = run_task(peak_spec, settings.threads)
    results["load_average_end"] = list(os.getloadavg())
    return results
