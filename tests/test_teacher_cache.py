"""Teacher cache (hash-keyed reuse, refusal, atomic writes), calibration and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from flipkd.errors import CacheError
from flipkd.teacher import (
    build_teacher_cache,
    build_tiny_teacher,
    disagreement_table,
    encoder,
    fit_calibration,
    open_teacher_cache,
    write_teacher_report,
)
from flipkd.teacher import cache as cache_mod
from flipkd.teacher.tiny import toy_pairs, toy_words

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("teachers")
    words = toy_words()
    return build_tiny_teacher(root / "a", words, seed=0), build_tiny_teacher(
        root / "b", words, seed=1
    )


@pytest.fixture
def pairs() -> list:
    return toy_pairs(40, seed=0)


def _texts(pairs: list) -> list[str]:
    return [t for p in pairs for t in (p.text_a, p.text_b)]


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher model was called")

    monkeypatch.setattr(encoder, "load_encoder", boom)
    monkeypatch.setattr(encoder, "encode_texts", boom)


def test_cache_matches_the_encoder_and_hits_without_the_model(
    teachers: tuple[Path, Path], pairs: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    cache = build_teacher_cache(
        teachers[0], _texts(pairs), out_dir=out, calibration_pairs=pairs, progress=False
    )
    a, b = [p.text_a for p in pairs], [p.text_b for p in pairs]
    model = encoder.load_encoder(encoder.resolve_source(teachers[0]))
    direct = encoder.encode_texts(model, a) @ encoder.encode_texts(model, b).T
    sim = cache.sim(a, b)
    assert sim.shape == (40, 40)
    torch.testing.assert_close(sim, direct, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache.pair_sim(a, b), torch.diagonal(sim))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == len(set(_texts(pairs))) and manifest["normalized"]
    assert manifest["dim"] == 32 and manifest["calibration"]["method"] == "logistic"

    _no_model(monkeypatch)
    again = build_teacher_cache(
        teachers[0], reversed(_texts(pairs)), out_dir=out, calibration_pairs=pairs, progress=False
    )
    assert torch.equal(again.sim(a, b), sim)
    assert torch.equal(again.prob(sim), cache.prob(sim))
    assert json.loads((out / "manifest.json").read_text())["created"] == manifest["created"]


def test_data_change_encodes_only_the_new_texts(
    teachers: tuple[Path, Path], pairs: list, tmp_path: Path
) -> None:
    """Another text set from the same teacher keeps the vectors already there and encodes only
    the new texts (a data-scale sweep's variants share one teacher); the result is what a full
    rebuild gives. Calibration pairs are part of the key but need no encoding at all. The
    stored set only grows; each caller gets exactly its own texts."""
    out = tmp_path / "cache"
    first = build_teacher_cache(teachers[0], _texts(pairs), out_dir=out, progress=False)
    calls: list[int] = []
    real = encoder.encode_texts

    def counting(model: object, texts: list[str], **kw: object) -> torch.Tensor:
        calls.append(len(texts))
        return real(model, texts, **kw)

    more = [*_texts(pairs), "fever1 cough2"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encoder, "encode_texts", counting)
        second = build_teacher_cache(teachers[0], more, out_dir=out, progress=False)
        assert calls == [1]
        assert second.manifest["data_hash"] != first.manifest["data_hash"]
        assert second.manifest["encoded"] == 1 and len(second) == len(first) + 1
        assert torch.equal(second.embed(first.texts), first.embeddings)
        # Calibration pairs are part of the key too: a rebuild, from the vectors alone.
        third = build_teacher_cache(
            teachers[0], more, out_dir=out, calibration_pairs=pairs, progress=False
        )
        assert len(calls) == 1 and third.manifest["encoded"] == 0
        assert third.manifest["calib_hash"] != second.manifest["calib_hash"]
        # A smaller set is read from the stored one: nothing encoded, nothing written, and
        # the stored texts stay for the next user.
        fewer = build_teacher_cache(
            teachers[0], _texts(pairs), out_dir=out, calibration_pairs=pairs, progress=False
        )
        assert len(calls) == 1 and fewer.texts == sorted(set(_texts(pairs)))
        assert len(fewer) == len(third) - 1 and "fever1 cough2" not in fewer
        stored = json.loads((out / "manifest.json").read_text())
        assert stored["count"] == len(third) and stored["created"] == third.manifest["created"]
        # New texts are added to what is stored; the caller gets what it asked for.
        grown = build_teacher_cache(
            teachers[0], [*_texts(pairs), "rash3"], out_dir=out, calibration_pairs=pairs,
            progress=False,
        )  # fmt: skip
        assert calls == [1, 1] and len(grown) == len(fewer) + 1
        assert json.loads((out / "manifest.json").read_text())["count"] == len(third) + 1
        assert torch.equal(grown.embed(fewer.texts), fewer.embeddings)
    # what a run gets does not depend on what else the cache held before
    alone = build_teacher_cache(
        teachers[0], _texts(pairs), out_dir=tmp_path / "alone", calibration_pairs=pairs,
        progress=False,
    )  # fmt: skip
    assert alone.texts == fewer.texts
    torch.testing.assert_close(alone.embeddings, fewer.embeddings, atol=1e-5, rtol=0)
    full = build_teacher_cache(
        teachers[0], more, out_dir=tmp_path / "full", calibration_pairs=pairs, progress=False
    )
    assert full.texts == third.texts
    torch.testing.assert_close(third.embeddings, full.embeddings, atol=1e-5, rtol=0)
    cosines = torch.linspace(-1, 1, 9)
    torch.testing.assert_close(third.prob(cosines), full.prob(cosines), atol=1e-4, rtol=0)
    # forced: everything encoded again
    build_teacher_cache(teachers[0], more, out_dir=out, progress=False, force=True)
    assert json.loads((out / "manifest.json").read_text())["encoded"] == len(full)


def test_other_teacher_is_refused_and_rebuilt(
    teachers: tuple[Path, Path], pairs: list, tmp_path: Path
) -> None:
    out = tmp_path / "cache"
    built = build_teacher_cache(teachers[0], _texts(pairs), out_dir=out, progress=False)
    assert open_teacher_cache(out, teacher=teachers[0], texts=_texts(pairs)).dim == 32
    with pytest.raises(CacheError, match="built by teacher 'a'.*not by 'b'"):
        open_teacher_cache(out, teacher=teachers[1])
    prefixed = tmp_path / "prefixed"
    build_teacher_cache(
        teachers[0], _texts(pairs), out_dir=prefixed, query_prefix="query: ", progress=False
    )
    with pytest.raises(CacheError, match="prefix 'query: '"):
        open_teacher_cache(prefixed, teacher=teachers[0])  # same weights, other prefix
    rebuilt = build_teacher_cache(teachers[1], _texts(pairs), out_dir=out, progress=False)
    assert rebuilt.manifest["weights_hash"] != built.manifest["weights_hash"]


def test_build_log_says_why_it_encodes(
    teachers: tuple[Path, Path], pairs: list, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The build's log line names the reason the stored cache could not be read as it is."""
    out = tmp_path / "cache"

    def build(teacher: Path, texts: list[str], **kw: object) -> str:
        caplog.clear()
        with caplog.at_level("INFO", logger=cache_mod.log.name):
            build_teacher_cache(teacher, texts, out_dir=out, progress=False, **kw)
        lines = [r.getMessage() for r in caplog.records if "building" in r.getMessage()]
        return lines[0] if lines else "(no build)"

    texts = _texts(pairs)
    assert "(no cache yet)" in build(teachers[0], texts)
    assert build(teachers[0], texts) == "(no build)"
    assert "(new texts):" in build(teachers[0], [*texts, "rash3"])
    assert "(other calibration pairs):" in build(teachers[0], texts, calibration_pairs=pairs)
    assert "(another query prefix):" in build(teachers[0], texts, query_prefix="query: ")
    assert "(another teacher, another query prefix):" in build(teachers[1], texts)
    assert "(forced):" in build(teachers[1], texts, force=True)
    (out / "manifest.json").write_text("{not json")
    assert "(unreadable manifest (JSONDecodeError)):" in build(teachers[1], texts)
    (out / "embeddings.safetensors").unlink()
    assert "(damaged cache (" in build(teachers[1], texts)


def test_missing_texts_are_named(teachers: tuple[Path, Path], pairs: list, tmp_path: Path) -> None:
    cache = build_teacher_cache(teachers[0], _texts(pairs), out_dir=tmp_path / "c", progress=False)
    with pytest.raises(CacheError, match=r"1 of 2 texts .*'unseen text'"):
        cache.embed([pairs[0].text_a, "unseen text"])
    with pytest.raises(CacheError, match="1 of"):
        open_teacher_cache(tmp_path / "c", texts=["unseen text"])
    with pytest.raises(CacheError, match="not a complete teacher cache"):
        open_teacher_cache(tmp_path / "nothing")


def test_interrupted_build_leaves_nothing_trusted(
    teachers: tuple[Path, Path], pairs: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cache"
    good = build_teacher_cache(teachers[0], _texts(pairs), out_dir=out, progress=False)

    def crash(tensors: dict, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(teachers[1], _texts(pairs), out_dir=out, progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(teachers[0], _texts(pairs), out_dir=tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temporary leftovers
    kept = open_teacher_cache(out, teacher=teachers[0])
    assert kept.manifest["weights_hash"] == good.manifest["weights_hash"]


def _noisy(seed: int, slope: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sims = rng.uniform(-0.2, 1.0, n)
    labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-slope * (sims - 0.5)))).astype(int)
    return sims, labels


def test_calibration_is_logistic_regression_and_monotone() -> None:
    sims, labels = _noisy(0, slope=8)
    cal = fit_calibration(sims, labels)
    assert cal.method == "logistic" and cal.coef > 0
    ref = LogisticRegression(C=1e4, max_iter=1000).fit(sims.reshape(-1, 1), labels)
    grid = torch.linspace(-1, 1, 201, dtype=torch.float64)
    expected = ref.predict_proba(grid.numpy().reshape(-1, 1))[:, 1]
    np.testing.assert_allclose(cal.apply(grid).numpy(), expected, atol=1e-6)
    assert torch.all(torch.diff(cal.apply(grid)) > 0)


def test_calibration_falls_back_but_stays_monotone() -> None:
    sims, labels = _noisy(1, slope=-8)  # a teacher whose cosine falls with the label
    cal = fit_calibration(sims, labels)
    assert cal.method == "isotonic"
    probs = cal.apply(torch.linspace(-1, 1, 201))
    assert torch.all(torch.diff(probs) >= 0) and probs.min() >= 0 and probs.max() <= 1
    ident = fit_calibration(sims, np.ones_like(labels))
    assert ident.method == "identity"
    assert ident.apply(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.5, 1.0]


def test_disagreement_table_hand_made() -> None:
    probs = np.array([0.1, 0.35, 0.45, 0.65, 0.9])
    labels = np.array([0, 1, 0, 0, 1])
    rows = {r["threshold"]: r for r in disagreement_table(probs, labels)}
    assert rows[0.5]["disagree"] == pytest.approx(2 / 5)  # 0.35 (FN) and 0.65 (FP)
    assert rows[0.5]["false_positive"] == pytest.approx(1 / 5)
    # Band [0.3, 0.7] keeps 0.1 and 0.9, both right.
    assert rows[0.7]["band_kept"] == pytest.approx(2 / 5) and rows[0.7]["band_disagree"] == 0
    assert rows[0.3]["band"] == "[0.3, 0.7]"


def test_report_files(tmp_path: Path) -> None:
    sims, labels = _noisy(2, slope=8)
    cal = fit_calibration(sims, labels)
    paths = write_teacher_report(tmp_path / "report", sims, labels, cal, {"f1": 0.7, "n": 400})
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert [r["threshold"] for r in data["disagreement"]] == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert "| dev | 0.7000 | 400 |" in paths["markdown"].read_text()
