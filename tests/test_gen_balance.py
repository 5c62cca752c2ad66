"""Class-weighted L_gen (loss.gen_balance): each class's loss weighted by its share^-b."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.errors import ConfigError
from flipkd.trainer import train_student
from flipkd.trainer.step import build_losses, class_weights, gen_weights
from tiny_run import first_step, make_cache, make_pairs, tiny_config, tiny_student

PAIRS = [(p.text_a, p.text_b) for p in make_pairs(6)]
GOLD = torch.tensor([1, 0, 1, 1, 0, 0])


@pytest.mark.parametrize("share", [0.18, 0.5, 0.7])
def test_weights_average_one_over_the_training_pairs(share):
    assert class_weights(0.0, share) == (1.0, 1.0)
    for b in (0.5, 1.0):
        w_pos, w_neg = class_weights(b, share)
        assert share * w_pos + (1 - share) * w_neg == pytest.approx(1.0)
        assert w_pos / w_neg == pytest.approx(((1 - share) / share) ** b)
    w_pos, w_neg = class_weights(1.0, share)  # each class half the total weight
    assert share * w_pos == pytest.approx(0.5) and (1 - share) * w_neg == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both classes"):
        class_weights(1.0, 0.0)


def test_weights_follow_the_gold_class():
    losses = build_losses(FlipkdConfig().loss)
    labels = torch.tensor([1, 0, 1, -1])
    assert gen_weights(losses, labels) is None  # (1, 1): the plain mean, bit for bit
    losses.gen_class_weights = class_weights(1.0, 0.2)
    torch.testing.assert_close(gen_weights(losses, labels), torch.tensor([2.5, 0.625, 2.5, 0.625]))


def test_weighted_loss_is_the_mean_of_weighted_cross_entropies():
    student = tiny_student(tiny_config())
    w = torch.tensor([2.0, 0.5, 1.0, 3.0, 0.25, 1.0])
    with torch.no_grad():
        plain = student.gen_forward(PAIRS, GOLD, vocab="labels")
        ones = student.gen_forward(PAIRS, GOLD, vocab="labels", weights=torch.ones(6))
        got = student.gen_forward(PAIRS, GOLD, vocab="labels", weights=w)
    ce = torch.nn.functional.cross_entropy(plain.label_logits, (GOLD == 0).long(), reduction="none")
    torch.testing.assert_close(ones.loss, plain.loss)
    torch.testing.assert_close(got.loss, (w * ce).mean())


def test_option_is_validated_and_hash_neutral():
    base = FlipkdConfig()
    zero = FlipkdConfig.model_validate({"loss": {"gen_balance": 0.0}})
    one = FlipkdConfig.model_validate({"loss": {"gen_balance": 1.0}})
    assert config_hash(zero) == config_hash(base)
    assert config_hash(one) != config_hash(base)
    no_gen = {"gen": False}
    assert config_hash(
        FlipkdConfig.model_validate({"loss": {**no_gen, "gen_balance": 1.0}})
    ) == config_hash(FlipkdConfig.model_validate({"loss": no_gen}))  # nothing to weight
    with pytest.raises(ValueError, match="gen_balance"):
        FlipkdConfig.model_validate({"loss": {"gen_balance": 2.0}})


def _first_step(tmp_path, name, balance, pairs, cache):
    first, summary = first_step(tmp_path / name, pairs, cache, gen_balance=balance)
    return first["gen"], summary


def test_training_weights_l_gen_by_the_training_pairs_share(tmp_path):
    pairs = make_pairs()
    share = sum(p.label for p in pairs) / len(pairs)
    cache = make_cache(tmp_path / "cache", pairs)
    plain, plain_summary = _first_step(tmp_path, "plain", 0.0, pairs, cache)
    balanced, summary = _first_step(tmp_path, "balanced", 1.0, pairs, cache)
    assert plain_summary["gen_class_weights"] == [1.0, 1.0]
    assert summary["gen_class_weights"] == pytest.approx(list(class_weights(1.0, share)))
    assert balanced != pytest.approx(plain, abs=1e-4)  # the weights reach the loss


def test_one_class_training_pairs_are_a_clear_error(tmp_path):
    pairs = [dataclasses.replace(p, label=0) for p in make_pairs()]
    cache = make_cache(tmp_path / "cache", pairs)
    cfg = tiny_config(steps=1, save_every=0)
    cfg.loss.gen_balance = 1.0
    with pytest.raises(ConfigError, match="gen_balance.*0 positives"):
        train_student(cfg, tmp_path / "r", cache=cache, train_pairs=pairs, progress=False)
