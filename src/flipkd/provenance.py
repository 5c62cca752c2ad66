"""What every committed result records: command, git commit, package versions, machine."""

from __future__ import annotations

import functools
import os
import platform
import shlex
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "flipkd", "torch", "transformers", "peft", "sentence-transformers", "accelerate",
    "safetensors", "scikit-learn", "scipy", "numpy",
)  # fmt: skip


def git_commit(cwd: Path | None = None) -> str:
    """The checkout's HEAD (with ``-dirty`` when it has uncommitted changes), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return f"{head}-dirty" if dirty else head
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.cache
def process_commit() -> str:
    """The commit of the code this process runs: :func:`git_commit` when first asked.

    Ladders and sweeps ask when they start, so a run that finishes after a later commit
    (hours later, the checkout edited meanwhile) still names the code it was computed with,
    not the checkout's HEAD at the time it finished.
    """
    return git_commit()


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU count, model and the vector instructions torch's kernels use (two machines with
    another CPU can round a training run differently: same config, other numbers), platform,
    Python, accelerator."""
    import torch

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    """Everything a result file needs to say how it was made."""
    argv = command or [Path(sys.argv[0]).name, *sys.argv[1:]]
    return {
        "command": shlex.join(argv),
        "git_commit": git_commit(),
        "versions": versions(),
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_commits(records: list[dict]) -> dict[str, int]:
    """How many runs each commit computed (``unknown``: a run recorded before runs kept it).
    A report's own ``git_commit`` is the code that wrote it, which for a resumed ladder or
    sweep need not be the code that computed its earlier runs."""
    return dict(Counter(record.get("git_commit", "unknown") for record in records))


def commits_line(counts: dict[str, int]) -> str:
    """``Runs computed at: `abc1234` (3), `def5678-dirty` (1) (runs per commit).``"""
    cells = [f"`{c if c == 'unknown' else c[:7] + c[40:]}` ({n})" for c, n in counts.items()]
    note = "; `unknown`: recorded before runs kept their commit" if "unknown" in counts else ""
    return f"Runs computed at: {', '.join(cells)} (runs per commit{note})."
