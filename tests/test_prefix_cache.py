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


def _prefix_of(student, dtype):
    student.prefix = PrefixCache(depth=1, max_bytes=10**8, dtype=dtype)
    student.rep_forward(TEXTS[:4])
    return {seq: h.clone() for seq, h in student.prefix.store.items()}


def test_bfloat16_prefix_is_close_to_float32_and_stored_in_the_models_dtype(
    tiny_llama, tiny_tokenizer
):
    student = _student(tiny_llama, tiny_tokenizer)
    exact = _prefix_of(student, "float32")
    low = _prefix_of(student, "bfloat16")
    assert exact.keys() == low.keys() and exact
    differs = False
    for seq, h in exact.items():
        assert low[seq].dtype == torch.float32
        torch.testing.assert_close(low[seq], h, rtol=0.05, atol=0.05)
        differs |= not torch.equal(low[seq], h)
    assert differs  # the bottom layer really ran in bf16
    # a float32 cache stays exact under the trainer's bf16 autocast (mixed_precision bf16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = _prefix_of(student, "float32")
    for seq, h in exact.items():
        torch.testing.assert_close(under[seq], h, rtol=1e-6, atol=1e-6)


def test_one_shared_cache_per_precision(tiny_llama, tiny_tokenizer):
    student = _student(tiny_llama, tiny_tokenizer)
    student.enable_prefix_cache("tiny-c", 2.0, "float32")
    exact = student.prefix
    student.enable_prefix_cache("tiny-c", 2.0, "bfloat16")
    assert student.prefix is not exact and student.prefix.dtype == "bfloat16"
    student.enable_prefix_cache("tiny-c", 2.0, "float32")
    assert student.prefix is exact


def test_unknown_prefix_dtype_is_refused():
    from flipkd.student.prefix import prefix_precision

    with pytest.raises(ValueError, match="float16"):
        prefix_precision("float16", torch.device("cpu"))


@pytest.mark.parametrize(
    ("mixed", "prefix", "want"),
    [("no", "auto", "float32"), ("bf16", "auto", "bfloat16"), ("bf16", "float32", "float32"),
     ("no", "bfloat16", "bfloat16"), ("auto", "auto", "float32")],
)  # fmt: skip
def test_prefix_dtype_follows_the_resolved_precision(mixed, prefix, want, monkeypatch):
    from flipkd.config import FlipkdConfig
    from flipkd.trainer.precision import prefix_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # auto: float32 on a CPU
    cfg = FlipkdConfig()
    cfg.train.mixed_precision, cfg.train.prefix_dtype = mixed, prefix
    assert prefix_dtype(cfg.train) == want
