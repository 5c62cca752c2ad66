"""The fip-weak-teacher row's degraded teacher: noise drawn per run seed, not per teacher."""

from __future__ import annotations

import torch

from flipkd.config import FlipkdConfig
from flipkd.reproduce.weak import weak_teacher_cache
from tiny_run import make_cache, make_pairs


def _cfg(noise: float, train_seed: int, teacher_seed: int) -> FlipkdConfig:
    cfg = FlipkdConfig(name="weak")
    cfg.teacher.noise, cfg.train.seed, cfg.teacher.seed = noise, train_seed, teacher_seed
    return cfg


def test_no_noise_is_the_teacher_itself(tmp_path):
    pairs = make_pairs()
    cache = make_cache(tmp_path, pairs)
    assert weak_teacher_cache(_cfg(0.0, 1, 0), cache, pairs) is cache


def test_shared_teacher_gets_a_different_degraded_copy_per_seed(tmp_path):
    pairs = make_pairs()
    cache = make_cache(tmp_path, pairs)
    # one teacher (teacher.seed 0) shared by two ladder seeds: each seed its own noise
    s0 = weak_teacher_cache(_cfg(0.5, 0, 0), cache, pairs)
    s1 = weak_teacher_cache(_cfg(0.5, 1, 0), cache, pairs)
    assert not torch.allclose(s0.embeddings, s1.embeddings)
    # the same run seed draws the same noise, whatever the teacher's seed
    again = weak_teacher_cache(_cfg(0.5, 1, 7), cache, pairs)
    assert torch.equal(s1.embeddings, again.embeddings)
    # it is degraded: unit vectors moved off the teacher's, tagged in the manifest
    assert torch.allclose(s0.embeddings.norm(dim=-1), torch.ones(len(s0.embeddings)), atol=1e-5)
    assert not torch.allclose(s0.embeddings, cache.embeddings, atol=1e-2)
    assert s0.manifest["model_id"].endswith("+noise0.5")
