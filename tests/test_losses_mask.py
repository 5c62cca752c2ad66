"""The dual-threshold mask: hand-made cases, the unfiltered mode, and input guards."""

from __future__ import annotations

import pytest
import torch

from flipkd.losses import dual_threshold_mask

# Rows: a_0 (gold 1), a_1 (gold 0), a_2 (gold 1), a_3 (gold 0). Diagonal = labelled pairs.
PROB = torch.tensor(
    [
        [0.90, 0.10, 0.50, 0.40],  # kept pos; (0,1) neg; (0,2) ignored; (0,3) neg (== θ_neg)
        [0.70, 0.30, 0.41, 0.00],  # kept neg; (1,0) ignored; (1,2) ignored; (1,3) neg
        [0.20, 0.20, 0.55, 0.60],  # gold 1 but unsure: dropped; (2,0),(2,1) neg; (2,3) ignored
        [0.05, 0.95, 0.35, 0.80],  # gold 0, teacher says match: dropped, disagree
    ]
)
LABELS = torch.tensor([1, 0, 1, 0])


def test_hand_made_case_masks_and_counts():
    mask = dual_threshold_mask(PROB, LABELS, theta_pos=0.6, theta_neg=0.4)
    expected_pos = torch.zeros(4, 4, dtype=torch.bool)
    expected_pos[0, 0] = True
    expected_neg = torch.zeros(4, 4, dtype=torch.bool)
    for cell in [(1, 1), (0, 1), (0, 3), (1, 3), (2, 0), (2, 1), (3, 0), (3, 2)]:
        expected_neg[cell] = True
    assert torch.equal(mask.pos, expected_pos)
    assert torch.equal(mask.neg, expected_neg)
    assert mask.stats == {
        "kept_pos": 1,
        "kept_neg": 1,
        "dropped_pos": 1,
        "dropped_neg": 1,
        "disagree": 1,
        "inbatch_neg": 7,
        "inbatch_ignored": 5,
    }


def test_thresholds_are_inclusive():
    prob = torch.tensor([[0.6, 0.4], [0.41, 0.4]])
    mask = dual_threshold_mask(prob, torch.tensor([1, 0]), theta_pos=0.6, theta_neg=0.4)
    assert bool(mask.pos[0, 0]) and bool(mask.neg[1, 1]) and bool(mask.neg[0, 1])
    assert not bool(mask.neg[1, 0])


def test_disabled_keeps_gold_labels_and_all_inbatch_pairs():
    mask = dual_threshold_mask(PROB, LABELS, enabled=False)
    assert torch.equal(torch.diagonal(mask.pos), LABELS.bool())
    off_diag = ~torch.eye(4, dtype=torch.bool)
    assert torch.equal(mask.neg, off_diag | torch.diag_embed(~LABELS.bool()))
    assert mask.stats["dropped_pos"] == mask.stats["dropped_neg"] == 0
    assert mask.stats["inbatch_neg"] == 12 and mask.stats["inbatch_ignored"] == 0
    assert mask.stats["disagree"] == 1
    assert not bool((mask.pos & mask.neg).any())


def test_disabled_ignores_thresholds():
    mask = dual_threshold_mask(PROB, LABELS, theta_pos=0.3, theta_neg=0.5, enabled=False)
    assert mask.stats["kept_pos"] == 2


@pytest.mark.parametrize("seed", range(3))
def test_masks_are_disjoint_and_positives_diagonal(seed):
    gen = torch.Generator().manual_seed(seed)
    prob = torch.rand(6, 6, generator=gen)
    labels = torch.randint(0, 2, (6,), generator=gen)
    mask = dual_threshold_mask(prob, labels)
    assert not bool((mask.pos & mask.neg).any())
    assert torch.equal(mask.pos, torch.diag_embed(torch.diagonal(mask.pos)))
    stats = mask.stats
    assert stats["kept_pos"] + stats["dropped_pos"] == int(labels.sum())
    assert stats["inbatch_neg"] + stats["inbatch_ignored"] == 30


@pytest.mark.parametrize(("theta_pos", "theta_neg"), [(0.5, 0.5), (0.4, 0.6), (0.6, -0.1)])
def test_bad_thresholds_raise(theta_pos, theta_neg):
    with pytest.raises(ValueError, match="theta"):
        dual_threshold_mask(PROB, LABELS, theta_pos=theta_pos, theta_neg=theta_neg)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        dual_threshold_mask(PROB, torch.tensor([1, 0, 2, 0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dual_threshold_mask(PROB * 2, LABELS)
    with pytest.raises(ValueError, match="labels must be"):
        dual_threshold_mask(PROB, LABELS[:3])
    with pytest.raises(ValueError, match=r"\[B, B\]"):
        dual_threshold_mask(PROB[:3], LABELS)


def test_disagree_counts_only_the_far_side_of_one_half():
    prob = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.49]])
    mask = dual_threshold_mask(prob, torch.tensor([1, 0, 1]), enabled=False)
    assert mask.stats["disagree"] == 1  # only the gold positive at 0.49
