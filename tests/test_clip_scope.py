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


@pytest.mark.parametrize(
    ("route", "gen_on", "rep_on"),
    [("shared", "AB", "AB"), ("split", "B", "A"), ("rep-a", "AB", "A")],
)
def test_grad_route_gives_each_term_its_matrices(route, gen_on, rep_on):
    torch.manual_seed(0)
    a, b, other = (torch.nn.Parameter(torch.randn(4)) for _ in range(3))
    names = ["m.lora_A.default.weight", "m.lora_B.default.weight", "m.extra"]
    x = torch.randn(4)

    def terms():  # both terms read every parameter, the representation 10x larger
        gen = (a @ x + b @ x + other @ x) ** 2
        return gen, 10.0 * (a.pow(2).sum() + b.pow(2).sum() + other.pow(2).sum())

    gen, rep = terms()
    g_gen = torch.autograd.grad(gen, [a, b, other], retain_graph=True)
    g_rep = torch.autograd.grad(rep, [a, b, other])
    keep_gen = [r in gen_on for r in "AB"] + [True]  # a non-LoRA parameter takes both
    keep_rep = [r in rep_on for r in "AB"] + [True]
    big = 1e6  # no clipping: the routed sum is exact
    want = [
        (g if kg else 0) + (h if kr else 0)
        for g, h, kg, kr in zip(g_gen, g_rep, keep_gen, keep_rep, strict=True)
    ]
    apart = TermApart([a, b, other], names, route)
    gen, rep = terms()
    apart.add(rep, 1.0)
    gen.backward()
    norms = apart.apply(_OneProcess(), big)
    for p, w in zip((a, b, other), want, strict=True):
        torch.testing.assert_close(p.grad, w)
    # the logged norms are of what each term applies
    gen_kept = [g for g, k in zip(g_gen, keep_gen, strict=True) if k]
    want_norm = float(torch.linalg.vector_norm(torch.cat(gen_kept)))
    assert norms["grad_norm/gen"] == pytest.approx(want_norm)


def test_grad_route_split_trains_a_only_by_the_representation(tmp_path, monkeypatch):
    """End to end: with the representation terms weighted ~0, the gradient that reaches the
    optimizer for the A matrices is ~0 under ``split`` (the label's is routed away) and the
    label's size under ``shared``; the B matrices get the label's under both."""
    pairs = make_pairs()
    seen: list[dict[str, float]] = []
    names: dict[int, str] = {}
    step = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        grads = {"A": 0.0, "B": 0.0}
        for group in self.param_groups:
            for p in group["params"]:
                role = "A" if "lora_A" in names[id(p)] else "B"
                if p.grad is not None:
                    grads[role] = max(grads[role], float(p.grad.abs().max()))
        seen.append(grads)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    got = {}
    for route in ("split", "shared"):
        cfg = tiny_config(steps=2, dropout=0.0, save_every=0, clip_scope="term-apart")
        cfg.train.grad_route = route
        cfg.loss.alpha, cfg.loss.beta = 1e-12, 1e-12  # present, too small to count
        student = tiny_student(cfg)
        names.update({id(p): n for n, p in student.model.named_parameters()})
        seen.clear()
        train_student(
            cfg, tmp_path / route, cache=make_cache(tmp_path / f"c{route}", pairs),
            train_pairs=pairs, student=student, progress=False,
        )  # fmt: skip
        got[route] = {k: max(g[k] for g in seen) for k in ("A", "B")}
    assert got["split"]["A"] < 1e-9 < got["shared"]["A"]
    assert got["split"]["B"] > 1e-6 and got["shared"]["B"] > 1e-6


def test_grad_route_needs_term_apart_and_is_hash_neutral():
    with pytest.raises(ValueError, match="grad_route 'split'.*term-apart"):
        FlipkdConfig.model_validate({"train": {"grad_route": "split"}})
    apart = FlipkdConfig.model_validate({"train": {"clip_scope": "term-apart"}})
    shared = FlipkdConfig.model_validate(
        {"train": {"clip_scope": "term-apart", "grad_route": "shared"}}
    )
    split = FlipkdConfig.model_validate(
        {"train": {"clip_scope": "term-apart", "grad_route": "split"}}
    )
    assert config_hash(shared) == config_hash(apart) != config_hash(split)
    with pytest.raises(ValueError, match="grad_route"):
        FlipkdConfig.model_validate({"train": {"clip_scope": "term-apart", "grad_route": "b"}})
    # a row with one term (sft) computes the same under any route: the same key
    sft = {"contrastive": "none", "dist": "none"}
    sft_shared = FlipkdConfig.model_validate({**shared.model_dump(), "loss": sft})
    sft_split = FlipkdConfig.model_validate({**split.model_dump(), "loss": sft})
    assert config_hash(sft_split) == config_hash(sft_shared)


def test_rep_max_grad_norm_clips_the_representation_terms_to_their_own_norm():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6))
    x = torch.randn(6)

    def terms():
        return (w @ x) ** 2, 50.0 * w.pow(2).sum()

    gen, rep = terms()
    g_gen = torch.autograd.grad(gen, [w])[0]
    g_rep = torch.autograd.grad(rep, [w])[0]

    def clipped(g, norm):
        return g * min(1.0, norm / (float(g.norm()) + 1e-6))

    for rep_max, want_rep in ((None, 0.5), (3.0, 3.0)):
        w.grad = None
        apart = TermApart([w])
        gen, rep = terms()
        apart.add(rep, 1.0)
        gen.backward()
        apart.apply(_OneProcess(), 0.5, rep_max)
        torch.testing.assert_close(w.grad, clipped(g_gen, 0.5) + clipped(g_rep, want_rep))


def test_rep_max_grad_norm_needs_term_apart_and_is_hash_neutral():
    with pytest.raises(ValueError, match="rep_max_grad_norm.*term-apart"):
        FlipkdConfig.model_validate({"train": {"rep_max_grad_norm": 2.0}})
    apart = {"clip_scope": "term-apart"}
    base = FlipkdConfig.model_validate({"train": apart})
    same = FlipkdConfig.model_validate({"train": {**apart, "rep_max_grad_norm": None}})
    more = FlipkdConfig.model_validate({"train": {**apart, "rep_max_grad_norm": 4.0}})
    assert config_hash(same) == config_hash(base) != config_hash(more)
    with pytest.raises(ValueError, match="rep_max_grad_norm"):
        FlipkdConfig.model_validate({"train": {**apart, "rep_max_grad_norm": 0}})
