"""Bench: the useful-FLOP counter by hand on the tiny Llama; the bench's parts end to end.

No timing assertions: speed figures come from ``flipkd bench``, not from tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flipkd.bench import PassCost, finalize, summary_lines, worker, write_perf, write_train
from flipkd.bench.flipkd_train import batch_tokens, step_flops, student_costs
from flipkd.bench.runner import BenchSettings, run_task
from flipkd.config import StudentConfig
from flipkd.student import assemble_student
from tiny_run import assert_same_passes, make_pairs, passes_with_grads

# The tiny Llama (conftest): hidden 32, intermediate 64, 4 heads of 8, 2 KV heads, 2 layers.
Q, KV, OUT, MLP, NORM = 32 * 32, 32 * 16, 32 * 32, 32 * 64, 32
LAYER = Q + 2 * KV + OUT + 3 * MLP + 2 * NORM  # 9280
R = 4


def _lora(i: int, o: int) -> int:
    return R * (i + o)


def _top_layer_student(model, tok):
    cfg = StudentConfig(model="unused", max_length=96, max_text_length=16)
    cfg.lora.rank, cfg.lora.layers = R, [-1]
    torch.manual_seed(0)
    return assemble_student(model, tok, cfg)


def test_pass_cost_formula():
    cost = PassCost(n_fwd=10, n_bwd=4, lora_fwd=2, lora_bwd=3, head_fwd=5, head_bwd=5)
    assert cost.flops(tokens=7, sequences=2, backward=False) == 2 * 7 * 12 + 2 * 2 * 5
    assert cost.flops(tokens=7, sequences=2, backward=True) == 168 + 20 + 2 * 7 * 7 + 20


def test_cut_rep_pass_counts_only_what_ran(tiny_llama, tiny_tokenizer):
    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    rep = student_costs(st)["rep"]
    # forward: layer 0 whole, layer 1 up to (not including) the tapped down_proj; no final norm
    assert rep.n_fwd == LAYER + (LAYER - MLP)
    # backward: only layer-1 modules whose input depends on LoRA: o, post-attention norm, gate, up
    assert rep.n_bwd == OUT + NORM + 2 * MLP
    ran = _lora(32, 32) * 2 + _lora(32, 16) * 2 + _lora(32, 64) * 2  # q o, k v, gate up
    tap_a = R * 64  # the tap's A·x on down_proj's input
    assert rep.lora_fwd == ran + tap_a
    # weight grads for all; input grads for all but q/k/v's A (their input needs none)
    grad_in = (R * 32 + R * 16 * 2) + (R * 32 + R * 32) + 2 * (R * 32 + R * 64)
    assert rep.lora_bwd == ran + grad_in + 2 * tap_a
    assert rep.head_fwd == rep.head_bwd == 0


def test_gen_pass_runs_every_layer_and_the_head_once(tiny_llama, tiny_tokenizer):
    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    gen = student_costs(st)["gen"]
    assert gen.n_fwd == 2 * LAYER + NORM
    assert gen.n_bwd == OUT + NORM + 3 * MLP + NORM
    assert gen.head_fwd == gen.head_bwd == len(tiny_tokenizer) * 32
    assert gen.lora_fwd == 2 * _lora(32, 32) + 2 * _lora(32, 16) + 2 * _lora(32, 64) + _lora(64, 32)


def test_padding_counts_zero(tiny_llama, tiny_tokenizer):
    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    costs = student_costs(st)
    pairs = [("how do i reset my password", "aspirin"), ("my card was stolen", "what is the fee")]
    together = batch_tokens(st, pairs)
    assert together["rep"]["padded"] > together["rep"]["tokens"]  # the batch does pad
    alone = [batch_tokens(st, [p]) for p in pairs]
    for name in ("gen", "rep"):
        assert together[name]["tokens"] == sum(a[name]["tokens"] for a in alone)
    # a step's FLOPs are additive over pairs (no text repeats here, so dedupe changes nothing)
    total = step_flops(costs, together, "full")
    assert total == pytest.approx(sum(step_flops(costs, a, "full") for a in alone))
    assert step_flops(costs, together, "rep") < total


@pytest.fixture(scope="module")
def tiny_bench_spec(tiny_llama_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("bench-data") / "pairs.jsonl"
    rows = [{"text_a": p.text_a, "text_b": p.text_b, "label": p.label} for p in make_pairs(40)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return {
        "student": str(tiny_llama_dir),
        "benchmark": str(data),
        "steps": 2,
        "warmup": 1,
        "threads": 1,
        "texts": 24,
        "batch_size": 8,
        "overrides": [
            "student.lora.layers=[-1]",
            "student.tap.layers=[-1]",
            "student.prompt.use_chat_template=true",  # the tiny tokenizer splits " yes"
            "student.max_text_length=16",
        ],
        "peak": {"sizes": [64, 128], "repeats": 1},
    }


def test_bench_parts_end_to_end(tiny_bench_spec, tmp_path):
    torch.set_num_threads(1)
    students = {"tiny": {"benchmark": "tiny"}}
    for task in ("train", "peer", "encode"):
        students["tiny"][task] = worker.TASKS[task]({**tiny_bench_spec, "task": task})
    peak = worker.TASKS["peak"]({"sizes": [64, 128], "repeats": 1})
    results = {
        "provenance": {
            "command": "test",
            "git_commit": "x",
            "versions": {},
            "machine": {},
            "date": "d",
        },
        "load_average_start": [0.0, 0.0, 0.0],
        "load_average_end": [0.0, 0.0, 0.0],
        "matmul_peak": peak,
        "students": students,
    }
    finalize(results)
    train = students["tiny"]["train"]
    for mode in ("rep", "full"):
        t = train[mode]
        assert t["timed_steps"] == 2 and len(t["step_seconds"]) == 2
        assert (
            t["useful_flop_per_s"] > 0 and t["tokens_per_s"] > 0 and 0 <= t["padding_fraction"] < 1
        )
    assert train["full"]["useful_flops_per_step"] > train["rep"]["useful_flops_per_step"]
    assert students["tiny"]["peer"]["trainable_parameters"] == train["trainable_parameters"]
    enc = students["tiny"]["encode"]
    assert enc["texts"] == 24 and enc["flipkd_texts_per_s"] > 0 and enc["peer_texts_per_s"] > 0
    ratios = students["tiny"]["ratios"]
    for mode in ("rep", "full"):  # against the peak measured next to the mode's steps
        near = train[mode]["matmul_peak_adjacent"]
        assert near["peak_gflops"] == max(
            near["before"]["peak_gflops"], near["after"]["peak_gflops"]
        )
        assert ratios[f"{mode}_flops_vs_peak"] == pytest.approx(
            train[mode]["useful_flop_per_s"] / (near["peak_gflops"] * 1e9)
        )
        assert ratios[f"{mode}_flops_vs_run_peak"] == pytest.approx(
            train[mode]["useful_flop_per_s"] / (peak["peak_gflops"] * 1e9)
        )
    assert (
        train["rep"]["matmul_peak_adjacent"]["after"]
        is train["full"]["matmul_peak_adjacent"]["before"]
    )
    assert set(ratios) == {
        "rep_flops_vs_peak",
        "full_flops_vs_peak",
        "rep_flops_vs_run_peak",
        "full_flops_vs_run_peak",
        "rep_pairs_vs_peer",
        "encode_vs_peer",
        "train_peak_rss_gb",
    }
    assert {r["target"] for r in results["targets"]} >= {"encode texts/s >= 1.2 x peer"}
    write_perf(results, tmp_path / "perf")
    write_train(results, tmp_path / "train")
    saved = json.loads((tmp_path / "perf" / "bench.json").read_text())
    assert saved["students"]["tiny"]["ratios"] == pytest.approx(ratios)
    assert "| tiny | tiny | full |" in (tmp_path / "train" / "README.md").read_text()
    assert any("NOT met" in line or "met" in line for line in summary_lines(results))


def test_worker_process_reports_a_bad_override_as_a_user_error(tiny_bench_spec):
    from flipkd.errors import FlipkdError

    spec = {**tiny_bench_spec, "task": "train", "overrides": ["student.lora.layers=[-9]"]}
    with pytest.raises(FlipkdError, match="layers"):
        run_task(spec, threads=1)


def test_settings_pick_the_benchmark_per_student():
    s = BenchSettings(["smollm2-135m", "qwen2.5-0.5b", "other"])
    assert [s.benchmark_of(x) for x in s.students] == ["mqp", "atec", "mqp"]
    assert BenchSettings(["qwen2.5-0.5b"], benchmark="mqp").benchmark_of("qwen2.5-0.5b") == "mqp"


def test_pack_tokens_reaches_the_config_as_an_override():
    from flipkd.bench.flipkd_train import bench_config

    s = BenchSettings(["tiny"], overrides=["train.batch_size=4"], pack_tokens=0)
    assert s.task_overrides() == ["train.batch_size=4", "student.pack_tokens=0"]
    assert BenchSettings(["tiny"]).task_overrides() == []
    cfg = bench_config("smollm2-135m", "mqp", "rep", 2, overrides=s.task_overrides())
    assert cfg.student.pack_tokens == 0 and cfg.train.batch_size == 4
    assert bench_config("smollm2-135m", "mqp", "rep", 2).student.pack_tokens == 512


# --- sequence packing (flipkd.student.packing), the trainer's speed-up -------------------------
PACK_TEXTS = ["how do i reset my password", "aspirin", "my card was stolen what should i do", "no"]
PACK_PAIRS = [
    (PACK_TEXTS[0], PACK_TEXTS[1]),
    (PACK_TEXTS[2], PACK_TEXTS[3]),
    (PACK_TEXTS[1], PACK_TEXTS[2]),
]


def test_pack_rows_positions_and_unpack():
    from flipkd.student.packing import pack

    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    ids = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]])
    packed = pack(ids, mask, cap=4)  # 8 tokens -> 2 rows, longest text first
    assert packed.input_ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3], [0, 1, 2, 0]]
    assert packed.last.tolist() == [6, 7, 3]
    hidden = torch.arange(8.0).reshape(2, 4, 1)
    unpacked = packed.unpack(hidden, mask)[..., 0].tolist()
    assert unpacked == [[4, 5, 6, 0], [7, 0, 0, 0], [0, 1, 2, 3]]
    lengths = torch.tensor([[1] * 5 + [0] * 5, [1] * 10, [1] * 6 + [0] * 4])  # 21 tokens, cap 12
    balanced = pack(torch.ones(3, 10, dtype=torch.long), lengths, cap=12)
    assert balanced.input_ids.shape == (2, 11)  # greedy in order: 3 rows of 10
    wide = pack(ids, mask, cap=100)  # one row, no tail
    assert wide.input_ids.shape == (1, 8)
    assert pack(ids, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]]), cap=4) is None


@pytest.mark.parametrize("cap", [8, 512])
def test_packed_passes_equal_padded_in_value_and_gradient(tiny_llama, tiny_tokenizer, cap):
    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    for layer in st.tap.layers:  # give B values so LoRA changes the forward
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    st.model.eval()  # no dropout: both runs must see the same function
    labels = torch.tensor([1, 0, 1])
    results = []
    for tokens in (0, cap):
        st.pack_tokens = tokens
        results.append(passes_with_grads(st, PACK_TEXTS, PACK_PAIRS, labels))
    assert_same_passes(results[1], results[0])


def test_packing_leaves_fewer_tokens_for_the_layers(tiny_llama, tiny_tokenizer):
    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    padded = batch_tokens(st, PACK_PAIRS)
    st.pack_tokens = 512
    packed = batch_tokens(st, PACK_PAIRS)
    for name in ("gen", "rep"):
        assert packed[name]["tokens"] == padded[name]["tokens"]
        assert packed[name]["padded"] == packed[name]["tokens"] < padded[name]["padded"]


def test_inference_packs_only_no_grad_batches_that_are_mostly_padding(
    tiny_llama, tiny_tokenizer, monkeypatch
):
    import flipkd.student.body as body_mod
    from flipkd.student import encode, score_pairs

    st = _top_layer_student(tiny_llama, tiny_tokenizer)
    for layer in st.tap.layers:
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    st.model.eval()
    caps = []
    real_pack = body_mod.pack
    monkeypatch.setattr(body_mod, "pack", lambda *a: caps.append(a[2]) or real_pack(*a))
    uneven = [PACK_TEXTS[1], PACK_TEXTS[2]]  # 1-2 tokens vs ~9: mostly padding
    with torch.no_grad():
        packed_rep = st.rep_forward(uneven)
        assert caps == [512]  # student.pack_tokens
        st.body.pack_inference_above = 0.0  # prompts share a template: little padding, any packs
        packed_gen = st.gen_forward(PACK_PAIRS).label_logits
    assert caps == [512] * 2
    st.body.pack_inference_above = None  # the padded reference
    with torch.no_grad():
        torch.testing.assert_close(st.rep_forward(uneven), packed_rep, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(st.gen_forward(PACK_PAIRS).label_logits, packed_gen)
    st.body.pack_inference_above = 0.2
    caps.clear()
    st.rep_forward(uneven)  # grad on (training): never auto-packed
    with torch.no_grad():
        st.rep_forward([PACK_TEXTS[0], PACK_TEXTS[0]])  # no padding at all
        st.rep_forward([PACK_TEXTS[2]])  # one text
    assert caps == []
    # encode / score_pairs sort by token count and give results back in the caller's order
    texts = PACK_TEXTS * 2
    one_by_one = np.concatenate([encode(st, [t]) for t in texts])
    np.testing.assert_allclose(encode(st, texts, batch_size=3), one_by_one, atol=1e-5)
    singles = [score_pairs(st, [p])[0] for p in PACK_PAIRS]
    np.testing.assert_allclose(score_pairs(st, PACK_PAIRS, batch_size=2), singles, atol=1e-5)
