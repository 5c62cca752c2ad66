"""FAQ file validation and the FAQ index: build, search, save, load, reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flipkd.errors import CacheError, DataError
from flipkd.serve.faq import FaqEntry, load_faq
from flipkd.serve.index import FaqIndex, directory_fingerprint, open_or_build
from test_serve_fake import FAQ_ROWS, FakeMatcher, write_faq_csv


@pytest.fixture
def entries() -> list[FaqEntry]:
    return [FaqEntry(*row) for row in FAQ_ROWS]


def test_load_faq_csv_and_jsonl_agree(tmp_path, entries):
    csv_path = write_faq_csv(tmp_path / "faq.csv")
    jsonl_path = tmp_path / "faq.jsonl"
    lines = [json.dumps({"id": i, "question": q, "answer": a}) for i, q, a in FAQ_ROWS]
    jsonl_path.write_text("\n".join(lines) + "\n\n")
    assert load_faq(csv_path) == entries
    assert load_faq(jsonl_path) == entries


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("faq.csv", "id,question\n1,hello\n", "faq.csv:1: missing column(s) answer"),
        ("faq.csv", "id,question,answer\n1,hi,a\n2,  ,b\n", "faq.csv:3: empty question"),
        ("faq.csv", "id,question,answer\n1,hi,a\n1,ho,b\n", "faq.csv:3: duplicate id '1'"),
        ("faq.csv", "id,question,answer\n1,hi\n", "faq.csv:2: missing value for answer"),
        ("faq.csv", "id,question,answer\n", "faq.csv: no FAQ entries"),
        ("faq.jsonl", '{"id": 1, "question": "q", "answer": "a"}\n{"id": 2,', "faq.jsonl:2: inv"),
        ("faq.jsonl", '{"id": 1, "answer": "a"}\n', "faq.jsonl:1: missing value for question"),
        ("faq.jsonl", "[1, 2, 3]\n", "faq.jsonl:1: expected an object"),
        ("faq.txt", "x", "unsupported FAQ format"),
    ],
)
def test_load_faq_names_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_faq(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_load_faq_rejects_non_utf8(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_bytes(b"id,question,answer\n1,caf\xe9,a\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_faq(path)


def test_search_ranks_by_cosine(entries):
    fake = FakeMatcher()
    index = FaqIndex.build(entries, fake.encode, batch_size=3)
    assert fake.calls_of("encode") == [3, 3, 2]
    assert len(index) == len(entries) and index.dim == 256
    hits = index.search(fake.encode(["reset password"])[0], k=3)
    assert [entries[h.position].id for h in hits][0] == "pw"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    brute = index.vectors @ fake.encode(["reset password"])[0]
    np.testing.assert_allclose(scores, np.sort(brute)[::-1][:3], rtol=1e-6)
    assert len(index.search(np.ones(256), k=100)) == len(entries)


def test_index_normalises_vectors(entries):
    rng = np.random.default_rng(0)
    index = FaqIndex(entries, rng.normal(size=(len(entries), 5)) * 7)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, rtol=1e-5)


def test_save_load_roundtrip_and_key_check(tmp_path, entries):
    fake = FakeMatcher()
    index = FaqIndex.build(entries, fake.encode, keys={"faq_hash": "abc", "model": "m"})
    index.save(tmp_path / "idx")
    loaded = FaqIndex.load(tmp_path / "idx", expect_keys={"faq_hash": "abc"})
    assert loaded.entries == entries and loaded.keys == index.keys
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    with pytest.raises(CacheError, match="another faq_hash"):
        FaqIndex.load(tmp_path / "idx", expect_keys={"faq_hash": "xyz"})
    (tmp_path / "idx" / "vectors.npz").write_bytes(b"garbage")
    with pytest.raises(CacheError, match="cannot read"):
        FaqIndex.load(tmp_path / "idx")


def test_open_or_build_reuses_only_matching_index(tmp_path, entries):
    fake = FakeMatcher()
    keys = {"faq_hash": "abc", "model": fake.name}
    open_or_build(tmp_path / "idx", entries, fake.encode, keys)
    calls = len(fake.calls)
    open_or_build(tmp_path / "idx", entries, fake.encode, keys)
    assert len(fake.calls) == calls  # reused
    rebuilt = open_or_build(tmp_path / "idx", entries[:3], fake.encode, {**keys, "faq_hash": "d"})
    assert len(fake.calls) > calls and len(rebuilt) == 3
    assert FaqIndex.load(tmp_path / "idx").keys["faq_hash"] == "d"


def test_directory_fingerprint_changes_with_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"1")
    before = directory_fingerprint(tmp_path)
    assert directory_fingerprint(tmp_path) == before
    (tmp_path / "a.bin").write_bytes(b"12")
    assert directory_fingerprint(tmp_path) != before
