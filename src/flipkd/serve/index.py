"""The FAQ index: question embeddings in one numpy matrix; cosine = dot product.

Saved as a directory with ``vectors.npz`` (float32 ``[n, d]``, no pickles) and
``index.json`` (entries plus the keys that say which FAQ file and model made it).
A saved index is reused only when those keys match; otherwise it is rebuilt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flipkd.errors import CacheError, ModelError
from flipkd.paths import atomic_dir, hash_files, hash_text, write_json
from flipkd.serve.faq import FaqEntry

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npz"
META_FILE = "index.json"


@dataclass(frozen=True)
class Hit:
    """One search result: the entry's position in the index and its cosine."""

    position: int
    score: float


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm.

    Rows already of unit norm (within 1e-6) are kept bit for bit, so a saved and
    reloaded index is exact; zero rows stay zero.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    unit = np.abs(norms - 1.0) <= 1e-6
    return np.where(unit, matrix, matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def _check_vectors(vectors: np.ndarray, count: int, where: str) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise ModelError(f"expected [{count}, d] vectors, got shape {vectors.shape}", where=where)
    if not np.isfinite(vectors).all():
        raise ModelError("embeddings contain NaN or infinity", where=where)
    return normalise(vectors)


class FaqIndex:
    """FAQ entries with their unit-norm question embeddings.

    Args:
        entries: The FAQ records, in index order.
        vectors: ``[len(entries), d]`` embeddings (normalised here).
        keys: Provenance (``faq_hash``, ``model``, ...) checked by :meth:`load`.
    """

    def __init__(
        self, entries: Sequence[FaqEntry], vectors: np.ndarray, keys: dict[str, str] | None = None
    ) -> None:
        self.entries = list(entries)
        self.vectors = _check_vectors(np.asarray(vectors), len(self.entries), "FAQ index")
        self.keys = dict(keys or {})

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def dim(self) -> int:
        """Embedding width."""
        return int(self.vectors.shape[1])

    @classmethod
    def build(
        cls,
        entries: Sequence[FaqEntry],
        encode: Callable[[list[str]], np.ndarray],
        *,
        batch_size: int = 64,
        keys: dict[str, str] | None = None,
    ) -> FaqIndex:
        """Embed every question with ``encode`` (in batches) and index them."""
        questions = [e.question for e in entries]
        parts = [
            np.asarray(encode(questions[i : i + batch_size]), dtype=np.float32)
            for i in range(0, len(questions), batch_size)
        ]
        log.info("embedded %d FAQ questions", len(questions))
        return cls(entries, np.concatenate(parts, axis=0), keys)

    def search(self, query: np.ndarray, k: int) -> list[Hit]:
        """Return the ``k`` entries with the highest cosine to ``query``, best first."""
        q = normalise(np.asarray(query, dtype=np.float32).reshape(-1))
        if q.shape[0] != self.dim:
            raise ModelError(f"query embedding has width {q.shape[0]}, index has {self.dim}")
        scores = self.vectors @ q
        k = max(0, min(int(k), len(self)))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(int(i), float(scores[i])) for i in top]

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` atomically."""
        with atomic_dir(Path(directory)) as tmp:
            with open(tmp / VECTORS_FILE, "wb") as fh:
                np.savez(fh, vectors=self.vectors)
            meta = {
                "format": FORMAT_VERSION,
                "count": len(self),
                "dim": self.dim,
                "keys": self.keys,
                "entries": [asdict(e) for e in self.entries],
            }
            write_json(tmp / META_FILE, meta)

    @classmethod
    def load(cls, directory: Path, expect_keys: dict[str, str] | None = None) -> FaqIndex:
        """Read an index saved by :meth:`save`.

        Args:
            directory: The index directory.
            expect_keys: Keys that must match the saved ones (else CacheError).

        Raises:
            CacheError: missing or damaged files, or keys that do not match.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            with np.load(directory / VECTORS_FILE, allow_pickle=False) as npz:
                vectors = npz["vectors"]
            entries = [FaqEntry(**e) for e in meta["entries"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CacheError(f"cannot read FAQ index ({err})", where=str(directory)) from err
        if meta.get("format") != FORMAT_VERSION:
            raise CacheError(f"index format {meta.get('format')!r} unknown", where=str(directory))
        for key, value in (expect_keys or {}).items():
            if meta.get("keys", {}).get(key) != value:
                raise CacheError(f"index was built for another {key}", where=str(directory))
        try:
            return cls(entries, vectors, meta.get("keys"))
        except ModelError as err:
            raise CacheError(str(err), where=str(directory)) from err


def open_or_build(
    directory: Path | None,
    entries: Sequence[FaqEntry],
    encode: Callable[[list[str]], np.ndarray],
    keys: dict[str, str],
) -> FaqIndex:
    """Load the index in ``directory`` if its keys match, else build (and save) it."""
    if directory is not None and (Path(directory) / META_FILE).exists():
        try:
            index = FaqIndex.load(directory, expect_keys=keys)
            log.info("loaded FAQ index from %s (%d entries)", directory, len(index))
            return index
        except CacheError as err:
            log.info("rebuilding FAQ index: %s", err)
    index = FaqIndex.build(entries, encode, keys=keys)
    if directory is not None:
        index.save(directory)
        log.info("saved FAQ index to %s", directory)
    return index


def index_keys(
    faq: Path, model_name: str, model_path: Path, precision: str = "float32"
) -> dict[str, str]:
    """The keys a saved index must match: the FAQ file's hash, the model's name and files,
    and the precision its vectors were computed in."""
    return {
        "faq_hash": hash_files([Path(faq)]),
        "model": model_name,
        "model_key": directory_fingerprint(Path(model_path)),
        "precision": precision,
    }


def directory_fingerprint(path: Path) -> str:
    """A cheap key for a model directory: relative names, sizes and mtimes of its files."""
    path = Path(path)
    if not path.exists():
        return hash_text(str(path))
    root = path if path.is_dir() else path.parent
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = [f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return hash_text(str(path.resolve()), *parts)
