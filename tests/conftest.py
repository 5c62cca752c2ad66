"""Shared fixtures: tiny in-code models (seeded), built once per session, copied per test."""

from __future__ import annotations

import copy
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS = [
    "how do i reset my password",
    "i forgot my password how can i change it",
    "what is the fee for a wire transfer",
    "how much does it cost to send money abroad",
    "my card was stolen what should i do",
    "can i get a refund for my order",
    "is aspirin safe during pregnancy",
    "what are the symptoms of diabetes",
    "do these two questions ask the same thing answer with yes or no",
    "question 1 question 2 answer",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def benchmark_script(name: str):
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_tokenizer():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 20, vocab_size=400, min_frequency=1, show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)
    tok.add_special_tokens(
        {
            "eos_token": "<|eos|>",
            "pad_token": "<|pad|>",
            "additional_special_tokens": ["<|user|>", "<|assistant|>"],
        }
    )
    tok.add_tokens(["yes", "no"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _tiny_llama(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    model.config.use_cache = False
    return model.eval()


@pytest.fixture(scope="session")
def _tiny_pair():
    tok = _tiny_tokenizer()
    return tok, _tiny_llama(len(tok))


@pytest.fixture
def tiny_tokenizer(_tiny_pair):
    return copy.deepcopy(_tiny_pair[0])


@pytest.fixture
def tiny_llama(_tiny_pair):
    return copy.deepcopy(_tiny_pair[1])


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, _tiny_pair):
    """The tiny Llama saved as a transformers directory (for builders that load by path)."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok, model = _tiny_pair
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
