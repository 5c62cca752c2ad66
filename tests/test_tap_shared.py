"""student.tap.shared = false: the tapped modules' B is frozen at zero (a tap-only adapter)."""

from __future__ import annotations

import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer import train_student
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student

PAIRS = [(p.text_a, p.text_b) for p in make_pairs(6)]


def _tap_isolated_config(steps: int = 3):
    cfg = tiny_config(steps=steps, dropout=0.0, save_every=0)
    cfg.student.tap.shared = False
    return cfg


def test_tap_only_adapter_keeps_b_at_zero_and_trains_a(tmp_path):
    pairs = make_pairs()
    cfg = _tap_isolated_config()
    student = tiny_student(cfg)
    (layer,) = student.tap.layers
    a0 = layer.lora_A["default"].weight.detach().clone()
    b = layer.lora_B["default"].weight
    assert not b.requires_grad and float(b.abs().sum()) == 0.0
    train_student(
        cfg, tmp_path / "run", cache=make_cache(tmp_path / "c", pairs), train_pairs=pairs,
        student=student, progress=False,
    )  # fmt: skip
    assert float(b.abs().sum()) == 0.0  # still nothing added to the label's path
    assert not torch.equal(layer.lora_A["default"].weight, a0)  # the representation trained it
    others = [
        m.lora_B["default"].weight for n, m in student.model.named_modules()
        if hasattr(m, "lora_B") and m is not layer
    ]  # fmt: skip
    assert others and all(w.requires_grad for w in others)
    assert any(float(w.detach().abs().sum()) > 0 for w in others)  # the rest of LoRA learnt


def test_generation_does_not_read_the_tap_only_adapter():
    student = tiny_student(_tap_isolated_config())
    student.model.eval()
    (layer,) = student.tap.layers
    with torch.no_grad():
        before = student.gen_forward(PAIRS).label_logits
        rep_before = student.rep_forward(["a text", "another text"])
        layer.lora_A["default"].weight.mul_(3.0).add_(0.1)
        after = student.gen_forward(PAIRS).label_logits
        rep_after = student.rep_forward(["a text", "another text"])
    torch.testing.assert_close(after, before)
    assert not torch.allclose(rep_after, rep_before)


def test_shared_default_keeps_old_hashes():
    base = FlipkdConfig()
    isolated = FlipkdConfig.model_validate({"student": {"tap": {"shared": False}}})
    assert FlipkdConfig.model_validate({"student": {"tap": {"shared": True}}}) == base
    assert config_hash(isolated) != config_hash(base)


def test_lora_init_is_drawn_from_the_seed_alone():
    from flipkd.student.build import assemble_student
    from tiny_run import _tiny_llama, _tiny_tokenizer

    cfg = tiny_config()

    def a_matrices(seed, noise_before: int):
        tok = _tiny_tokenizer()
        model = _tiny_llama(len(tok))
        torch.rand(noise_before)  # whatever ran before in the process
        state = torch.random.get_rng_state()
        student = assemble_student(model, tok, cfg.student, init_seed=seed)
        assert torch.equal(torch.random.get_rng_state(), state)  # the global stream untouched
        return {n: p.detach().clone() for n, p in student.model.named_parameters() if "lora_A" in n}

    first, again, other = a_matrices(7, 10), a_matrices(7, 1000), a_matrices(8, 10)
    assert first.keys() == again.keys() and first
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not any(torch.equal(first[k], other[k]) for k in first)
