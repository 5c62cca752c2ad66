"""train.clip_scope: the tapped A matrices clipped apart from the label's parameters."""

from __future__ import annotations

import json

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer import train_student
from flipkd.trainer.loop import clip_groups
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def test_groups_split_the_tap_from_the_rest():
    student = tiny_student(tiny_config())
    params = [p for p in student.model.parameters() if p.requires_grad]
    assert clip_groups(student, params, "global") == [params]
    tap, rest = clip_groups(student, params, "tap-apart")
    (layer,) = student.tap.layers
    assert len(tap) == 1 and tap[0] is layer.lora_A["default"].weight
    assert len(rest) == len(params) - 1 and all(p is not tap[0] for p in rest)


def _gen_losses(tmp_path, name, row_change: dict, scope: str) -> list[float]:
    pairs = make_pairs()
    cfg = tiny_config(steps=4, dropout=0.0, save_every=0, clip_scope=scope, max_grad_norm=0.5)
    cfg.student.tap.shared = False  # the label never reads the tapped A
    # LoRA on the top layer, tapped at its q_proj: the tap's input is the frozen layer's
    # output, so the representation terms' gradients reach the tapped A and nothing else
    cfg.student.lora.layers, cfg.student.tap.layers = [-1], [-1]
    cfg.student.tap.modules = ["q_proj"]
    cfg.loss.alpha = 1.0
    for key, value in row_change.items():
        setattr(cfg.loss, key, value)
    run = tmp_path / name
    train_student(
        cfg, run, cache=make_cache(tmp_path / f"c{name}", pairs), train_pairs=pairs,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    return [json.loads(x)["gen"] for x in (run / "logs" / "train.jsonl").read_text().splitlines()]


def test_tap_apart_clipping_gives_the_label_the_steps_of_sft(tmp_path):
    sft = {"contrastive": "none", "dist": "none"}
    apart = _gen_losses(tmp_path, "fip-apart", {}, "tap-apart")
    glob = _gen_losses(tmp_path, "fip-global", {}, "global")
    alone = _gen_losses(tmp_path, "sft-global", sft, "global")
    torch.testing.assert_close(torch.tensor(apart), torch.tensor(alone))  # same label steps
    assert glob[1:] != pytest.approx(alone[1:], abs=1e-6)  # the shared norm changed them


def test_scope_is_validated_and_hash_neutral():
    base = FlipkdConfig()
    apart = FlipkdConfig.model_validate({"train": {"clip_scope": "tap-apart"}})
    assert config_hash(FlipkdConfig.model_validate({"train": {"clip_scope": "global"}})) == (
        config_hash(base)
    )
    assert config_hash(apart) != config_hash(base)
    with pytest.raises(ValueError, match="clip_scope"):
        FlipkdConfig.model_validate({"train": {"clip_scope": "per-term"}})
