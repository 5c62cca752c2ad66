"""train.hard_batches: batches drawn from teacher-embedding clusters of the training pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer import train_student
from flipkd.trainer.hard_batches import cluster_pairs, pair_vectors, teacher_groups
from flipkd.trainer.sampler import batch_indices, epoch_order
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def test_grouped_epoch_is_a_permutation_walking_one_group_after_another():
    groups = np.repeat(np.arange(5), [7, 3, 9, 1, 4])
    np.random.default_rng(1).shuffle(groups)
    for epoch in range(3):
        order = epoch_order(groups.size, 0, epoch, groups)
        assert sorted(order) == list(range(groups.size))
        seen = groups[order]
        runs = [g for i, g in enumerate(seen) if i == 0 or g != seen[i - 1]]
        assert len(runs) == 5  # each group's members are consecutive
    a, b = (groups[epoch_order(groups.size, 0, e, groups)] for e in (0, 1))
    assert not np.array_equal(a, b)  # the groups' order changes between epochs
    assert np.array_equal(epoch_order(24, 3, 2, groups), epoch_order(24, 3, 2, groups))


def test_no_groups_keeps_the_random_order():
    assert np.array_equal(epoch_order(30, 4, 1), np.random.default_rng([4, 1]).permutation(30))
    assert np.array_equal(batch_indices(30, 8, 4, 5), batch_indices(30, 8, 4, 5, None))


def test_grouped_batches_are_mostly_one_group():
    groups = np.repeat(np.arange(8), 16)
    purity = []
    for step in range(16):
        idx = batch_indices(groups.size, 16, 0, step, groups)
        purity.append(np.bincount(groups[idx]).max() / 16)
    assert min(purity) == 1.0  # clusters of exactly one batch: every batch is one cluster
    random = [
        np.bincount(groups[batch_indices(groups.size, 16, 0, s)]).max() / 16 for s in range(16)
    ]
    assert max(random) < 0.6


def test_wrong_group_shape_is_an_error():
    with pytest.raises(ValueError, match="groups has shape"):
        epoch_order(10, 0, 0, np.zeros(9, dtype=int))


def test_clusters_follow_the_teacher(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(10, 16)) for c in centres])
    labels = cluster_pairs(vectors, 10, seed=0)
    assert len(set(labels)) == 4
    for block in labels.reshape(4, 10):
        assert len(set(block)) == 1  # the points around one centre share a cluster
    assert np.array_equal(labels, cluster_pairs(vectors, 10, seed=0))
    assert set(cluster_pairs(vectors, 100, seed=0)) == {0}  # fewer pairs than one cluster

    pairs = make_pairs(24)
    cache = make_cache(tmp_path / "cache", pairs)
    unit = pair_vectors(pairs, cache)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    groups = teacher_groups(pairs, cache, 6, seed=0)
    assert groups.shape == (24,) and len(set(groups)) == 4


def test_option_is_hash_neutral_at_zero_and_changes_what_training_sees(tmp_path):
    assert config_hash(FlipkdConfig.model_validate({"train": {"hard_batches": 0}})) == config_hash(
        FlipkdConfig()
    )
    assert config_hash(FlipkdConfig.model_validate({"train": {"hard_batches": 32}})) != config_hash(
        FlipkdConfig()
    )
    with pytest.raises(ValueError):
        FlipkdConfig.model_validate({"train": {"hard_batches": -1}})
    pairs = make_pairs(32)
    cache = make_cache(tmp_path / "cache", pairs)
    first = {}
    for size in (0, 8):
        cfg = tiny_config(steps=2, dropout=0.0, save_every=0, hard_batches=size)
        run = tmp_path / f"h{size}"
        train_student(
            cfg, run, cache=cache, train_pairs=pairs, student=tiny_student(cfg), progress=False
        )
        first[size] = json.loads((run / "logs" / "train.jsonl").read_text().splitlines()[0])
    assert first[0]["loss"] != pytest.approx(first[8]["loss"], abs=1e-6)  # other batches
