"""teacher.max_train_pairs: the teacher's own training sample, apart from the student's."""

from __future__ import annotations

import pytest

from flipkd.config import FlipkdConfig, config_hash, load_config
from flipkd.config.loader import HASH_EXCLUDE
from flipkd.errors import ConfigError
from flipkd.recipes.pipeline import load_splits, teacher_train_pairs
from flipkd.reproduce.ladder import _teacher_key
from tiny_run import write_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp("bench"), 96, 64, 16)[0]


def test_the_default_keeps_every_key_made_before_the_option() -> None:
    base = FlipkdConfig()
    assert base.teacher.max_train_pairs == "data"
    without = {**HASH_EXCLUDE, "teacher": {"max_train_pairs"}}
    assert config_hash(base) == config_hash(base, exclude=without)
    same = load_config(None, ["teacher.max_train_pairs=data"])
    assert config_hash(same) == config_hash(base) and _teacher_key(same) == _teacher_key(base)
    for value in ("null", "500"):
        other = load_config(None, [f"teacher.max_train_pairs={value}"])
        assert config_hash(other) != config_hash(base), value
        assert _teacher_key(other) != _teacher_key(base), value


@pytest.mark.parametrize("value", ["0", "-3", "all", "1.5", "[10]"])
def test_a_bad_sample_size_names_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match="teacher.max_train_pairs"):
        load_config(None, [f"teacher.max_train_pairs={value}"])


def test_the_teacher_reads_its_own_sample_of_the_train_split(bench) -> None:
    def cfg(*extra: str) -> FlipkdConfig:
        return load_config(None, [f"data.benchmark={bench}", "data.max_train_pairs=20", *extra])

    student = load_splits(cfg(), ("train",))["train"]
    assert len(student) == 20
    assert teacher_train_pairs(cfg(), student) is student  # "data": the student's pairs
    whole = teacher_train_pairs(cfg("teacher.max_train_pairs=null"), student)
    assert len(whole) == 64
    some = teacher_train_pairs(cfg("teacher.max_train_pairs=40"), student)
    assert len(some) == 40 and {p.text_a for p in some} <= {p.text_a for p in whole}
    # seeded by the data's seed, like the student's sample
    again = teacher_train_pairs(cfg("teacher.max_train_pairs=40"), student)
    assert [p.text_a for p in again] == [p.text_a for p in some]
