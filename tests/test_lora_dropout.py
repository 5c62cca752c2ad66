"""GapDropout: torch's dropout distribution, drawn as gaps between dropped elements."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from flipkd.student.lora import GapDropout, drop_positions, lora_layers, no_lora_dropout
from test_student import PAIRS, TEXTS, _cfg, _student


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_each_element_drops_independently_with_probability_p(p):
    torch.manual_seed(0)
    n, trials = 2000, 200
    hits = torch.zeros(n)
    pairs = 0.0  # neighbours dropped together: p^2 if independent
    for _ in range(trials):
        pos = drop_positions(n, p)
        assert pos.dtype == torch.long and bool((pos[1:] > pos[:-1]).all())
        assert int(pos.min()) >= 0 and int(pos.max()) < n
        mask = torch.zeros(n)
        mask[pos] = 1
        hits += mask
        pairs += float((mask[1:] * mask[:-1]).mean())
    sd = math.sqrt(p * (1 - p) / trials)
    rate = hits / trials
    # every stretch of the range (the last one too: nothing is cut short) drops at rate p
    for chunk in rate.chunk(10):
        assert abs(float(chunk.mean()) - p) < 6 * sd / math.sqrt(len(chunk))
    assert abs(pairs / trials - p * p) < 0.02


def test_positions_cover_long_ranges_and_edge_cases():
    torch.manual_seed(1)
    n = 1_000_000
    pos = drop_positions(n, 0.01)
    assert abs(len(pos) - 10_000) < 6 * math.sqrt(10_000)
    assert int(pos[-1]) > n - 2_000  # drawn to the end of the range
    assert len(drop_positions(0, 0.5)) == 0 and len(drop_positions(100, 0.0)) == 0


def test_values_and_gradients_are_dropout_with_the_drawn_mask():
    torch.manual_seed(2)
    x = torch.randn(37, 11, requires_grad=True)
    weight = torch.randn(37, 11)
    drop = GapDropout(0.25)
    torch.manual_seed(3)
    out = drop(x)
    torch.manual_seed(3)
    pos = drop_positions(x.numel(), 0.25)
    keep = torch.ones(x.numel())
    keep[pos] = 0
    keep = keep.view_as(x)
    torch.testing.assert_close(out, x.detach() * keep / 0.75)
    (out * weight).sum().backward()
    torch.testing.assert_close(x.grad, weight * keep / 0.75)
    assert 0 < int((out == 0).sum()) < x.numel()


def test_eval_mode_and_zero_p_are_identity_and_bad_p_fails():
    x = torch.randn(5, 7)
    drop = GapDropout(0.5).eval()
    assert drop(x) is x
    assert GapDropout(0.0)(x) is x
    with pytest.raises(ValueError, match="dropout probability"):
        GapDropout(1.0)


def test_student_lora_uses_gap_dropout_and_eval_switch_still_works(tiny_llama, tiny_tokenizer):
    cfg = _cfg()
    cfg.lora.dropout = 0.3
    st = _student(tiny_llama, tiny_tokenizer, cfg)
    drops = [m for layer in lora_layers(st.model).values() for m in layer.lora_dropout.values()]
    assert drops and all(isinstance(m, GapDropout) and m.p == 0.3 for m in drops)
    st.model.train()
    with no_lora_dropout(st.model):
        assert not any(m.training for m in drops)
    assert all(m.training for m in drops)
    a = st.gen_forward(PAIRS).label_logits
    b = st.gen_forward(PAIRS).label_logits
    assert not torch.allclose(a, b)  # training: fresh masks each pass


def test_checkpointing_replays_the_same_masks(tiny_llama, tiny_tokenizer, _tiny_pair):
    cfg = _cfg()
    cfg.lora.dropout = 0.3
    grads = []
    for ckpt in (False, True):
        model = copy.deepcopy(_tiny_pair[1])
        st = _student(model, tiny_tokenizer, cfg, gradient_checkpointing=ckpt)
        st.model.train()
        torch.manual_seed(5)
        out = st.gen_forward(PAIRS, torch.tensor([1, 0, 1]))
        rep = st.rep_forward(TEXTS)
        (out.loss + (rep @ rep.T).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in st.model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)
