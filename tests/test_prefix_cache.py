"""Frozen-prefix activation cache: equal to the uncached forward, in values and gradients."""

from __future__ import annotations

import pytest
import torch

from flipkd.config import StudentConfig
from flipkd.student import assemble_student
from flipkd.student.lora import lora_layers
from flipkd.student.prefix import PrefixCache, frozen_depth

TEXTS = ["how do i reset my password", "my card was stolen", "what is the fee", "aspirin", ""]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[1], TEXTS[0]), (TEXTS[3], "aspirin")]


def _student(model, tok, top_only=True, tap_layer=-1):
    cfg = StudentConfig(model="unused", max_length=96, max_text_length=16)
    cfg.lora.rank, cfg.lora.dropout = 4, 0.0
    cfg.lora.layers = [-1] if top_only else None
    cfg.tap.layers = [tap_layer]
    torch.manual_seed(0)
    student = assemble_student(model, tok, cfg)
    torch.manual_seed(1)
    for layer in lora_layers(student.model).values():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.05)
    return student


def _outputs(student, labels):
    student.model.zero_grad(set_to_none=True)
    rep = student.rep_forward(TEXTS[:4])
    gen = student.gen_forward(PAIRS, labels)
    (gen.loss + rep.sum()).backward()
    grads = {n: p.grad.clone() for n, p in student.model.named_parameters() if p.grad is not None}
    return rep.detach(), gen.label_logits.detach(), gen.loss.detach(), grads


@pytest.mark.parametrize("pack_tokens", [0, 64])
def test_cached_forward_equals_uncached(tiny_llama, tiny_tokenizer, pack_tokens):
    student = _student(tiny_llama, tiny_tokenizer)
    student.pack_tokens = pack_tokens
    labels = torch.tensor([1, 0, 1, 0])
    ref = _outputs(student, labels)
    student.prefix = PrefixCache(
        depth=frozen_depth(student.model, student.tap.names), max_bytes=10**8
    )
    assert student.prefix.depth == 1
    first = _outputs(student, labels)  # all misses: computed through the stop hook
    assert student.prefix.misses > 0 and student.prefix.hits == 0
    again = _outputs(student, labels)  # all hits: bottom layer skipped
    assert student.prefix.hits > 0
    for got in (first, again):
        for a, b in zip(ref[:3], got[:3], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert ref[3].keys() == got[3].keys() and ref[3]
        for name, grad in ref[3].items():
            torch.testing.assert_close(grad, got[3][name], rtol=1e-4, atol=1e-6)
    # the bottom layer is really skipped on a hit, and put back afterwards
    calls = []
    hook = student.body.decoder.layers[0].register_forward_hook(lambda *a: calls.append(1))
    student.gen_forward(PAIRS)
    hook.remove()
    assert calls == []
    assert all(type(layer).__name__ == "LlamaDecoderLayer" for layer in student.body.decoder.layers)


def test_cache_respects_its_memory_cap(tiny_llama, tiny_tokenizer):
    student = _student(tiny_llama, tiny_tokenizer)
    ref = student.gen_forward(PAIRS).label_logits.detach()
    student.prefix = PrefixCache(depth=1, max_bytes=0)
    got = student.gen_forward(PAIRS).label_logits.detach()
    torch.testing.assert_close(ref, got, rtol=1e-5, atol=1e-5)
    assert student.prefix.store == {} and student.prefix.misses == len(PAIRS)


def test_depth_is_zero_when_the_bottom_layer_is_adapted_or_tapped(tiny_llama, tiny_tokenizer):
    every_layer = _student(tiny_llama, tiny_tokenizer, top_only=False)
    assert every_layer.enable_prefix_cache("tiny-a", 2.0) == 0 and every_layer.prefix is None


def test_depth_counts_the_tap_too(tiny_llama, tiny_tokenizer, _tiny_pair):
    import copy

    top = _student(tiny_llama, tiny_tokenizer)
    assert frozen_depth(top.model, top.tap.names) == 1
    assert frozen_depth(top.model, ["base_model.model.model.layers.0.mlp.down_proj"]) == 0
    other = _student(copy.deepcopy(_tiny_pair[1]), tiny_tokenizer)
    assert top.enable_prefix_cache("tiny-b", 2.0) == 1
    assert other.enable_prefix_cache("tiny-b", 2.0) == 1
    assert top.prefix is other.prefix  # one cache per base model and depth in a process
    assert top.enable_prefix_cache("tiny-b", 0) == 0 and top.prefix is None
