"""Teacher fine-tuning through sentence-transformers' trainer, on a tiny in-code BERT."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from flipkd.config.schema import TeacherConfig
from flipkd.errors import ConfigError, DataError
from flipkd.evaluation import pair_metrics
from flipkd.teacher import build_tiny_teacher, train_teacher
from flipkd.teacher.encoder import TeacherSource, encode_texts, load_encoder
from flipkd.teacher.fit import pair_dataset, schedule
from flipkd.teacher.selection import FEW_DEV_POSITIVES, base_lead, few_positives
from flipkd.teacher.tiny import toy_pairs, toy_words
from flipkd.teacher.train import subsample
from flipkd.teacher.trainer_log import format_log
from flipkd.teacher.workflow import kept_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny") / "model", toy_words(), seed=0)


def _dev_cosines(model_dir: Path, pairs: list, prefix: str = "") -> np.ndarray:
    model = load_encoder(TeacherSource("m", model_dir, prefix))
    a = encode_texts(model, [p.text_a for p in pairs])
    b = encode_texts(model, [p.text_b for p in pairs])
    return (a * b).sum(-1).numpy()


def test_finetune_lowers_dev_loss_and_keeps_the_best(
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="flipkd.teacher")
    train, dev = toy_pairs(96, seed=0, noise=0.1), toy_pairs(48, seed=1)
    run = train_teacher(
        train,
        dev,
        TeacherConfig(epochs=2, batch_size=16, lr=5e-3, seed=0),
        model_path=tiny_model,
        out_dir=tmp_path / "run",
        progress=False,
    )
    losses = [h["eval_loss"] for h in run.history]
    assert len(losses) == 3 and run.history[0]["step"] == 0
    assert min(losses[1:]) < losses[0]  # the dev loss falls
    # The kept model is the best dev AP checkpoint, and RUN/model reproduces it.
    ap = pair_metrics(_dev_cosines(run.model_dir, dev), [p.label for p in dev], 0.5)["ap"]
    assert ap == pytest.approx(max(h["eval_dev_cosine_ap"] for h in run.history[1:]), abs=1e-6)
    assert ap > run.history[0]["eval_dev_cosine_ap"]
    assert run.metrics["dev"]["ap"] == pytest.approx(ap, abs=1e-6)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["kind"] == "teacher" and info["finetuned"] and info["model_dir"] == "model"
    assert list(info["args"]) == [
        "loss", "epochs", "batch_size", "lr", "warmup_ratio", "train_fraction", "max_length",
        "seed", "query_prefix", "encode_batch_size", "progress", "freeze_embeddings",
        "group_by_length",
    ]  # fmt: skip
    assert info["args"]["batch_size"] == 16 and info["args"]["progress"] is False
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["train_pairs"] == 96
    assert not (tmp_path / "run" / ".checkpoints").exists()
    # progress=False: no printed log dicts, no library bars; the logs are logger lines
    printed = capsys.readouterr()
    assert "{'" not in printed.out and "Computing widget examples" not in printed.err
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher step")]
    assert any("dev cosine_ap" in line for line in lines), lines


def test_a_middle_checkpoint_that_wins_is_the_one_kept(tiny_model: Path, tmp_path: Path) -> None:
    # flipkd loads the best checkpoint itself (the trainer's own load failed on e5's pooler,
    # which this tiny model does not reproduce); the last step is not the one to keep here
    train, dev = toy_pairs(64, seed=2, noise=0.3), toy_pairs(48, seed=3)
    run = train_teacher(
        train,
        dev,
        TeacherConfig(epochs=4, batch_size=16, lr=3e-2, warmup_ratio=0.0, seed=0),
        model_path=tiny_model,
        out_dir=tmp_path / "run",
        progress=False,
    )
    aps = [h["eval_dev_cosine_ap"] for h in run.history]
    best = int(np.argmax(aps))
    assert 0 < best < len(aps) - 1, aps  # the premise: neither the base nor the last step wins
    assert run.metrics["best_step"] == run.history[best]["step"]
    ap = pair_metrics(_dev_cosines(run.model_dir, dev), [p.label for p in dev], 0.5)["ap"]
    assert ap == pytest.approx(aps[best], abs=1e-6)


def test_zero_shot_run_records_the_base_model(tiny_model: Path, tmp_path: Path) -> None:
    dev = toy_pairs(24, seed=1)
    run = train_teacher(
        [],
        dev,
        TeacherConfig(finetune=False),
        model_path=tiny_model,
        out_dir=tmp_path / "zs",
        progress=False,
    )
    assert not run.finetuned and run.history == []
    assert not (tmp_path / "zs" / "model").exists()
    info = json.loads((tmp_path / "zs" / "run.json").read_text())
    assert Path(info["model_dir"]) == tiny_model.resolve()
    expected = pair_metrics(_dev_cosines(tiny_model, dev), [p.label for p in dev], 0.5)["roc_auc"]
    assert run.metrics["dev"]["roc_auc"] == pytest.approx(expected)


def test_positives_only_loss_with_a_query_prefix(tiny_model: Path, tmp_path: Path) -> None:
    train, dev = toy_pairs(32, seed=2), toy_pairs(16, seed=3)
    run = train_teacher(
        train,
        dev,
        TeacherConfig(loss="mnrl", epochs=1, batch_size=8, lr=1e-3),
        model_path=tiny_model,
        out_dir=tmp_path / "mnrl",
        query_prefix="query: ",
        progress=False,
    )
    saved = json.loads((run.model_dir / "config_sentence_transformers.json").read_text())
    assert saved["prompts"]["query"] == "query: " and saved["default_prompt_name"] == "query"
    # The prefix changes the embedding, so the cosines differ with and without it.
    assert not np.allclose(
        _dev_cosines(tiny_model, dev, "query: "), _dev_cosines(tiny_model, dev), atol=1e-4
    )


def test_pair_dataset_columns() -> None:
    pairs = toy_pairs(10, seed=0)
    full = pair_dataset(pairs, "cosent")
    assert full.column_names == ["sentence1", "sentence2", "label"] and len(full) == 10
    positives = pair_dataset(pairs, "mnrl")
    assert positives.column_names == ["anchor", "positive"]
    assert len(positives) == sum(p.label for p in pairs)


def test_schedule_and_subsample() -> None:
    assert schedule(100, 16, 2) == (7, 14)
    assert schedule(100, 16, 0.5) == (4, 4)
    assert schedule(100, 16, 2.5) == (6, 18)
    pairs = toy_pairs(50, seed=0)
    half = subsample(pairs, 0.5, seed=1)
    assert len(half) == 25 and half == subsample(pairs, 0.5, seed=1)
    assert half != subsample(pairs, 0.5, seed=2)
    assert subsample(pairs, 1.0, seed=0) == pairs


def test_bad_settings_are_user_errors(tiny_model: Path, tmp_path: Path) -> None:
    dev = toy_pairs(8, seed=1)
    with pytest.raises(ValidationError, match="loss"):
        TeacherConfig(loss="mse")
    unchecked = TeacherConfig().model_copy(update={"loss": "mse"})  # skips validation
    with pytest.raises(ConfigError, match="unknown loss"):
        train_teacher(dev, dev, unchecked, model_path=tiny_model, out_dir=tmp_path)
    with pytest.raises(DataError, match="dev split is empty"):
        train_teacher(dev, [], model_path=tiny_model, out_dir=tmp_path)
    graded = [type(p)(p.text_a, p.text_b, None, 3.0, "g.csv", 7) for p in dev]
    with pytest.raises(DataError, match="g.csv:7"):
        pair_dataset(graded, "contrastive")


def test_graded_pairs_train_with_scores(tiny_model: Path, tmp_path: Path) -> None:
    def graded(pairs: list) -> list:
        return [type(p)(p.text_a, p.text_b, None, 4.0 * p.label + 0.5, "g", 1) for p in pairs]

    train, dev = graded(toy_pairs(32, seed=4)), graded(toy_pairs(16, seed=5))
    run = train_teacher(
        train,
        dev,
        TeacherConfig(epochs=1, batch_size=16, lr=5e-3),
        model_path=tiny_model,
        out_dir=tmp_path / "graded",
        progress=False,
    )
    assert "eval_dev_spearman_cosine" in run.history[-1]
    assert set(run.metrics["dev"]) == {"spearman", "pearson"}


def _trained_on_flipped_labels(model: Path, out_dir: Path, dev: list) -> tuple[Any, list]:
    """A teacher trained on 32 pairs with their labels flipped: the run and its dev APs
    (step 0, the base, first), every checkpoint's below the base's."""
    flipped = [type(p)(p.text_a, p.text_b, 1 - p.label, None, "x", 1) for p in toy_pairs(32, 6)]
    run = train_teacher(
        flipped,
        dev,
        TeacherConfig(epochs=2, batch_size=16, lr=5e-3, warmup_ratio=0.0),
        model_path=model,
        out_dir=out_dir,
        progress=False,
    )
    aps = [h["eval_dev_cosine_ap"] for h in run.history]
    assert max(aps[1:]) < aps[0]  # training on flipped labels only hurts dev
    return run, aps


def test_base_model_is_kept_when_training_only_hurts(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = toy_pairs(128, seed=7)  # 64 positives
    caplog.set_level(logging.WARNING, logger="flipkd.teacher.selection")
    run, aps = _trained_on_flipped_labels(tiny_model, tmp_path / "hurt", dev)
    assert run.metrics["best_step"] == 0
    # kept because the base's lead is beyond dev's noise, which the run records and says
    lead = run.metrics["base_lead"]
    assert lead["kept"] == "base" and lead["ci_low"] > 0
    assert lead["lead"] == pytest.approx(aps[0] - max(aps[1:]), abs=1e-6)
    positives = sum(p.label for p in dev)
    (warning,) = [r.getMessage() for r in caplog.records if "keeping the base" in r.getMessage()]
    assert f"{aps[0]:.4f} against {max(aps[1:]):.4f}" in warning
    assert f"dev holds 128 pairs with {positives} positives" in warning
    # and a ladder's report can say so from the run's records
    said = kept_model(run.run_dir)
    assert (said["kept"], said["step"], said["dev_pairs"], said["metric"]) == ("base", 0, 128, "AP")
    assert (said["base_value"], said["checkpoint_value"]) == pytest.approx((aps[0], max(aps[1:])))
    torch.testing.assert_close(
        torch.from_numpy(_dev_cosines(run.model_dir, dev)),
        torch.from_numpy(_dev_cosines(tiny_model, dev)),
    )


def test_a_base_lead_within_dev_noise_keeps_the_trained_checkpoint(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run as above, its lead declared inside the noise: the checkpoint is kept."""
    from flipkd.teacher import selection

    monkeypatch.setattr(selection, "base_lead", lambda *a, **k: (0.01, -0.02, 0.04))
    run, aps = _trained_on_flipped_labels(tiny_model, tmp_path / "noise", toy_pairs(32, seed=7))
    assert run.metrics["best_step"] > 0 and run.metrics["base_lead"]["kept"] == "checkpoint"
    said = kept_model(run.run_dir)
    assert (said["kept"], said["step"]) == ("checkpoint", run.metrics["best_step"])
    assert run.metrics["dev"]["ap"] == pytest.approx(max(aps[1:]), abs=1e-6)


def test_base_lead_is_a_paired_interval_that_resolves_only_real_leads() -> None:
    dev = toy_pairs(200, seed=3)
    gold = np.array([p.label for p in dev], dtype=np.float64)
    rng = np.random.default_rng(0)
    good = gold + rng.normal(0, 0.3, len(dev))
    lead, low, high = base_lead(good, rng.normal(0, 1, len(dev)), dev, n=200)
    assert low > 0 and low <= lead <= high  # a clear lead is resolved
    just_as_good = gold + rng.normal(0, 0.3, len(dev))
    lead, low, high = base_lead(good, just_as_good, dev, n=200)
    assert low < 0 < high  # two equally good scorers: no lead resolved
    assert base_lead(good, good, dev, n=50) == (0.0, 0.0, 0.0)  # paired: no noise at all


def test_the_few_positives_hint_names_the_counts_and_keeps_quiet_on_enough() -> None:
    few = toy_pairs(40, seed=1)
    positives = sum(p.label for p in few)
    assert 0 < positives < FEW_DEV_POSITIVES
    assert f"dev holds 40 pairs with {positives} positives" in few_positives(few)
    assert "data.max_dev_pairs" in few_positives(few)
    many = [p for p in toy_pairs(600, seed=2) if p.label == 1][:FEW_DEV_POSITIVES]
    assert few_positives(many) == ""
    graded = [type(p)(p.text_a, p.text_b, None, 0.5, "x", 1) for p in few]
    assert few_positives(graded) == ""  # graded dev: Spearman picks the checkpoint


def test_trainer_logs_read_as_one_line() -> None:
    logs = {"eval_loss": 4.75912, "eval_dev_cosine_spearman": 0.35923, "eval_runtime": 14.6,
            "eval_samples_per_second": 68.6, "epoch": 0.5, "learning_rate": 5e-05}  # fmt: skip
    line = format_log(logs, 40, 62)
    assert (
        line
        == "teacher step 40/62: dev_loss 4.759, dev cosine_spearman 0.3592, learning_rate 5e-05"
    )
    before = format_log({"eval_loss": 4.75912}, 0, 0)  # the dev check before the first step
    assert before == "teacher before training: dev_loss 4.759"


def test_a_teacher_without_a_pooler_is_saved_to_load_without_one(tmp_path: Path) -> None:
    # e5 is converted without a pooler; sentence-transformers saves a fine-tuned copy without
    # the load setting that says so, and the reload grew a random pooler (and a LOAD REPORT)
    base = build_tiny_teacher(tmp_path / "base", toy_words(), seed=0, pooler=False)
    assert load_encoder(TeacherSource("m", base))[0].auto_model.pooler is None
    run = train_teacher(
        toy_pairs(64, seed=2, noise=0.3),
        toy_pairs(48, seed=3),
        TeacherConfig(epochs=2, batch_size=16, lr=3e-2, warmup_ratio=0.0, seed=0),
        model_path=base,
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert run.metrics["best_step"] > 0  # a checkpoint, not the base, was loaded and saved
    config = json.loads((run.model_dir / "sentence_bert_config.json").read_text())
    assert config["model_kwargs"] == {"add_pooling_layer": False}
    model = load_encoder(TeacherSource("m", run.model_dir))
    assert model[0].auto_model.pooler is None
    assert not any(k.startswith("pooler") for k in model[0].auto_model.state_dict())
