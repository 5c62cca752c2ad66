"""Config rules, checks before any work, and the NaN-loss stop (issue 15), in-process."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flipkd.config import FlipkdConfig, load_config
from flipkd.config.loader import run_directory
from flipkd.config.schema import template_problem
from flipkd.errors import ConfigError, ModelError
from flipkd.recipes import pipeline
from flipkd.student.check import check_student
from flipkd.trainer import train_student
from flipkd.trainer.checkpoint import latest_checkpoint
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student

PAIRS = str(Path(__file__).parent / "fixtures" / "data" / "pairs.csv")


def _yaml(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _config_error(path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return str(info.value)


def test_empty_and_duplicate_yaml_are_errors(tmp_path):
    for text in ("", "\n# only comments\n", "---\n"):
        path = _yaml(tmp_path, text)
        assert _config_error(path).startswith(f"{path}: the config file is empty")
    path = _yaml(tmp_path, "train:\n  steps: 5\n  lr: 0.1\n  steps: 6\n")
    assert _config_error(path) == (
        f"{path}:4: invalid YAML (duplicate key 'steps' (first on line 2))"
    )


def test_yaml_merge_keys_and_dates_still_load(tmp_path):
    path = _yaml(
        tmp_path, "name: 2024-05-01\nbase: &b {steps: 3}\n", "a.yaml"
    )  # a date is read as its text; `base` is an unknown field
    assert "field base" in _config_error(path)
    path = _yaml(tmp_path, "name: 2024-05-01\ntrain:\n  <<: {steps: 3, lr: 0.01}\n  lr: 0.02\n")
    cfg = load_config(path)
    assert (cfg.name, cfg.train.steps, cfg.train.lr) == ("2024-05-01", 3, 0.02)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
@pytest.mark.parametrize("field", ["loss.alpha", "train.lr", "loss.beta", "teacher.lr"])
def test_non_finite_floats_are_refused(field, value):
    assert f"field {field}: Input should be a finite number" in _config_error(
        None, [f"{field}={value}"]
    )


def test_an_error_names_the_override_that_caused_it(tmp_path):
    path = _yaml(tmp_path, "name: x\ntrain:\n  steps: 5\n")
    assert _config_error(path, ["train.steps=0"]).startswith(
        "override 'train.steps=0': field train.steps:"
    )
    assert _config_error(path, ["train.stepz=3"]).startswith("override 'train.stepz=3':")
    assert _config_error(path, ["train.lr=1", "loss.theta_neg=0.9"]).startswith(
        f"{path} with override 'loss.theta_neg=0.9': field loss: theta_neg (0.9)"
    )
    bad = _yaml(tmp_path, "name: x\ntrain:\n  steps: 0\n", "bad.yaml")
    assert _config_error(bad, ["loss.alpha=0.5"]).startswith(f"{bad}: field train.steps")
    assert _config_error(path, ["train.steps=[1,"]).startswith(
        "override 'train.steps=[1,': invalid YAML ("
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [("run", True), ("exp/seed-0", True), ("../../escape", False), ("a/../../b", False),
     ("/abs/path", False), ("..", False), ("", False), ("  ", False), ("a\\..\\b", False)],
)  # fmt: skip
def test_run_names_stay_inside_output_dir(name, ok):
    if ok:
        assert FlipkdConfig(name=name).name == name
    else:
        with pytest.raises(ValueError, match="name"):
            FlipkdConfig(name=name)


def test_run_directory_refuses_files_in_the_way(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=r"^output_dir: .*afile is a file, not a directory"):
        run_directory(FlipkdConfig(output_dir=str(afile)))
    with pytest.raises(ConfigError, match=r"^output_dir: .*afile is a file"):
        run_directory(FlipkdConfig(output_dir=str(afile / "deeper")))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "taken").write_text("x")
    with pytest.raises(ConfigError, match=r"^name: .*taken is a file"):
        run_directory(FlipkdConfig(output_dir=str(tmp_path / "runs"), name="taken"))
    assert run_directory(FlipkdConfig(output_dir=str(tmp_path / "new"), name="r")).name == "r"


@pytest.mark.parametrize(
    ("template", "problem"),
    [("{a} and {b}", None), ("{{literal}} {a} {b}", None), ("{a} {b} {c}", "unknown slot {c}"),
     ("{0} {a} {b}", "unknown slot {0}"), ("{} {a} {b}", "unknown slot {}"),
     ("{a.upper} {b}", "unknown slot {a.upper}"), ("{a!r} {b}", "unknown slot {a!r}"),
     ("{a} only", "must contain both"), ("{a} {b", "expected '}'"), ("{a} } {b}", "Single '}'")],
)  # fmt: skip
def test_template_slots(template, problem):
    got = template_problem(template)
    assert (got is None) if problem is None else (problem in got)


def test_unquoted_yaml_words_get_a_useful_message():
    assert "quote the words" in _config_error(None, ["student.prompt.label_words=[yes, no]"])
    assert "quote it" in _config_error(None, ["student.prompt.template={a}"])


def _tiny_cfg(tmp_path, tiny_llama_dir, *overrides):
    base = [f"student.model={tiny_llama_dir}", f"teacher.model={tiny_llama_dir}"]
    return load_config(None, [*base, f"data.benchmark={PAIRS}", *overrides])


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ((), None, None),
        (("student.tap.layers=[0]", "student.lora.layers=[1]"), ConfigError,
         "layer 0 (index 0) has no LoRA; student.lora.layers adapts [1]"),
        (("student.tap.layers=[5]",), ConfigError, "layer 5 is out of range (the model has 2)"),
        (("student.lora.target_modules=[q_proj]",), ConfigError,
         "'down_proj' in layer 1 has no LoRA adapter (LoRA modules there: q_proj)"),
        (("student.prompt.label_words=['yes', 'yesno']",), ConfigError, "share their first"),
        (("student.prompt.use_chat_template=false", "student.prompt.label_words=['no', 'not']"),
         ConfigError, "share their first token"),
    ],
)  # fmt: skip
def test_student_is_checked_on_the_meta_device(tmp_path, tiny_llama_dir, overrides, error, message):
    cfg = _tiny_cfg(tmp_path, tiny_llama_dir, *overrides)
    if error is None:
        check_student(cfg.student)
        return
    with pytest.raises(error, match=re.escape(message)):
        check_student(cfg.student)


def test_misspelt_models_fail_before_any_loading(tmp_path, tiny_llama_dir):
    cfg = _tiny_cfg(tmp_path, tiny_llama_dir, "student.model=smollm2-135")
    with pytest.raises(ModelError, match="neither a registered student"):
        check_student(cfg.student)
    cfg = _tiny_cfg(tmp_path, tiny_llama_dir, "teacher.model=minilm-l7")
    with pytest.raises(ModelError, match="neither a registered teacher"):
        pipeline.preflight(cfg, tmp_path / "run")


def test_train_checks_everything_before_the_teacher(tmp_path, tiny_llama_dir, monkeypatch):
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was started")

    monkeypatch.setattr(pipeline, "ensure_teacher", no_teacher)
    for overrides, message in [
        (("train.batch_size=500",), "larger than the 50 training pairs"),
        (("student.tap.modules=[nope]",), "'nope' in layer 1 has no LoRA adapter"),
    ]:
        cfg = _tiny_cfg(tmp_path, tiny_llama_dir, *overrides)
        with pytest.raises(ConfigError, match=message):
            pipeline.train(cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / "checkpoints" / "step-0000002").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-0000002" / "COMPLETE").write_text("ok\n")
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        pipeline.train(_tiny_cfg(tmp_path, tiny_llama_dir), tmp_path / "run", progress=False)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import flipkd.trainer.micro as micro

    real, calls = micro.batch_loss, []

    def poisoned(*args, **kwargs):
        total, values = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # step 3: the loss becomes NaN
            total, values["loss"] = total * math.nan, math.nan
        return total, values

    monkeypatch.setattr(micro, "batch_loss", poisoned)
    cfg = tiny_config(steps=6, save_every=2)
    pairs = make_pairs()
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        train_student(
            cfg, run, cache=make_cache(tmp_path / "c", pairs), train_pairs=pairs,
            student=tiny_student(cfg), progress=False,
        )  # fmt: skip
    msg = str(info.value)
    assert msg.startswith("step 3: the loss is not finite (loss nan")
    assert "the last good checkpoint is" in msg and msg.count("\n") == 0
    last = latest_checkpoint(run / "checkpoints")
    assert last.name == "step-0000002" and str(last) in msg
    weights = load_file(str(last / "trainable.safetensors"))
    assert weights and all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert not (run / "adapter").exists()
