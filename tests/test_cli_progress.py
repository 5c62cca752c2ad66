"""``--no-progress`` silences the libraries' bars too (transformers' "Loading weights")."""

from __future__ import annotations

import pytest
import typer
from transformers.utils import logging as transformers_logging
from typer.testing import CliRunner

from flipkd.cli import train_cmd


@pytest.fixture
def app():
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command keeps its name
    train_cmd.register(app)
    yield app
    transformers_logging.enable_progress_bar()  # leave the process as it was


@pytest.mark.parametrize(("flag", "bars"), [("--no-progress", False), ("--progress", True)])
def test_progress_flag_reaches_transformers(app, tmp_path, flag, bars):
    transformers_logging.enable_progress_bar()
    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml"), flag])
    assert result.exit_code != 0  # the config is missing: the option was parsed first
    assert transformers_logging.is_progress_bar_enabled() is bars
