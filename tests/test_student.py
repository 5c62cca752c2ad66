"""Student: A-tap, label head, LoRA invariants (tiny in-code Llama)."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from flipkd.config import StudentConfig
from flipkd.errors import ConfigError
from flipkd.student import assemble_student, encode, score_pairs
from flipkd.student.lora import count_parameters, expected_lora_parameters, lora_layers, set_merged
from flipkd.student.tap import pool

TEXTS = ["how do i reset my password", "my card was stolen", "what is the fee", "aspirin"]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[1], TEXTS[0])]


def _cfg(**tap) -> StudentConfig:
    cfg = StudentConfig(model="unused", max_length=96, max_text_length=16)
    cfg.lora.rank, cfg.lora.dropout = 4, 0.0
    for k, v in tap.items():
        setattr(cfg.tap, k, v)
    return cfg


def _student(model, tok, cfg=None, **kw):
    torch.manual_seed(0)  # LoRA A is randomly initialised
    student = assemble_student(model, tok, cfg or _cfg(), **kw)
    # LoRA B starts at zero; give it values so B matters for merge tests.
    torch.manual_seed(1)
    for layer in lora_layers(student.model).values():
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.05)
    return student


def test_tap_equals_manual_pooled_a_times_x(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer)
    layer = lora_layers(st.model)[st.tap.names[0]]
    seen = {}
    handle = layer.register_forward_pre_hook(
        lambda m, a: seen.setdefault("x", a[0].detach()), prepend=True
    )
    rep = st.rep_forward(TEXTS)
    handle.remove()
    batch = st._batch(TEXTS, st.max_text_length)
    manual = seen["x"] @ layer.lora_A["default"].weight.T
    mask = batch["attention_mask"].float()
    pooled = (manual * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(torch.nn.functional.normalize(pooled, dim=-1), dim=-1)
    torch.testing.assert_close(rep, expected)


@pytest.mark.parametrize("how", ["mean", "last"])
def test_left_and_right_padding_agree(tiny_llama, tiny_tokenizer, how):
    st = _student(tiny_llama, tiny_tokenizer, _cfg(pool=how))
    st.model.eval()
    tiny_tokenizer.padding_side = "right"
    right = st.rep_forward(TEXTS)
    right_gen = st.gen_forward(PAIRS).label_logits
    tiny_tokenizer.padding_side = "left"
    left = st.rep_forward(TEXTS)
    left_gen = st.gen_forward(PAIRS).label_logits
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(left_gen, right_gen, atol=1e-4, rtol=1e-4)


def test_pool_last_picks_last_real_token():
    hidden = torch.arange(12.0).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    out = pool(hidden, mask, "last")
    torch.testing.assert_close(out, torch.stack([hidden[0, 1], hidden[1, 2]]))


def test_dropout_does_not_reach_the_tap(tiny_llama, tiny_tokenizer):
    cfg = _cfg()
    cfg.lora.dropout = 0.5
    st = _student(tiny_llama, tiny_tokenizer, cfg)
    st.model.train()
    torch.manual_seed(0)
    train_rep = st.rep_forward(TEXTS)
    st.model.eval()
    torch.testing.assert_close(train_rep, st.rep_forward(TEXTS))


def test_merged_and_unmerged_give_same_scores(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer)
    st.model.eval()
    gen, rep = st.gen_forward(PAIRS).prob, st.rep_forward(TEXTS)
    set_merged(st.model, True)
    torch.testing.assert_close(st.gen_forward(PAIRS).prob, gen, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(st.rep_forward(TEXTS), rep, atol=1e-5, rtol=1e-4)
    set_merged(st.model, False)
    # B matters: with B zeroed the gen scores change.
    for layer in lora_layers(st.model).values():
        torch.nn.init.zeros_(layer.lora_B["default"].weight)
    assert not torch.allclose(st.gen_forward(PAIRS).prob, gen)


def test_adapter_save_load_is_exact(tiny_llama, tiny_tokenizer, tmp_path, _tiny_pair):
    import copy

    st = _student(tiny_llama, tiny_tokenizer)
    st.model.eval()
    st.model.save_pretrained(tmp_path / "adapter")
    fresh = copy.deepcopy(_tiny_pair[1])
    loaded = assemble_student(fresh, tiny_tokenizer, _cfg(), adapter_dir=tmp_path / "adapter")
    loaded.model.eval()
    assert torch.equal(loaded.gen_forward(PAIRS).label_logits, st.gen_forward(PAIRS).label_logits)
    assert torch.equal(loaded.rep_forward(TEXTS), st.rep_forward(TEXTS))


def test_wrapping_and_loading_lora_print_no_peft_deprecation(tiny_llama, tiny_tokenizer, tmp_path):
    import copy
    import warnings

    base = copy.deepcopy(tiny_llama)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st = _student(tiny_llama, tiny_tokenizer)
        st.model.save_pretrained(tmp_path / "adapter")
        assemble_student(base, tiny_tokenizer, _cfg(), adapter_dir=tmp_path / "adapter")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_only_lora_trains_and_count_matches_formula(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer)
    trainable, _ = count_parameters(st.model)
    assert trainable == expected_lora_parameters(st.model, 4)
    # hand formula for the tiny config: per layer q,k,v,o,gate,up,down
    h, i, kv = 32, 64, 16
    per_layer = 4 * ((h + h) + (h + kv) + (h + kv) + (h + h) + (h + i) + (h + i) + (i + h))
    assert trainable == 2 * per_layer
    names = [n for n, p in st.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)


def test_paper_profile_qwen05b_is_about_22_percent():
    """Rank 256 on every linear layer of Qwen2.5-0.5B: the paper's ~22% trainable share."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    from flipkd.student.lora import apply_lora

    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    peft_model = apply_lora(model, 256, 512, 0.0, "all-linear")
    trainable, total = count_parameters(peft_model)
    assert trainable == expected_lora_parameters(peft_model, 256) == 24 * 5_865_472
    assert 0.215 < trainable / total < 0.225


@pytest.mark.parametrize("pack_tokens", [0, 64])  # 64: packed rows, per-text attention
def test_gradient_checkpointing_captures_once_and_matches(
    tiny_llama, tiny_tokenizer, _tiny_pair, pack_tokens
):
    import copy

    grads = []
    for ckpt in (False, True):
        model = copy.deepcopy(_tiny_pair[1])
        st = _student(model, tiny_tokenizer, gradient_checkpointing=ckpt)
        st.pack_tokens = pack_tokens
        st.model.train()
        st.tap.captures = 0
        rep = st.rep_forward(TEXTS)
        out = st.gen_forward(PAIRS, torch.tensor([1, 0, 1]))
        loss = out.loss + (rep @ rep.T).sum()
        loss.backward()
        assert st.tap.captures == len(st.tap.names)
        grads.append({n: p.grad.clone() for n, p in st.model.named_parameters() if p.requires_grad})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


def test_rep_pass_stops_after_last_tapped_layer(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer, _cfg(layers=[0], modules=["q_proj"]))
    ran = []
    body = st.model.get_base_model().model
    body.layers[1].register_forward_pre_hook(lambda m, a: ran.append(1))
    st.rep_forward(TEXTS)
    assert ran == []
    st.gen_forward(PAIRS)
    assert ran == [1]


def test_several_modules_concat(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer, _cfg(layers=[0, -1], modules=["q_proj", "down_proj"]))
    rep = st.rep_forward(TEXTS)
    assert rep.shape == (4, 16) == (4, st.tap.dim)
    torch.testing.assert_close(rep.norm(dim=-1), torch.ones(4))


def test_batched_inference_matches_one_by_one(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer)
    for mode in ("gen", "rep"):
        batched = score_pairs(st, PAIRS, mode=mode, batch_size=2)
        single = [score_pairs(st, [p], mode=mode)[0] for p in PAIRS]
        assert batched == pytest.approx(single, abs=1e-5)
    emb = encode(st, TEXTS, batch_size=3)
    assert emb.shape == (4, st.tap.dim)
    assert emb[0] == pytest.approx(encode(st, TEXTS[:1])[0], abs=1e-5)


def test_gen_loss_is_cross_entropy_of_gold_word(tiny_llama, tiny_tokenizer):
    st = _student(tiny_llama, tiny_tokenizer)
    labels = torch.tensor([1, 0, 1])
    out = st.gen_forward(PAIRS, labels)
    assert out.loss is not None and torch.isfinite(out.loss)
    assert ((out.prob >= 0) & (out.prob <= 1)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tap_modules": ["nope_proj"]}, "has no LoRA adapter"),
        ({"tap_layers": [7]}, "out of range"),
        ({"label_words": ("yes", "yes")}, "share their first token"),
        ({"template": "no slots here"}, "must contain both"),
    ],
)
def test_bad_student_config_fails_before_work(tiny_llama, tiny_tokenizer, change, message):
    cfg = _cfg()
    if "tap_modules" in change:
        cfg.tap.modules = change["tap_modules"]
    if "tap_layers" in change:
        cfg.tap.layers = change["tap_layers"]
    if "label_words" in change:
        cfg.prompt.label_words = change["label_words"]
    with pytest.raises((ConfigError, ValueError), match=message):
        if "template" in change:  # the schema refuses it at once (pydantic's ValueError)
            cfg.prompt.template = change["template"]
        assemble_student(tiny_llama, tiny_tokenizer, cfg)


def test_lora_on_top_layers_only(tiny_llama, tiny_tokenizer, _tiny_pair):
    import copy

    cfg = _cfg()
    cfg.lora.layers = [-1]
    st = _student(tiny_llama, tiny_tokenizer, cfg)
    names = list(lora_layers(st.model))
    assert names and all(".layers.1." in n for n in names)
    assert len(names) == 7  # q, k, v, o, gate, up, down of the top layer
    bad = _cfg(layers=[0])
    bad.lora.layers = [-1]
    with pytest.raises(
        ConfigError, match=r"has no LoRA adapter \(layer 0 has no LoRA; adapted layers: 1\)"
    ):
        assemble_student(copy.deepcopy(_tiny_pair[1]), tiny_tokenizer, bad)


def test_layer_ranges_in_messages():
    from flipkd.student.tap import _ranges

    assert _ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert _ranges([3]) == "3" and _ranges([]) == ""


def test_student_is_the_module_the_trainer_wraps(tiny_llama, tiny_tokenizer):
    from flipkd.student.lora import lora_matrices

    st = _student(tiny_llama, tiny_tokenizer)
    assert isinstance(st, torch.nn.Module) and st.peft is st.model
    params = {id(p) for p in st.parameters()}
    lora = [p for m in lora_matrices(st.peft) for p in m.parameters()]
    assert lora and all(id(p) in params for p in lora)
    assert len(params) == len(list(st.peft.parameters()))  # nothing twice, nothing else
    st.gen_vocab = "labels"  # as the trainer sets it before preparing the student
    module = st
    keys = list(module.state_dict())
    assert keys and all(k.startswith("peft.") for k in keys)
    assert {k.removeprefix("peft.") for k in keys} == set(st.peft.state_dict())
    out = module(PAIRS, torch.tensor([1, 0, 1]), TEXTS, need_gen=True, need_rep=True)
    torch.testing.assert_close(out["reps"], st.rep_forward(TEXTS))
    gen = st.gen_forward(PAIRS, torch.tensor([1, 0, 1]), vocab="labels")
    torch.testing.assert_close(out["gen_loss"], gen.loss)
    torch.testing.assert_close(out["label_logits"], gen.label_logits)
    assert set(module(PAIRS, None, TEXTS, need_gen=False, need_rep=True)) == {"reps"}


def test_config_pack_tokens_reaches_the_packed_pass(tiny_tokenizer, _tiny_pair):
    import copy

    rows = {}
    for tokens in (512, 8):
        cfg = _cfg()
        cfg.pack_tokens = tokens
        st = _student(copy.deepcopy(_tiny_pair[1]), tiny_tokenizer, cfg)
        assert st.pack_tokens == tokens and not st.body.always_pack
        batch = st._batch([*TEXTS, "x"], st.max_text_length)  # "x": mostly padding
        assert st.body.layout(batch) is None  # with grad: padded until the trainer packs
        with torch.no_grad():
            rows[tokens] = st.body.layout(batch).input_ids.shape[0]
        st.pack_tokens = cfg.pack_tokens  # the trainer: every pass, in the configured rows
        assert st.body.always_pack
        assert st.body.layout(batch).input_ids.shape[0] == rows[tokens]
    assert rows[8] > rows[512] == 1


@pytest.mark.parametrize(
    ("benchmark", "prompt", "suffix", "prefix"),
    [
        ("mqp", {}, "\nAnswer:", " "),
        ("atec", {}, "\n答案：", ""),  # a full-width colon takes no space before 是/否
        ("atec", {"language": "en"}, "\nAnswer:", " "),
        ("atec", {"answer_suffix": "\nA:", "label_prefix": " "}, "\nA:", " "),
    ],
    # printable ids: an id holding the suffix's newline broke pytest-xdist's bookkeeping
    # (seen on a 16-core GPU machine: "assert not crashitem")
    ids=["mqp", "atec", "atec-en", "atec-own-cue"],
)
def test_the_plain_prompt_ends_with_the_languages_answer_cue(benchmark, prompt, suffix, prefix):
    from flipkd.config.schema import PromptConfig
    from flipkd.student.prompt import label_prefix, render, resolve_prompt

    spec = resolve_prompt(PromptConfig(**prompt), benchmark)
    assert (spec.answer_suffix, spec.label_prefix) == (suffix, prefix)
    assert render(None, spec, "a", "b", use_chat_template=False).endswith(suffix)
    assert label_prefix(spec, use_chat_template=False) == prefix
    assert label_prefix(spec, use_chat_template=True) == ""


CANDIDATES = ["my card was stolen", "what is the fee", "aspirin", "how do i reset it", "fee?"]


@pytest.mark.parametrize("chat", [True, False])
def test_a_shared_prompt_prefix_scores_as_the_plain_pass(tiny_llama, tiny_tokenizer, chat):
    """Re-ranking one query's candidates runs the common prompt prefix once (shared.py); the
    label logits are those of gen_forward on each whole prompt, and score_pairs mixes grouped
    and lone pairs back into the caller's order."""
    from flipkd.student.shared import common_prefix_length, shared_prefix_label_logits

    cfg = _cfg()
    cfg.prompt.use_chat_template = chat
    cfg.prompt.label_prefix = ""  # the tiny tokenizer's ' yes' and ' no' start with one space
    st = _student(tiny_llama, tiny_tokenizer, cfg).eval()
    query = TEXTS[0]
    pairs = [(query, c) for c in CANDIDATES]
    with torch.no_grad():
        want = st.gen_forward(pairs).label_logits
    got = shared_prefix_label_logits(st, pairs)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    ids = [st.tokenizer(p, add_special_tokens=False)["input_ids"] for p in st.prompts(pairs)]
    assert common_prefix_length(ids) > len(st.tokenizer(query)["input_ids"])  # it shares a lot
    mixed = [pairs[0], ("aspirin", "fee?"), *pairs[1:], (TEXTS[2], TEXTS[3])]
    shared = score_pairs(st, mixed, "gen", batch_size=2)
    plain = score_pairs(st, mixed, "gen", share_prefix=False)
    assert shared.shape == (len(mixed),)
    assert abs(shared - plain).max() < 1e-5
    assert len(set(shared.round(6).tolist())) > 3  # not one value for every pair


def test_packed_tails_see_the_prefix_and_their_own_earlier_tokens_only():
    from flipkd.student.shared import tails_mask

    mask = tails_mask([2, 1, 3], n_prefix=2)[0, 0]
    assert mask.shape == (6, 8)
    sees = (mask == 0).int().tolist()
    assert sees == [
        [1, 1, 1, 0, 0, 0, 0, 0],  # tail 0, token 0
        [1, 1, 1, 1, 0, 0, 0, 0],  # tail 0, token 1
        [1, 1, 0, 0, 1, 0, 0, 0],  # tail 1 (one token)
        [1, 1, 0, 0, 0, 1, 0, 0],  # tail 2 ...
        [1, 1, 0, 0, 0, 1, 1, 0],
        [1, 1, 0, 0, 0, 1, 1, 1],
    ]
    assert mask.min() == torch.finfo(torch.float32).min


def test_a_sliding_window_shorter_than_the_prompt_scores_the_plain_way(tiny_llama, tiny_tokenizer):
    from flipkd.student.shared import shared_prefix_label_logits

    cfg = _cfg()
    cfg.prompt.use_chat_template = False
    cfg.prompt.label_prefix = ""
    st = _student(tiny_llama, tiny_tokenizer, cfg).eval()
    pairs = [(TEXTS[0], c) for c in CANDIDATES]
    st.body.decoder.config.sliding_window = 4  # shorter than every prompt
    try:
        with torch.no_grad():
            want = st.gen_forward(pairs).label_logits
        with mock.patch("flipkd.student.shared.DynamicCache", side_effect=AssertionError):
            got = shared_prefix_label_logits(st, pairs)  # no cache, no packing
    finally:
        st.body.decoder.config.sliding_window = None
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_common_prefix_leaves_every_sequence_its_last_token():
    from flipkd.student.shared import common_prefix_length, group_by_first_text

    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2]]) == 1
    assert common_prefix_length([[1, 2], [3, 4]]) == 0
    assert common_prefix_length([[5]]) == 0
    groups, alone = group_by_first_text([("a", "x"), ("b", "y"), ("a", "z"), ("c", "w")])
    assert groups == [[0, 2]] and alone == [1, 3]
