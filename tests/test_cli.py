"""The command line: help, the model table, and bad input as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flipkd", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0
    for cmd in (
        "models",
        "data",
        "teacher",
        "train",
        "eval",
        "reproduce",
        "demo",
        "export",
        "serve",
        "faq",
    ):
        assert cmd in out.stdout


def test_models_list_shows_the_registry():
    out = _run("models", "list")
    assert out.returncode == 0
    for name in (
        "smollm2-135m",
        "qwen2.5-0.5b",
        "gemma3-270m",
        "minilm-l6",
        "e5-small-multilingual",
    ):
        assert name in out.stdout


def test_unknown_model_and_bad_config_exit_2_with_one_line(tmp_path):
    out = _run("models", "check", "no-such-model")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown model" in out.stderr
    assert "Traceback" not in out.stderr
    bad = tmp_path / "c.yaml"
    bad.write_text("train:\n  steps: -1\n")
    out = _run("train", str(bad))
    assert out.returncode == 2 and "field train.steps" in out.stderr
    assert "Traceback" not in out.stderr
