"""A tiny sentence-transformers teacher built in code, for tests and demos.

Two BERT layers with a small hidden size, a word-level tokenizer whose
vocabulary comes from the given texts (Chinese characters become single
tokens, as BERT's normaliser splits them), mean pooling. Seconds to build,
milliseconds to run; no download, no weights package.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from flipkd.teacher.encoder import MODULE_CONFIG

if TYPE_CHECKING:
    from flipkd.data import PairRecord

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TOPICS = ("fever", "cough", "rash", "knee", "tooth", "sleep", "diet", "heart")


def _vocabulary(texts: Iterable[str], normalizer: normalizers.Normalizer) -> dict[str, int]:
    pre = pre_tokenizers.BertPreTokenizer()
    words: set[str] = set()
    for text in texts:
        norm = normalizer.normalize_str(text)
        words.update(w for w, _ in pre.pre_tokenize_str(norm))
    words |= set("abcdefghijklmnopqrstuvwxyz0123456789")
    ordered = SPECIAL + sorted(words - set(SPECIAL))
    return {w: i for i, w in enumerate(ordered)}


def tiny_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A BERT-style word-level tokenizer covering the words of ``texts``."""
    normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok = Tokenizer(models.WordLevel(_vocabulary(texts, normalizer), unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def build_tiny_teacher(
    out_dir: Path,
    texts: Iterable[str] = (),
    *,
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    pooler: bool = True,
) -> Path:
    """Write a tiny random sentence-transformers model to ``out_dir`` and return it.

    Args:
        out_dir: Directory to create (a sentence-transformers model directory).
        texts: Texts whose words make the vocabulary (others map to ``[UNK]``).
        hidden: Hidden size (also the embedding dimension).
        layers: Number of transformer layers.
        seed: Seed of the random weights.
        pooler: Give the BERT a pooler; without one (as e5 is converted) the directory says
            ``add_pooling_layer: false`` in its module config, as e5's does.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    out_dir = Path(out_dir)
    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 16),
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    with tempfile.TemporaryDirectory() as hf_dir:
        BertModel(config, add_pooling_layer=pooler).save_pretrained(hf_dir)
        tokenizer.save_pretrained(hf_dir)
        kwargs = {} if pooler else {"add_pooling_layer": False}
        transformer = Transformer(hf_dir, max_seq_length=64, model_kwargs=kwargs)
        pooling = Pooling(hidden, "mean")
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out_dir))
    if not pooler:
        config_path = out_dir / MODULE_CONFIG
        config_path.write_text(
            json.dumps({**json.loads(config_path.read_text()), "model_kwargs": kwargs}, indent=2)
        )
    return out_dir


TOY_WORDS = {t: [f"{t}{i}" for i in range(6)] for t in TOPICS}


def toy_words() -> list[str]:
    """The vocabulary of :func:`toy_pairs`."""
    return [w for words in TOY_WORDS.values() for w in words]


def toy_pairs(n: int, seed: int = 0, *, noise: float = 0.0) -> list[PairRecord]:
    """Synthetic labelled pairs: a match shares a topic, a non-match does not.

    Each text is three words of one topic (``fever0 fever3 fever5``); half the
    pairs are matches. ``noise`` flips that share of labels (a harder task).
    """
    from flipkd.data import PairRecord

    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = rng.choice(TOPICS)
        u = t if i % 2 == 0 else rng.choice([x for x in TOPICS if x != t])
        label = int(t == u) ^ int(rng.random() < noise)
        a, b = (" ".join(rng.sample(TOY_WORDS[x], 3)) for x in (t, u))
        out.append(PairRecord(a, b, label, None, "toy", i + 1))
    return out
