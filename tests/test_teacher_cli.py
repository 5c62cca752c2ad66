"""``flipkd teacher train | cache`` and ``flipkd eval`` end to end on tiny data and a tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from flipkd.cli import eval_cmd, teacher_cmd
from flipkd.errors import DataError
from flipkd.teacher import build_tiny_teacher, encoder
from flipkd.teacher.tiny import toy_pairs, toy_words

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    teacher_cmd.register(app)
    eval_cmd.register(app)
    return app


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, app: typer.Typer) -> Path:
    root = tmp_path_factory.mktemp("cli")
    data = root / "toy"
    data.mkdir()
    for split, (n, seed) in {"train": (64, 0), "dev": (32, 1), "test": (32, 2)}.items():
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text_a", "text_b", "label"])
            writer.writerows((p.text_a, p.text_b, p.label) for p in toy_pairs(n, seed, noise=0.1))
    model = build_tiny_teacher(root / "tiny", toy_words())
    config = {
        "name": "t1",
        "output_dir": str(root / "runs"),
        "data": {"benchmark": str(data), "max_test_pairs": 24},
        "teacher": {"model": str(model), "epochs": 1, "batch_size": 16, "lr": 5e-3},
    }
    (root / "teacher.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(
        app, ["teacher", "train", str(root / "teacher.yaml"), "teacher.seed=1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "report:" in result.output
    return root / "runs" / "t1"


def test_train_writes_the_run_directory(trained: Path) -> None:
    assert (trained / "model" / "modules.json").is_file()
    assert yaml.safe_load((trained / "config.yaml").read_text())["teacher"]["seed"] == 1
    assert json.loads((trained / "metrics.json").read_text())["dev"]["n"] == 32
    for name in ("dev_scores.png", "metrics.md", "metrics.json"):
        assert (trained / "report" / name).is_file()
    manifest = json.loads((trained / "cache" / "toy" / "manifest.json").read_text())
    assert manifest["count"] > 100 and manifest["model_id"] == "tiny+ft"


def test_cache_command_reuses_the_cache(trained: Path, app: typer.Typer) -> None:
    before = (trained / "cache" / "toy" / "manifest.json").read_text()
    result = CliRunner().invoke(app, ["teacher", "cache", str(trained), "--no-progress"])
    assert result.exit_code == 0, repr(result.exception)
    assert (trained / "cache" / "toy" / "manifest.json").read_text() == before
    cal = json.loads(before)["calibration"]
    assert f"calibration logistic, fitted on {cal['n']} pairs (" in result.output
    assert 0 < cal["pos_rate"] < 1 and "% positive)" in result.output


def test_eval_scores_the_test_split_from_the_cache(
    trained: Path, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model should not be needed: the cache covers the test split")

    monkeypatch.setattr(encoder, "load_encoder", boom)
    result = CliRunner().invoke(app, ["eval", str(trained), "--split", "test", "--json"])
    assert result.exit_code == 0, repr(result.exception)
    out = json.loads(result.output)
    assert out["kind"] == "teacher" and out["split"] == "test"
    assert out["metrics"]["n"] == 24  # the run config's data.max_test_pairs
    assert out["threshold_from"] == "dev (f1)"
    assert json.loads((trained / "eval" / "toy-test.json").read_text()) == out
    monkeypatch.undo()
    table = CliRunner().invoke(app, ["eval", str(trained), "--split", "test", "--max-pairs", "10"])
    assert "| test |" in table.output and "| 10 |" in table.output


def test_eval_names_the_splits_that_exist(trained: Path, app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["eval", str(trained), "--split", "validation"])
    assert isinstance(result.exception, DataError)
    assert "train, dev, test" in str(result.exception)


def test_train_fine_tunes_on_the_teachers_own_sample(trained: Path, app: typer.Typer) -> None:
    """teacher.max_train_pairs: the command's train split is the teacher's sample, not the
    student's data.max_train_pairs."""
    root = trained.parent.parent
    args = ["teacher", "train", str(root / "teacher.yaml"), "name=t-own", "--no-progress"]
    own = ["data.max_train_pairs=20", "teacher.max_train_pairs=40"]
    result = CliRunner().invoke(app, [*args, *own])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((root / "runs" / "t-own" / "metrics.json").read_text())["train_pairs"] == 40
