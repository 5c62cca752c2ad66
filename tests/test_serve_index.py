"""FAQ file validation and the FAQ index: build, search, save, load, reuse."""

from __future__ import annotations

import json
import os

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


# Bad FAQ files are in tests/bad_inputs/serve/faq/, run by test_serve_bad_inputs.py.


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("faq.csv", "id,question\npw,How do I reset my password?\nhours,Opening hours?\n"),
        ("faq.tsv", "id\tquestion\npw\tHow do I reset my password?\nhours\tOpening hours?\n"),
        (
            "faq.jsonl",
            '{"id": "pw", "question": "How do I reset my password?"}\n\n'
            '{"id": "hours", "question": "Opening hours?", "answer": null}\n',
        ),
        (
            "faq.csv",
            "ID , Question ,Answer\npw,How do I reset my password?,\nhours,Opening hours?, \n",
        ),
    ],
    ids=["csv", "tsv", "jsonl-null-answer", "csv-padded-header-empty-answers"],  # printable
)
def test_answer_is_optional(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert load_faq(path) == [
        FaqEntry("pw", "How do I reset my password?"),
        FaqEntry("hours", "Opening hours?"),
    ]


def test_ids_may_be_strings_or_integers(tmp_path):
    path = tmp_path / "faq.jsonl"
    rows = [
        {"id": "Q-007", "question": "a", "answer": "x"},
        {"id": 12, "question": "b"},
        {"id": " 13 ", "question": "c", "extra": {"ignored": True}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    expected = [("Q-007", "x"), ("12", None), ("13", None)]
    assert [(e.id, e.answer) for e in load_faq(path)] == expected


def test_csv_quoting_bom_and_crlf(tmp_path):
    path = tmp_path / "faq.csv"
    text = 'id,question,answer\r\n1,"Pay, or refund?","Line one\r\nline two"\r\n2,q2,a2\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    entries = load_faq(path)
    assert entries[0] == FaqEntry("1", "Pay, or refund?", "Line one\r\nline two")
    assert entries[1] == FaqEntry("2", "q2", "a2")


def test_not_utf8_names_the_line_after_a_multiline_field(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_bytes(b'id,question,answer\n1,q,"two\nlines"\n2,caf\xe9,a\n')
    with pytest.raises(DataError, match=r"faq.csv:4: not UTF-8"):
        load_faq(path)


@pytest.mark.parametrize("name", ["faq.csv", "faq.tsv"])
def test_answer_over_the_limit_names_the_line(tmp_path, name):
    path = tmp_path / name
    sep = "\t" if name.endswith(".tsv") else ","
    rows = ["id", "question", "answer"], ["1", "q", "a"], ["2", "q2", "x" * 110_000]
    path.write_text("".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name}:3: answer has 110000 characters; the limit is"):
        load_faq(path)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_faq_path_that_is_not_a_file(tmp_path, kind):
    path = tmp_path / "faq.csv"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would hang
    message = "file not found" if kind == "missing" else "not a regular file"
    with pytest.raises(DataError, match=message):
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


def test_a_saved_index_is_rebuilt_for_another_precision(tmp_path):
    from flipkd.serve.index import index_keys

    faq = tmp_path / "faq.csv"
    faq.write_text("id,question\n1,a\n")
    fp32, bf16 = (index_keys(faq, "m", tmp_path, p) for p in ("float32", "bfloat16"))
    assert fp32 != bf16 and fp32["precision"] == "float32"
    assert index_keys(faq, "m", tmp_path) == fp32  # the default: float32 vectors
