"""Atomic writes: a file appears whole or not at all, readable as a plain ``open`` makes it."""

from __future__ import annotations

import stat

import pytest

from flipkd import paths
from flipkd.paths import atomic_file, write_json


def test_an_atomic_file_has_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json(tmp_path / "result.json", {"a": 1})
    with atomic_file(tmp_path / "records.json.gz", "wb") as fh:
        fh.write(b"x")
    expected = stat.S_IMODE(plain.stat().st_mode)
    for name in ("result.json", "records.json.gz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected
    assert expected & stat.S_IROTH  # under the usual umask 022: others can read (not 0600)


def test_the_permissions_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_umask", lambda: 0o077)
    write_json(tmp_path / "private.json", {})
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]
