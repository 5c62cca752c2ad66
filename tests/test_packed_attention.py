"""Per-text attention for packed rows (flipkd.student.attention): exact, and really used."""

from __future__ import annotations

import pytest
import torch

import flipkd.student.attention as attention
from flipkd.config import StudentConfig
from flipkd.student import assemble_student
from flipkd.student.packing import pack
from tiny_run import assert_same_passes, passes_with_grads

TEXTS = ["how do i reset my password", "aspirin", "my card was stolen what should i do", "no"]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[1], TEXTS[2])]


def _student(model, tok):
    cfg = StudentConfig(model="unused", max_length=96, max_text_length=16)
    cfg.lora.rank, cfg.lora.layers = 4, [-1]
    torch.manual_seed(0)
    st = assemble_student(model, tok, cfg)
    for layer in st.tap.layers:
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    st.model.eval()
    return st


@pytest.mark.parametrize("side", ["right", "left"])
def test_layout_moves_tokens_to_texts_and_back(side):
    lengths = [3, 1, 4]
    mask = torch.zeros(3, 4, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    if side == "left":
        mask = mask.flip(1)
    ids = torch.arange(1, 13).view(3, 4) * mask
    packed = pack(ids, mask, cap=4)
    layout = attention.layout_of(packed.index, *packed.input_ids.shape, mask)
    rows = packed.input_ids.unsqueeze(1).unsqueeze(-1).float()  # [rows, 1 head, width, 1]
    texts = layout.to_texts(rows)[:, 0, :, 0]
    expected = torch.zeros(3, 4)
    for i, n in enumerate(lengths):  # each text's own tokens first, in order, then zeros
        expected[i, :n] = ids[i][mask[i].bool()].float()
    assert torch.equal(texts, expected)
    back = layout.to_rows(texts.unsqueeze(-1).unsqueeze(-1))[..., 0, 0]  # [texts, len, 1, 1]
    real = torch.zeros_like(back).view(-1)
    real[packed.index] = 1
    assert torch.equal(back.view(-1) * real, packed.input_ids.float().view(-1) * real)


def test_packed_attention_equals_the_block_mask_in_value_and_gradient(
    tiny_llama, tiny_tokenizer, monkeypatch
):
    st = _student(tiny_llama, tiny_tokenizer)
    assert st.body.packed_attention, "the tiny Llama uses SDPA, so packed attention should be on"
    st.pack_tokens = 64
    calls = []
    real_sdpa = attention.sdpa_attention_forward

    def spy(module, q, k, v, mask, **kwargs):
        calls.append((q.shape[0], mask is None))
        return real_sdpa(module, q, k, v, mask, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", spy)
    labels = torch.tensor([1, 0, 1])
    results = []
    for per_text in (False, True):
        st.body.packed_attention = per_text
        calls.clear()
        results.append(passes_with_grads(st, TEXTS, PAIRS, labels))
        if per_text:  # one call per layer, over the texts (4, then 3 prompts), with no mask
            assert calls and all(no_mask for _, no_mask in calls)
            assert {n for n, _ in calls} == {len(TEXTS), len(PAIRS)}
        else:  # the rows, with the block-diagonal mask
            assert calls and not any(no_mask for _, no_mask in calls)
    assert_same_passes(results[1], results[0])


def test_layers_it_cannot_serve_fall_back_to_the_mask():
    layout = attention.TextsLayout(2, 8, 3, 5, torch.arange(6), torch.arange(6))
    query = torch.zeros(2, 1, 8, 4)
    plain = torch.nn.Module()
    assert layout.serves(plain, query, {})
    windowed = torch.nn.Module()
    windowed.sliding_window = 4  # shorter than the longest text (5)
    assert not layout.serves(windowed, query, {})
    assert not layout.serves(plain, query, {"softcap": 50.0})
    assert not layout.serves(plain, torch.zeros(2, 1, 7, 4), {})  # not this pass's rows


def test_inference_packs_at_lower_padding_when_attention_is_per_text(tiny_llama, tiny_tokenizer):
    import flipkd.student.body as body_mod

    st = _student(tiny_llama, tiny_tokenizer)
    assert st.body.packed_attention
    assert st.body.pack_inference_above == body_mod.PACK_INFERENCE_ABOVE["per_text"] == 0.05
    mask = torch.ones(4, 10, dtype=torch.long)
    mask[0, 9:] = 0  # 2.5% padding: under the line
    with torch.no_grad():
        assert st.body.inference_rows(mask) == 0
        mask[1, 7:] = 0  # 10%
        assert st.body.inference_rows(mask) == st.pack_tokens == 512  # student.pack_tokens
        st.body.packed_attention = False  # a block-mask model would not pack this batch
        st.body.pack_inference_above = body_mod.PACK_INFERENCE_ABOVE["block_mask"]
        assert st.body.inference_rows(mask) == 0
