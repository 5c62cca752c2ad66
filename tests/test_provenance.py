"""provenance.process_commit: a long run names the code it ran, not a later HEAD."""

from __future__ import annotations

from flipkd import provenance


def test_process_commit_is_the_commit_when_first_asked(monkeypatch):
    heads = iter(["aaa", "bbb"])
    monkeypatch.setattr(provenance, "git_commit", lambda *a, **k: next(heads))
    provenance.process_commit.cache_clear()
    try:
        assert provenance.process_commit() == "aaa"
        assert provenance.git_commit() == "bbb"  # the checkout moved on (a commit meanwhile)
        assert provenance.process_commit() == "aaa"  # the process still runs the old code
    finally:
        provenance.process_commit.cache_clear()
