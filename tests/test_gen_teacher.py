"""L_gen against a soft target: the gold label mixed with the teacher's probability."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer.step import build_losses, gen_targets
from tiny_run import first_step, make_cache, make_pairs, tiny_config, tiny_student

PAIRS = [(p.text_a, p.text_b) for p in make_pairs(6)]
GOLD = torch.tensor([1, 0, 1, 1, 0, 0])


def test_hard_targets_give_the_gold_cross_entropy():
    student = tiny_student(tiny_config())
    with torch.no_grad():
        two = student.gen_forward(PAIRS, GOLD.float(), vocab="labels")
        full = student.gen_forward(PAIRS, GOLD.float())
        full_int = student.gen_forward(PAIRS, GOLD)
    torch.testing.assert_close(two.loss, F.cross_entropy(two.label_logits, (GOLD == 0).long()))
    torch.testing.assert_close(full.loss, full_int.loss)
    assert float(full.loss) > float(two.loss)  # the full softmax also pays for other tokens


def test_soft_target_gradient_pulls_the_label_probability_to_the_target():
    student = tiny_student(tiny_config())
    target = torch.tensor([0.3, 0.9, 0.5, 0.0, 1.0, 0.7])
    logits = student.gen_forward(PAIRS).label_logits.detach().requires_grad_(True)
    logp = logits.log_softmax(-1)
    loss = -(target * logp[:, 0] + (1 - target) * logp[:, 1]).mean()
    loss.backward()
    p = logits.detach().softmax(-1)[:, 0]
    # d loss / d (yes-logit) = (p - t) / B: zero exactly at the target probability
    torch.testing.assert_close(logits.grad[:, 0], (p - target) / len(target))
    with torch.no_grad():
        got = student.gen_forward(PAIRS, target, vocab="labels").loss
        logp2 = student.gen_forward(PAIRS).label_logits.log_softmax(-1)
    want = -(target * logp2[:, 0] + (1 - target) * logp2[:, 1]).mean()
    torch.testing.assert_close(got, want)


def test_targets_mix_gold_and_teacher():
    cfg = FlipkdConfig()
    teacher = torch.tensor([0.2, 0.8, 0.6, 0.1, 0.5, 0.9])
    labels = torch.tensor([1, 0, 1, 1, 0, -1])  # -1: a pair without a label
    for lam, want in (
        (0.0, torch.tensor([1.0, 0, 1, 1, 0, 0])),
        (1.0, teacher),
        (0.5, torch.tensor([0.6, 0.4, 0.8, 0.55, 0.25, 0.45])),
    ):
        cfg.loss.gen_teacher = lam
        torch.testing.assert_close(gen_targets(build_losses(cfg.loss), labels, teacher), want)


def test_option_is_validated_and_hash_neutral_at_zero():
    base = FlipkdConfig()
    zero = FlipkdConfig.model_validate({"loss": {"gen_teacher": 0.0}})
    half = FlipkdConfig.model_validate({"loss": {"gen_teacher": 0.5}})
    assert config_hash(zero) == config_hash(base)
    assert config_hash(half) != config_hash(base)
    with pytest.raises(ValueError, match="gen_teacher"):
        FlipkdConfig.model_validate({"loss": {"gen_teacher": 1.5}})


def _first_gen_loss(tmp_path, name, lam, pairs, cache):
    return first_step(tmp_path / name, pairs, cache, gen_teacher=lam)[0]["gen"]


def test_teacher_target_replaces_the_gold_label_in_training(tmp_path):
    pairs = make_pairs()
    flipped = [dataclasses.replace(p, label=1 - p.label) for p in pairs]
    cache = make_cache(tmp_path / "cache", pairs)
    gold = {k: _first_gen_loss(tmp_path, f"g{k}", 0.0, ps, cache)
            for k, ps in (("orig", pairs), ("flip", flipped))}  # fmt: skip
    teacher = {k: _first_gen_loss(tmp_path, f"t{k}", 1.0, ps, cache)
               for k, ps in (("orig", pairs), ("flip", flipped))}  # fmt: skip
    assert gold["orig"] != pytest.approx(gold["flip"], abs=1e-3)  # gold labels matter at λ=0
    assert teacher["orig"] == pytest.approx(teacher["flip"], abs=1e-6)  # only the teacher at λ=1
    assert teacher["orig"] != pytest.approx(gold["orig"], abs=1e-3)


def test_sft_row_stays_teacher_free():
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    profile = PROFILES["cpu"]
    sft = build_config(profile, "mqp", "sft", 0, ["loss.gen_teacher=0.5"])
    assert sft.loss.gen_teacher == 0.5  # a user override still wins
    prof = dataclasses.replace(profile, overrides={**profile.overrides, "loss.gen_teacher": 0.5})
    assert build_config(prof, "mqp", "sft", 0, []).loss.gen_teacher == 0.0
    assert build_config(prof, "mqp", "fip", 0, []).loss.gen_teacher == 0.5
