"""A deterministic fake Matcher for the serve tests, and checks that it keeps the protocol.

Embeddings are hashed bags of words (so "reset password" lands near "How do I
reset my password?"); every model call can sleep, to make batching measurable,
and can wait on a gate, to hold the model busy while a test fills the queue.
Like a real tokenizer it fails on a text that is not valid Unicode (a lone
surrogate), and it can be told to fail on a ``poison`` word, so tests can
check that one bad item does not fail the other items of its batch.
Other serve tests import it: ``from test_serve_fake import FakeMatcher, FAQ_ROWS``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from flipkd.modes import SCORE_RANGE
from flipkd.serve.protocol import check_matcher, load_matcher

FAQ_ROWS = [
    ("pw", "How do I reset my password?", "Use the 'forgot password' link on the login page."),
    ("hours", "What are your opening hours?", "Monday to Friday, 9:00 to 17:00."),
    ("cancel", "How can I cancel my order?", "Open the order and press 'cancel'."),
    ("refund", "When will I get my refund?", "Refunds arrive within five working days."),
    ("ship", "Do you ship to other countries?", "We ship to the EU and the UK."),
    ("card", "Which credit cards do you accept?", "Visa, Mastercard and Amex."),
    ("email", "How do I change my email address?", "Edit it under account settings."),
    ("delete", "How do I delete my account?", "Write to support; we delete it in 30 days."),
]


class FakeMatcher:
    """Hashed bag-of-words matcher with optional per-call delay and a gate.

    Args:
        dim: Embedding width.
        delay_s: Sleep per model call (not per item), like a batched GPU call.
        gate: If given, each call waits until the event is set.
        poison: If given, a call fails when any of its texts contains this word.
    """

    name = "fake-hashing"

    def __init__(
        self,
        dim: int = 256,
        delay_s: float = 0.0,
        gate: threading.Event | None = None,
        poison: str | None = None,
    ) -> None:
        self.dim = dim
        self.delay_s = delay_s
        self.gate = gate
        self.poison = poison
        self.threshold = {"gen": 0.5, "rep": 0.4}
        self.calls: list[tuple[str, int]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            text.encode("utf-8")  # a lone surrogate fails here, as in a real tokenizer
            if self.poison is not None and self.poison in text:
                raise ValueError(f"poisoned text {text!r}")
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
                out[row, digest[0] % self.dim] += 1.0 if digest[1] % 2 else -1.0
            out[row, -1] += 0.1  # never all-zero
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def _call(self, kind: str, n: int) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((kind, n))
        try:
            if self.gate is not None:
                self.gate.wait(10)
            if self.delay_s:
                time.sleep(self.delay_s)
        finally:
            with self._lock:
                self.active -= 1

    def encode(self, texts: list[str]) -> np.ndarray:
        self._call("encode", len(texts))
        return self._embed(texts)

    def score_pairs(self, pairs: list[tuple[str, str]], mode: str = "gen") -> np.ndarray:
        self._call(mode, len(pairs))
        a = self._embed([p[0] for p in pairs])
        b = self._embed([p[1] for p in pairs])
        cos = np.sum(a * b, axis=1)
        if mode == "rep":
            return cos
        return 1.0 / (1.0 + np.exp(-8.0 * (cos - 0.4)))

    def calls_of(self, kind: str) -> list[int]:
        """Batch sizes of the calls of one kind."""
        return [n for k, n in self.calls if k == kind]


class ContraryMatcher(FakeMatcher):
    """A fake whose generated label ranks the other way round from its cosine, so that
    re-ranking (and how much of the cosine is mixed back in) visibly changes the order."""

    name = "fake-contrary"

    def score_pairs(self, pairs: list[tuple[str, str]], mode: str = "gen") -> np.ndarray:
        scores = super().score_pairs(pairs, mode)
        return 1.0 - scores if mode == "gen" else scores


def load(path: Path) -> FakeMatcher:
    """Loader for ``--loader test_serve_fake:load``; reads ``fake.json`` (delay_s) if present."""
    settings = Path(path) / "fake.json"
    options = json.loads(settings.read_text()) if settings.exists() else {}
    return FakeMatcher(delay_s=float(options.get("delay_s", 0.0)))


def write_faq_csv(path: Path, rows: list[tuple[str, str, str]] = FAQ_ROWS) -> Path:
    """Write ``rows`` as an FAQ CSV and return its path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "answer"])
        writer.writerows(rows)
    return path


def test_fake_keeps_the_protocol():
    fake = check_matcher(FakeMatcher())
    vectors = fake.encode(["reset my password", "opening hours"])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors, fake.encode(["reset my password", "opening hours"]))


def test_fake_scores_related_pairs_higher():
    fake = FakeMatcher()
    pairs = [("reset my password", "How do I reset my password?"), ("reset my password", "ship")]
    for mode, (low, high) in SCORE_RANGE.items():
        scores = fake.score_pairs(pairs, mode=mode)
        assert scores.shape == (2,) and ((scores >= low) & (scores <= high)).all()
        assert scores[0] > scores[1]
    assert fake.calls_of("gen") == [2]


def test_loader_spec_loads_the_fake(tmp_path):
    (tmp_path / "fake.json").write_text(json.dumps({"delay_s": 0.01}))
    matcher = load_matcher(tmp_path, "test_serve_fake:load")
    assert matcher.name == "fake-hashing" and matcher.delay_s == 0.01


def test_check_matcher_rejects_bad_thresholds():
    from flipkd.errors import ModelError

    fake = FakeMatcher()
    fake.threshold = {"gen": 1.5, "rep": 0.5}
    with pytest.raises(ModelError, match="threshold"):
        check_matcher(fake)
    fake.threshold = {"gen": 0.5, "rep": -1.5}  # a cosine: [-1, 1]
    with pytest.raises(ModelError, match=r"threshold\['rep'\] must be in \[-1, 1\]"):
        check_matcher(fake)
    fake.threshold = {"gen": 0.5, "rep": -0.2, "mix": float("nan")}  # mix: any number, not NaN
    with pytest.raises(ModelError, match=r"threshold\['mix'\]"):
        check_matcher(fake)
    fake.threshold = {"gen": 0.5, "rep": -0.2}
    check_matcher(fake)
    with pytest.raises(ModelError, match="unknown loader"):
        load_matcher(Path("."), "no-such-loader")


def test_fake_fails_like_a_tokenizer_on_bad_text():
    fake = FakeMatcher(poison="boom")
    with pytest.raises(UnicodeEncodeError):
        fake.encode(["fine", "a\ud800b"])
    with pytest.raises(ValueError, match="poisoned"):
        fake.score_pairs([("fine", "it went boom")])
    assert fake.encode(["emoji \U0001f600 fine"]).shape == (1, 256)
