"""train.clip_scope: the tapped A matrices, or the loss terms, clipped apart."""

from __future__ import annotations

import json

import pytest
import torch

from flipkd.config import FlipkdConfig, config_hash
from flipkd.trainer import train_student
from flipkd.trainer.clip import TermApart, clip_groups
from tiny_run import make_cache, make_pairs, tiny_config, tiny_student


def test_groups_split_the_tap_from_the_rest():
    student = tiny_student(tiny_config())
    params = [p for p in student.model.parameters() if p.requires_grad]
    assert clip_groups(student, params, "global") == [params]
    tap, rest = clip_groups(student, params, "tap-apart")
    (layer,) = student.tap.layers
    assert len(tap) == 1 and tap[0] is layer.lora_A["default"].weight
    assert len(rest) == len(params) - 1 and all(p is not tap[0] for p in rest)


def _gen_losses(tmp_path, name, row_change: dict, scope: str) -> list[float]:
    pairs = make_pairs()
    cfg = tiny_config(steps=4, dropout=0.0, save_every=0, clip_scope=scope, max_grad_norm=0.5)
    cfg.student.tap.shared = False  # the label never reads the tapped A
    # LoRA on the top layer, tapped at its q_proj: the tap's input is the frozen layer's
    # output, so the representation terms' gradients reach the tapped A and nothing else
    cfg.student.lora.layers, cfg.student.tap.layers = [-1], [-1]
    cfg.student.tap.modules = ["q_proj"]
    cfg.loss.alpha = 1.0
    for key, value in row_change.items():
        setattr(cfg.loss, key, value)
    run = tmp_path / name
    train_student(
        cfg, run, cache=make_cache(tmp_path / f"c{name}", pairs), train_pairs=pairs,
        student=tiny_student(cfg), progress=False,
    )  # fmt: skip
    return [json.loads(x)["gen"] for x in (run / "logs" / "train.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("scope", ["tap-apart", "term-apart"])
def test_clipping_apart_gives_the_label_the_steps_of_sft(tmp_path, scope):
    sft = {"contrastive": "none", "dist": "none"}
    apart = _gen_losses(tmp_path, "fip-apart", {}, scope)
    glob = _gen_losses(tmp_path, "fip-global", {}, "global")
    alone = _gen_losses(tmp_path, "sft-global", sft, "global")
    torch.testing.assert_close(torch.tensor(apart), torch.tensor(alone))  # same label steps
    assert glob[1:] != pytest.approx(alone[1:], abs=1e-6)  # the shared norm changed them


class _OneProcess:
    """What ``TermApart`` needs of the accelerator, for one process."""

    num_processes = 1

    @staticmethod
    def clip_grad_norm_(params, max_norm):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def test_term_apart_clips_each_term_by_its_own_norm():
    torch.manual_seed(0)
    w, v = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3))
    x = torch.randn(5)

    def terms():  # the label reads w only; the representation reads both, 100x larger
        return (w @ x) ** 2 * 0.1, 100.0 * ((w - 1).pow(2).sum() + v.pow(2).sum())

    gen, rep = terms()
    g_gen = torch.autograd.grad(gen, [w, v], allow_unused=True)
    g_rep = torch.autograd.grad(rep, [w, v])

    def clipped(grads):
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None))
        return [None if g is None else g * min(1.0, 0.5 / (float(norm) + 1e-6)) for g in grads]

    want = [clipped(g_gen)[0] + clipped(g_rep)[0], clipped(g_rep)[1]]
    apart = TermApart([w, v])
    gen, rep = terms()
    for _ in range(2):  # two micro-batches of half weight accumulate to one
        apart.add(rep, 0.5)
    (gen * 0.5).backward(retain_graph=True)
    (gen * 0.5).backward()
    norms = apart.apply(_OneProcess(), 0.5)
    torch.testing.assert_close(w.grad, want[0])
    torch.testing.assert_close(v.grad, want[1])  # the label left v's grad empty
    assert norms["grad_norm/rep"] > 100 * norms["grad_norm/gen"] and apart.buf is None


def test_term_apart_logs_both_norms_and_leaves_sft_as_it_was(tmp_path):
    pairs = make_pairs()
    rows = {}
    for name, scope, change in (
        ("fip", "term-apart", {}),
        ("sft-apart", "term-apart", {"contrastive": "none", "dist": "none"}),
        ("sft", "global", {"contrastive": "none", "dist": "none"}),
    ):
        cfg = tiny_config(steps=2, dropout=0.0, save_every=0, clip_scope=scope)
        for key, value in change.items():
            setattr(cfg.loss, key, value)
        train_student(
            cfg, tmp_path / name, cache=make_cache(tmp_path / f"c{name}", pairs),
            train_pairs=pairs, student=tiny_student(cfg), progress=False,
        )  # fmt: skip
        log = (tmp_path / name / "logs" / "train.jsonl").read_text().splitlines()
        rows[name] = [json.loads(x) for x in log]
    assert {"grad_norm/gen", "grad_norm/rep"} <= set(rows["fip"][0])
    assert "grad_norm/rep" not in rows["sft-apart"][0]
    for a, b in zip(rows["sft-apart"], rows["sft"], strict=True):  # sft has one term: one norm
        assert a["gen"] == pytest.approx(b["gen"]) and a["grad_norm/gen"] == b["grad_norm/all"]


def test_term_apart_refuses_fp16():
    with pytest.raises(ValueError, match="term-apart.*fp16"):
        FlipkdConfig.model_validate(
            {"train": {"clip_scope": "term-apart", "mixed_precision": "fp16"}}
        )


def test_scope_is_validated_and_hash_neutral():
    base = FlipkdConfig()
    apart = FlipkdConfig.model_validate({"train": {"clip_scope": "tap-apart"}})
    assert config_hash(FlipkdConfig.model_validate({"train": {"clip_scope": "global"}})) == (
        config_hash(base)
    )
    assert config_hash(apart) != config_hash(base)
    terms = FlipkdConfig.model_validate({"train": {"clip_scope": "term-apart"}})
    assert config_hash(terms) not in (config_hash(base), config_hash(apart))
    with pytest.raises(ValueError, match="clip_scope"):
        FlipkdConfig.model_validate({"train": {"clip_scope": "per-term"}})
