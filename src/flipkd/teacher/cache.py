"""The teacher cache: every unique text embedded once, stored with what it was made from.

Layout of a cache directory::

    manifest.json           what made it (see MANIFEST_KEYS) + calibration + timing
    texts.json              the texts, sorted; row i of the embeddings is texts[i]
    embeddings.safetensors  "embeddings": [N, d] float32, L2-normalised

The directory is written through :func:`flipkd.paths.atomic_dir`, manifest last,
so an interrupted build leaves nothing that looks complete. A text's vector depends only
on the teacher's weights, prefix and max length (:data:`VECTOR_KEYS`), so a cache made with
the same ones only grows: a build that asks for texts it holds, with the same calibration
pairs, reads them and writes nothing; new texts are encoded and added to the ones already
there (the full-split cache `flipkd teacher train` writes survives a dev sweep that asks for
a sample of it); other calibration pairs are fitted again from the stored vectors. Another
teacher, prefix or length encodes everything again, as does ``force``. What a build returns
holds exactly the texts it was asked for, in sorted order, whatever else is stored, so a run
sees the same cache whatever the cache's history. Opening a cache for use
(:func:`open_teacher_cache`) refuses one made by another teacher.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from flipkd.errors import CacheError
from flipkd.evaluation import benchmark_slug
from flipkd.paths import atomic_dir, hash_text
from flipkd.teacher import encoder
from flipkd.teacher.calibration import Calibration, fit_calibration

log = logging.getLogger(__name__)

FORMAT = 1
# 2: the calibration keeps its pairs' share of positives (for a balanced-prior probability)
CALIB_VERSION = 2
# what a text's vector depends on: a cache that agrees on these lends its vectors to a rebuild
VECTOR_KEYS = ("format", "weights_hash", "query_prefix", "max_length")
# what the calibration depends on besides the vectors
CALIB_KEYS = ("calib_hash", "calib_version")


class LabelledPair(Protocol):
    """Anything with ``text_a``, ``text_b`` and ``label`` (e.g. ``flipkd.data.PairRecord``)."""

    text_a: str
    text_b: str
    label: int | None


class TeacherCache:
    """Teacher embeddings of a fixed set of texts, with a calibrated score map.

    Args:
        path: The cache directory.
        manifest: Its parsed ``manifest.json``.
        texts: Row order of ``embeddings``.
        embeddings: [N, d] float32, L2-normalised.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], texts: list[str], embeddings: torch.Tensor
    ) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.texts = texts
        self.embeddings = embeddings
        self.index = {t: i for i, t in enumerate(texts)}
        self.calibration = Calibration.from_dict(manifest["calibration"])

    @classmethod
    def load(cls, path: Path) -> TeacherCache:
        """Read a complete cache directory (CacheError if it is missing or damaged)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            texts = json.loads((path / "texts.json").read_text(encoding="utf-8"))
            emb = load_file(str(path / "embeddings.safetensors"))["embeddings"]
        except (OSError, ValueError, KeyError) as err:
            raise CacheError(f"{path}: not a complete teacher cache ({err})") from None
        if emb.shape[0] != len(texts) or len(texts) != manifest.get("count"):
            raise CacheError(f"{path}: damaged cache ({emb.shape[0]} rows, {len(texts)} texts)")
        return cls(path, manifest, texts, emb)

    def __len__(self) -> int:
        return len(self.texts)

    def __contains__(self, text: object) -> bool:
        return text in self.index

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.embeddings.shape[1])

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The distinct texts not covered by this cache."""
        return sorted({t for t in texts if t not in self.index})

    def require(self, texts: Iterable[str]) -> None:
        """Raise CacheError naming how many of ``texts`` are not cached, with an example."""
        texts = list(texts)
        miss = self.missing(texts)
        if miss:
            raise CacheError(
                f"{self.path}: {len(miss)} of {len(set(texts))} texts are not in the teacher "
                f"cache (e.g. {miss[0][:80]!r}); rebuild it with `flipkd teacher cache`"
            )

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Look up embeddings [len(texts), d]; CacheError if any text is not cached."""
        try:
            rows = [self.index[t] for t in texts]
        except KeyError:
            self.require(texts)
            raise
        return self.embeddings[rows]

    def sim(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> torch.Tensor:
        """Cosine matrix [len(a), len(b)] (one matmul of normalised embeddings)."""
        return self.embed(a_texts) @ self.embed(b_texts).T

    def pair_sim(self, a_texts: Sequence[str], b_texts: Sequence[str]) -> torch.Tensor:
        """Cosine of each pair (a_i, b_i): the diagonal of :meth:`sim`, without the matrix."""
        return (self.embed(a_texts) * self.embed(b_texts)).sum(-1)

    def subset(self, texts: Iterable[str]) -> TeacherCache:
        """This cache restricted to the distinct ``texts``, sorted (itself when it holds no
        others); CacheError if any is not cached."""
        keep = sorted(set(texts))
        if len(keep) == len(self.texts):
            self.require(keep)
            return self
        manifest = {**self.manifest, "count": len(keep), "stored": len(self.texts)}
        return TeacherCache(self.path, manifest, keep, self.embed(keep))

    def prob(self, sim: torch.Tensor, prior: str = "data") -> torch.Tensor:
        """Calibrated P(match) for cosines of any shape, at the data's or an even prior
        (:meth:`Calibration.apply`; CacheError for ``"balanced"`` on a cache built before
        the share of positives was kept)."""
        try:
            return self.calibration.apply(sim, prior)
        except ValueError as err:
            raise CacheError(f"{self.path}: {err}") from None


def cache_from_embeddings(
    path: Path,
    texts: Sequence[str],
    embeddings: torch.Tensor,
    calibration_pairs: Iterable[LabelledPair],
    *,
    model_id: str = "synthetic",
    weights_hash: str = "0",
) -> TeacherCache:
    """An in-memory cache from given unit vectors, calibrated on labelled pairs.

    For synthetic teachers (tests, benchmarks) and derived ones (the weak-teacher row);
    nothing is written to ``path``.
    """
    texts = list(texts)
    index = {t: i for i, t in enumerate(texts)}
    labelled = [p for p in calibration_pairs if p.label is not None]
    a = embeddings[[index[p.text_a] for p in labelled]]
    b = embeddings[[index[p.text_b] for p in labelled]]
    cal = fit_calibration((a * b).sum(-1).numpy(), np.array([p.label for p in labelled]))
    manifest = {
        "model_id": model_id,
        "weights_hash": weights_hash,
        "count": len(texts),
        "calibration": cal.to_dict(),
    }
    return TeacherCache(Path(path), manifest, texts, embeddings)


def default_cache_dir(run_dir: Path, benchmark: str) -> Path:
    """``RUN/cache/<benchmark>`` (a path benchmark becomes a safe folder name)."""
    return Path(run_dir) / "cache" / benchmark_slug(str(benchmark))


def _calib_pairs(pairs: Iterable[LabelledPair]) -> list[tuple[str, str, int]]:
    return sorted((p.text_a, p.text_b, int(p.label)) for p in pairs if p.label is not None)


def _key(source: encoder.TeacherSource, texts: list[str], calib: list[tuple]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "weights_hash": source.weights_hash(),
        "data_hash": hash_text(*texts),
        "calib_hash": hash_text(*("\t".join(map(str, c)) for c in calib)),
        "calib_version": CALIB_VERSION,
        "query_prefix": source.query_prefix,
        "max_length": source.max_length,
    }


# what a build's log line says when the stored cache differs from the request in this key
_VECTOR_KEY_WORDS = {
    "format": "another cache format",
    "weights_hash": "another teacher",
    "query_prefix": "another query prefix",
    "max_length": "another max length",
}


def _vector_donor(path: Path, key: dict[str, Any]) -> tuple[TeacherCache | None, str]:
    """The cache at ``path`` when its vectors are what this teacher, prefix and length give
    (only its text set or calibration pairs differ from ``key``) and "", else None and why
    it cannot be used (the build log's words)."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        return None, "no cache yet"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable manifest ({type(exc).__name__})"
    differs = [_VECTOR_KEY_WORDS[k] for k in VECTOR_KEYS if manifest.get(k) != key[k]]
    if differs:
        return None, ", ".join(differs)
    try:
        return TeacherCache.load(path), ""
    except CacheError as exc:
        return None, f"damaged cache ({exc})"


def _merge(
    texts: list[str], old: TeacherCache, todo: list[str], fresh: torch.Tensor | None
) -> torch.Tensor:
    """Rows for ``texts``: the old cache's vector where it has one, else the fresh one
    (``fresh`` row i is ``todo[i]``)."""
    if not todo:
        return old.embed(texts)
    new_index = {t: i for i, t in enumerate(todo)}
    rows = [old.embeddings[old.index[t]] if t in old else fresh[new_index[t]] for t in texts]
    return torch.stack(rows) if rows else old.embeddings[:0]


def _calibrate(
    emb: torch.Tensor, index: dict[str, int], calib: list[tuple[str, str, int]]
) -> Calibration:
    if not calib:
        return fit_calibration(np.zeros(0), np.zeros(0))
    a = emb[[index[c[0]] for c in calib]]
    b = emb[[index[c[1]] for c in calib]]
    sims = (a * b).sum(-1).numpy()
    return fit_calibration(sims, np.array([c[2] for c in calib]))


def build_teacher_cache(
    run_or_model: str | Path,
    texts: Iterable[str],
    *,
    out_dir: Path,
    calibration_pairs: Iterable[LabelledPair] = (),
    query_prefix: str | None = None,
    max_length: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    force: bool = False,
) -> TeacherCache:
    """Embed every unique text once with the teacher and store it (reused when unchanged).

    Args:
        run_or_model: Teacher run directory, sentence-transformers directory or registry name.
        texts: Texts to cover (duplicates are fine).
        out_dir: The cache directory.
        calibration_pairs: Labelled pairs (the train split) to fit P(match | cosine) on;
            their texts are added to the cached texts.
        query_prefix: Overrides the teacher's prefix.
        max_length: Overrides the teacher's token limit.
        batch_size: Texts per encoder batch.
        progress: Show a progress bar.
        force: Rebuild even when the existing cache matches.
    """
    out_dir = Path(out_dir)
    source = encoder.resolve_source(run_or_model, query_prefix=query_prefix, max_length=max_length)
    calib = _calib_pairs(calibration_pairs)
    unique = sorted({*texts, *(c[0] for c in calib), *(c[1] for c in calib)})
    key = _key(source, unique, calib)
    old, reason = (None, "forced") if force else _vector_donor(out_dir, key)
    calib_same = old is not None and all(old.manifest.get(k) == key[k] for k in CALIB_KEYS)
    if calib_same and not old.missing(unique):
        log.info("teacher cache %s is up to date (%d texts of its %d)",
                 out_dir, len(unique), len(old))  # fmt: skip
        return old.subset(unique)
    stored = sorted({*unique, *old.texts}) if old is not None else unique
    todo = [t for t in unique if old is None or t not in old]
    if old is not None:
        reason = _what_changed(new_texts=bool(todo), calib_same=calib_same)
    log.info("building teacher cache %s (%s): %d texts asked for, %d to encode, %d stored",
             out_dir, reason, len(unique), len(todo), len(stored))  # fmt: skip
    start = time.perf_counter()
    fresh = None
    if old is None or todo:
        fresh = encoder.encode_texts(
            encoder.load_encoder(source), todo, batch_size=batch_size, progress=progress
        )
    seconds = time.perf_counter() - start
    emb = fresh if old is None else _merge(stored, old, todo, fresh)
    calibration = _calibrate(emb, {t: i for i, t in enumerate(stored)}, calib)
    manifest = _manifest(_key(source, stored, calib), source, emb, len(todo), seconds, calibration)
    with atomic_dir(out_dir) as tmp:
        save_file({"embeddings": emb}, str(tmp / "embeddings.safetensors"))
        (tmp / "texts.json").write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    log.info("teacher cache: %d texts encoded in %.1fs (%.0f texts/s)",
             len(todo), seconds, manifest["texts_per_second"])  # fmt: skip
    return TeacherCache(out_dir, manifest, stored, emb).subset(unique)


def _what_changed(*, new_texts: bool, calib_same: bool) -> str:
    """The build log's words for a reusable cache that still has to be written again."""
    words = {"new texts": new_texts, "other calibration pairs": not calib_same}
    return " and ".join(w for w, yes in words.items() if yes)


def _manifest(
    key: dict[str, Any], source: encoder.TeacherSource, emb: torch.Tensor, encoded: int,
    seconds: float, calibration: Calibration,
) -> dict[str, Any]:  # fmt: skip
    """``manifest.json``: the cache key, the teacher, the matrix, the timing, the calibration."""
    return {
        **key,
        "model_id": source.model_id,
        "model_dir": str(source.model_dir),
        "normalized": True,
        "dim": int(emb.shape[1]),
        "count": int(emb.shape[0]),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encoded": encoded,
        "encode_seconds": round(seconds, 3),
        "texts_per_second": round(encoded / max(seconds, 1e-9), 1),
        "calibration": calibration.to_dict(),
    }


def open_teacher_cache(
    path: Path, *, teacher: str | Path | None = None, texts: Iterable[str] | None = None
) -> TeacherCache:
    """Open a cache for use, refusing one that does not belong to the given teacher or data.

    Args:
        path: The cache directory.
        teacher: The teacher it must come from (run directory, model directory or name);
            its weights and prefix are compared with the manifest.
        texts: Texts it must cover.

    Raises:
        CacheError: Missing or damaged cache, another teacher's cache, or texts not covered.
    """
    cache = TeacherCache.load(path)
    if teacher is not None:
        src = encoder.resolve_source(teacher)
        want = {"weights_hash": src.weights_hash(), "query_prefix": src.query_prefix}
        have = {k: cache.manifest.get(k) for k in want}
        if want != have:
            raise CacheError(
                f"{path}: cache was built by teacher {cache.manifest.get('model_id')!r} "
                f"(weights {have['weights_hash']}, prefix {have['query_prefix']!r}), not by "
                f"{src.model_id!r} (weights {want['weights_hash']}, prefix "
                f"{want['query_prefix']!r}); rebuild it with `flipkd teacher cache`"
            )
    if texts is not None:
        cache.require(texts)
    return cache
