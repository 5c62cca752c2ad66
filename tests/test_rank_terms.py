"""What L_rank (the label) and L_tap-rank (the A-tap) share: each adds its weighted value to a
first training step that is otherwise the same, and the ladder's rows that do not read the
teacher keep it at 0 whatever the profile says."""

from __future__ import annotations

import dataclasses

import pytest

from tiny_run import first_step, make_cache, make_pairs

# option -> a term of the plain step whose first value it must leave as it is, and the
# rows that must keep the option at 0
TERMS = {
    "label_rank": ("gen", ("sft", "sft-kd")),
    "tap_rank": ("dist", ("sft", "sft-kd", "teacher", "zero-shot")),
}


@pytest.mark.parametrize("option", sorted(TERMS))
def test_it_adds_to_an_otherwise_identical_first_step(option, tmp_path):
    pairs = make_pairs()
    cache = make_cache(tmp_path / "cache", pairs)
    first, _ = first_step(tmp_path / "on", pairs, cache, **{option: 1.0})
    assert first[option] > 0
    plain, _ = first_step(tmp_path / "off", pairs, cache)
    assert option not in plain
    same = TERMS[option][0]
    assert first[same] == pytest.approx(plain[same], abs=1e-6)  # the same first forward
    assert first["loss"] == pytest.approx(plain["loss"] + first[option], abs=1e-5)


@pytest.mark.parametrize("option", sorted(TERMS))
def test_rows_without_the_teacher_stay_free_of_it(option):
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    prof = PROFILES["cpu"]
    prof = dataclasses.replace(prof, overrides={**prof.overrides, f"loss.{option}": 1.0})
    for row in TERMS[option][1]:
        assert getattr(build_config(prof, "mqp", row, 0, []).loss, option) == 0.0
    assert getattr(build_config(prof, "mqp", "fip", 0, []).loss, option) == 1.0
