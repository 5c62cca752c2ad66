"""Config: YAML + dotted overrides, validated with field names, resolved copy, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flipkd.config import config_hash, load_config, save_resolved
from flipkd.errors import ConfigError

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name


def test_overrides_parse_values_as_yaml(tmp_path):
    cfg = load_config(None, ["train.steps=7", "student.lora.layers=[-2, -1]", "loss.filter=false"])
    assert cfg.train.steps == 7 and cfg.student.lora.layers == [-2, -1] and cfg.loss.filter is False


def test_mixed_precision_no_survives_yaml(tmp_path):
    # YAML reads a bare `no` as false: both an override and a file must still mean "no"
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_config(path).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(None, ["train.mixed_precision=true"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.stepz=3"], "field train.stepz"),
        (["train.steps=0"], "field train.steps"),
        (["loss.theta_neg=0.7"], "theta_neg"),
        (["nonsense"], "key.path=value"),
    ],
)
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_copy_round_trips_and_hash_ignores_name(tmp_path):
    cfg = load_config(None, ["train.steps=9"])
    path = save_resolved(cfg, tmp_path)
    again = load_config(path)
    assert again == cfg
    assert config_hash(again) == config_hash(load_config(None, ["train.steps=9", "name=other"]))
    assert config_hash(cfg) != config_hash(load_config(None, ["train.steps=10"]))
    assert yaml.safe_load(path.read_text())["train"]["steps"] == 9
