"""L_dist over every text of the batch (``loss.dist_scope: texts``), against the pair form."""

from __future__ import annotations

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.losses import kl_dist_loss, kl_texts_dist_loss
from flipkd.trainer.step import batch_loss, build_losses
from tiny_run import first_step, make_cache, make_pairs


def _unit(rows: int, dim: int = 6, seed: int = 0) -> torch.Tensor:
    draw = torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(draw, dim=1)


# four texts: a0, a1 (first texts) and b0, b1 (second texts); the pairs are (a0, b0), (a1, b1)
TEACHER_REPS = _unit(4)
TEACHER = TEACHER_REPS @ TEACHER_REPS.T


def test_zero_at_the_teachers_geometry_and_blind_to_the_self_cosine():
    assert float(kl_texts_dist_loss(TEACHER, TEACHER)) == pytest.approx(0.0, abs=1e-6)
    other = _unit(4, seed=1)
    moved = kl_texts_dist_loss(other @ other.T, TEACHER)
    assert float(moved) > 0.1
    # a text against itself is out of its row: changing the diagonal changes nothing
    odd_diag = other @ other.T + torch.diag(torch.tensor([5.0, -3.0, 0.7, 2.0]))
    assert float(kl_texts_dist_loss(odd_diag, TEACHER)) == pytest.approx(float(moved), rel=1e-6)


def test_it_sees_the_geometry_that_the_pair_rows_leave_out():
    # the student agrees with the teacher on every first-text-against-second-text cosine,
    # but puts a0 and a1 (same side, the teacher's closest two) far apart
    student = TEACHER.clone()
    student[0, 1] = student[1, 0] = -0.9
    a, b = [0, 1], [2, 3]
    labels = torch.tensor([1.0, 0.0])
    pair_form = kl_dist_loss(student[a][:, b], TEACHER[a][:, b], labels)
    assert float(pair_form) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_texts_dist_loss(student, TEACHER)) > 0.5


def test_gradient_reaches_every_other_text_and_no_self_cosine():
    student = (_unit(4, seed=2) @ _unit(4, seed=2).T).requires_grad_(True)
    kl_texts_dist_loss(student, TEACHER).backward()
    grad = student.grad
    assert float(grad.diagonal().abs().sum()) == 0.0
    off = grad[~torch.eye(4, dtype=torch.bool)]
    assert bool((off != 0).all())
    assert student.grad is not None and TEACHER.grad is None


def test_too_few_texts_give_zero_in_the_graph_and_shapes_are_checked():
    two = torch.ones(2, 2, requires_grad=True)
    loss = kl_texts_dist_loss(two, torch.ones(2, 2))
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="square"):
        kl_texts_dist_loss(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="teacher_sim"):
        kl_texts_dist_loss(TEACHER, torch.zeros(3, 3))


def test_batch_loss_reads_the_text_view_for_l_dist_alone():
    cfg = FlipkdConfig.model_validate(
        {"loss": {"dist_scope": "texts", "dist_t_student": 0.1, "gen": False}}
    )
    losses = build_losses(cfg.loss)
    assert losses.needs_text_view
    reps = _unit(4, seed=3).requires_grad_(True)
    rep_a, rep_b = reps[:2], reps[2:]
    labels = torch.tensor([1.0, 0.0])
    pair_cos = TEACHER[:2, 2:]
    total, log = batch_loss(
        losses, None, rep_a, rep_b, pair_cos, pair_cos.clamp(0, 1), labels,
        text_view=(reps, TEACHER),
    )  # fmt: skip
    fixed = reps.detach()
    want = float(kl_texts_dist_loss(fixed @ fixed.T, TEACHER, t_student=0.1))
    assert log["dist"] == pytest.approx(want, rel=1e-5)
    pairs = build_losses(FlipkdConfig.model_validate({"loss": {"gen": False}}).loss)
    assert not pairs.needs_text_view
    _, log_pairs = batch_loss(pairs, None, rep_a, rep_b, pair_cos, pair_cos.clamp(0, 1), labels)
    assert log["contrast"] == pytest.approx(log_pairs["contrast"], rel=1e-6)  # MCL unchanged
    assert log["dist"] != pytest.approx(log_pairs["dist"], rel=1e-3)
    total.backward()
    assert reps.grad is not None
    with pytest.raises(ValueError, match="text_view"):
        batch_loss(losses, None, rep_a, rep_b, pair_cos, pair_cos.clamp(0, 1), labels)


def test_the_collapse_diagnostic_reads_the_scope_l_dist_trains():
    # with every student cosine equal each text's row is uniform over the others: the
    # collapse value is KL(teacher row || uniform over N-1), not the pair form's B-wide one
    cfg = FlipkdConfig.model_validate({"loss": {"dist_scope": "texts", "gen": False}})
    losses = build_losses(cfg.loss)
    reps = _unit(4, seed=4)
    rep_a, rep_b = reps[:2], reps[2:]
    labels = torch.tensor([1.0, 0.0])
    pair_cos = TEACHER[:2, 2:]
    terms: dict = {}
    _, log = batch_loss(
        losses, None, rep_a, rep_b, pair_cos, pair_cos.clamp(0, 1), labels,
        terms_out=terms, text_view=(reps, TEACHER),
    )  # fmt: skip
    want = float(kl_texts_dist_loss(torch.zeros(4, 4), TEACHER))
    assert log["collapse/dist"] == pytest.approx(want, rel=1e-6)
    pairs = build_losses(FlipkdConfig.model_validate({"loss": {"gen": False}}).loss)
    _, log_pairs = batch_loss(
        pairs, None, rep_a, rep_b, pair_cos, pair_cos.clamp(0, 1), labels, terms_out={}
    )
    assert log_pairs["collapse/dist"] != pytest.approx(want, rel=1e-3)
    assert log["collapse/contrast"] == pytest.approx(log_pairs["collapse/contrast"], rel=1e-6)


def test_option_is_validated_and_hash_neutral_at_pairs():
    base = FlipkdConfig()
    pairs = FlipkdConfig.model_validate({"loss": {"dist_scope": "pairs"}})
    texts = FlipkdConfig.model_validate({"loss": {"dist_scope": "texts"}})
    assert config_hash(pairs) == config_hash(base) != config_hash(texts)
    with pytest.raises(ValueError, match="dist: kl"):
        FlipkdConfig.model_validate({"loss": {"dist_scope": "texts", "dist": "mse"}})
    with pytest.raises(ValueError):
        FlipkdConfig.model_validate({"loss": {"dist_scope": "all"}})
    # no L_dist: the scope is moot, not an error (the ladder's rows without it reset it)
    assert not build_losses(
        FlipkdConfig.model_validate({"loss": {"dist_scope": "texts", "dist": "none"}}).loss
    ).needs_text_view


def test_a_first_training_step_changes_l_dist_alone(tmp_path):
    pairs = make_pairs()
    cache = make_cache(tmp_path / "cache", pairs)
    texts, _ = first_step(tmp_path / "texts", pairs, cache, dist_scope="texts")
    plain, _ = first_step(tmp_path / "plain", pairs, cache)
    for same in ("gen", "contrast"):  # the same first forward
        assert texts[same] == pytest.approx(plain[same], abs=1e-6)
    assert texts["dist"] > 0 and texts["dist"] != pytest.approx(plain["dist"], rel=1e-3)
    assert texts["loss"] - texts["dist"] == pytest.approx(plain["loss"] - plain["dist"], abs=1e-5)


def test_the_ladders_rows_without_l_dist_keep_the_pair_scope():
    import dataclasses

    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    prof = PROFILES["cpu"]
    prof = dataclasses.replace(prof, overrides={**prof.overrides, "loss.dist_scope": "texts"})
    for row in ("teacher", "zero-shot", "sft", "sft-kd", "fip-no-dist"):
        assert build_config(prof, "mqp", row, 0, []).loss.dist_scope == "pairs"
    for row in ("fip", "fip-no-mcl", "fip-no-filter"):
        assert build_config(prof, "mqp", row, 0, []).loss.dist_scope == "texts"
