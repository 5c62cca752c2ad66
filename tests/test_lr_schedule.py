"""``train.min_lr_ratio``: the cosine schedule's floor (0: transformers' cosine down to 0)."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer import train_student
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def _logged_lrs(tmp_path, name: str, **train) -> list[float]:
    pairs = make_pairs()
    cfg = tiny_config(steps=6, dropout=0.0, save_every=0, **train)
    run = tmp_path / name
    train_student(
        cfg, run, cache=make_cache(tmp_path / f"c{name}", pairs), train_pairs=pairs,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    rows = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    return [r["lr"] for r in rows if r.get("kind") == "train"]


def _cosine(step: int, steps: int, floor: float) -> float:
    """The schedule's factor after ``step`` scheduler steps (no warm-up)."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps))


def test_the_floor_holds_the_cosine_up_and_zero_is_the_old_schedule(tmp_path):
    base = _logged_lrs(tmp_path, "zero")
    floor = _logged_lrs(tmp_path, "half", min_lr_ratio=0.5)
    lr = tiny_config().train.lr
    assert len(base) == len(floor) == 6
    # logged after the step's scheduler step: step k (1-based) reads factor(k)
    assert base == pytest.approx([lr * _cosine(k, 6, 0.0) for k in range(1, 7)], rel=1e-6)
    assert floor == pytest.approx([lr * _cosine(k, 6, 0.5) for k in range(1, 7)], rel=1e-6)
    assert min(floor) >= 0.5 * lr * (1 - 1e-6) and min(base) < 0.1 * lr


def test_option_is_validated_and_hash_neutral_at_zero():
    base = FlipkdConfig()
    assert base.train.min_lr_ratio == 0.0
    zero = FlipkdConfig.model_validate({"train": {"min_lr_ratio": 0.0}})
    assert config_hash(zero) == config_hash(base)
    half = FlipkdConfig.model_validate({"train": {"min_lr_ratio": 0.5}})
    assert config_hash(half) != config_hash(base)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValidationError, match="min_lr_ratio"):
            FlipkdConfig.model_validate({"train": {"min_lr_ratio": bad}})
