"""Export and ``flipkd.load``: round trip, peft/transformers alone, flipkd.json, card, errors."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

import flipkd
import flipkd.cli.main as cli_main
from flipkd.config import StudentConfig
from flipkd.errors import FlipkdError, ModelError
from flipkd.export import export_run
from flipkd.modes import MODES, SCORE_RANGE
from flipkd.serve.protocol import check_matcher
from flipkd.serve.protocol import load_matcher as serve_load
from flipkd.student import assemble_student, encode, load_base, score_pairs
from flipkd.trainer import train_student
from tiny_run import make_cache, make_pairs, tiny_config

torch.set_num_threads(1)

TEXTS = ["how do i reset my password", "my card was stolen", "what is the fee", "aspirin"]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[1], TEXTS[0]), (TEXTS[3], TEXTS[3])]
REP_EVAL = {
    "kind": "student", "mode": "rep", "benchmark": "mqp", "split": "test",
    "threshold_from": "dev (f1)", "metrics": {"f1": 0.75, "threshold": 0.4, "n": 10},
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_llama_dir) -> Path:
    """A real tiny student run on the saved tiny Llama (tap: layers 0 and -1), dev selection."""
    root = tmp_path_factory.mktemp("export-run")
    cfg = tiny_config(steps=12, save_every=0, eval_every=4)
    cfg.student.model = str(tiny_llama_dir)
    cfg.student.tap.layers = [0, -1]
    cfg.train.seed = 1  # deterministic on CPU: with this seed dev peaks at step 4, before the end
    pairs = make_pairs()
    model, tok = load_base(str(tiny_llama_dir))
    torch.manual_seed(0)
    student = assemble_student(model, tok, cfg.student)
    train_student(
        cfg, root / "run", cache=make_cache(root / "cache", pairs), train_pairs=pairs,
        dev_pairs=pairs[:16], student=student, progress=False,
    )  # fmt: skip
    # the chosen (best) adapter is not the final one, so exporting the wrong one would show
    best, final = (
        load_file(str(root / "run" / d / "adapter_model.safetensors"))
        for d in ("best_adapter", "adapter")
    )
    assert any(not torch.equal(best[k], final[k]) for k in best), "best adapter is the final one"
    (root / "run" / "eval").mkdir()
    (root / "run" / "eval" / "mqp-test.json").write_text(json.dumps(REP_EVAL))
    (root / "run" / "plots").mkdir()
    (root / "run" / "plots" / "scores.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return root / "run"


@pytest.fixture(scope="module")
def exported(run) -> Path:
    out = run.parent / "export"
    export_run(run, out, merged=True)
    return out


@pytest.fixture(scope="module")
def reference(run, tiny_llama_dir):
    """The in-memory student: base + the run's chosen adapter, unmerged."""
    model, tok = load_base(str(tiny_llama_dir))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    student = assemble_student(
        model, tok, StudentConfig.model_validate(cfg["student"]), adapter_dir=run / "best_adapter",
        trainable=False,
    )  # fmt: skip
    student.model.eval()
    return student


@pytest.fixture(scope="module")
def matcher(exported):
    return flipkd.load(exported)


def _spec(exported: Path) -> dict:
    return json.loads((exported / "flipkd.json").read_text())


def test_round_trip_scores_equal_the_in_memory_student(matcher, reference, run):
    gen, cos = score_pairs(reference, PAIRS, "gen"), score_pairs(reference, PAIRS, "rep")
    assert matcher.merged
    np.testing.assert_allclose(matcher.score_pairs(PAIRS, "gen"), gen, atol=1e-6, rtol=0)
    np.testing.assert_allclose(matcher.score_pairs(PAIRS, "rep"), cos, atol=1e-6, rtol=0)
    np.testing.assert_allclose(matcher.cosine_pairs(PAIRS), cos, atol=1e-6, rtol=0)
    np.testing.assert_allclose(matcher.encode(TEXTS), encode(reference, TEXTS), atol=1e-6, rtol=0)
    unmerged = flipkd.load(run.parent / "export", merge=False)  # bitwise without the merge
    assert np.array_equal(unmerged.score_pairs(PAIRS, "gen"), gen)
    assert np.array_equal(unmerged.cosine_pairs(PAIRS), cos)
    from_run = flipkd.load(run, merge=False)  # a run directory loads the same way
    assert np.array_equal(from_run.score_pairs(PAIRS, "gen"), gen)
    assert from_run.threshold["rep"] == pytest.approx(0.4)  # the eval JSON's cosine


def test_matcher_satisfies_the_serve_protocol(matcher, exported):
    check_matcher(matcher)
    served = serve_load(exported)  # what `flipkd serve DIR` calls (the "flipkd" loader)
    assert served.threshold == matcher.threshold
    emb = matcher.encode(TEXTS)
    assert emb.dtype == np.float32 and emb.shape == (4, matcher.student.tap.dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    for mode in MODES:
        low, high = SCORE_RANGE[mode]
        scores = matcher.score_pairs(PAIRS, mode)
        assert scores.shape == (4,) and ((scores >= low) & (scores <= high)).all()
    same_text = matcher.score_pairs(PAIRS, "rep")[3]
    assert same_text == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        matcher.score_pairs(PAIRS, "nope")
    # no eval fixed the mix mode's dev scales: the export has none and says how to get them
    assert "mix" not in matcher.threshold and "mix" not in _spec(exported)
    with pytest.raises(ModelError, match="no mix mode .*--mode mix"):
        matcher.score_pairs(PAIRS, "mix")


def test_an_eval_of_the_mix_mode_travels_into_the_export_and_is_served(run, tmp_path):
    """``flipkd eval RUN --split dev --mode mix`` records the dev scales; export keeps them in
    flipkd.json, the loaded matcher scores ``mode="mix"`` with them, ``/match`` serves it."""
    from fastapi.testclient import TestClient

    from flipkd.mixing import MixScales
    from flipkd.serve.app import create_app
    from flipkd.serve.faq import FaqEntry
    from flipkd.serve.index import FaqIndex

    row = tmp_path / "run"
    shutil.copytree(run, row)
    scales = {"weight": 0.5, "label_mean": -1.0, "label_std": 2.0, "cosine_mean": 0.3,
              "cosine_std": 0.2}  # fmt: skip
    mix_eval = {"kind": "student", "mode": "mix", "benchmark": "mqp", "split": "dev",
                "threshold_from": "dev (f1)", "mix_weight": 0.5, "mix_scales": scales,
                "metrics": {"f1": 0.8, "threshold": 0.25}}  # fmt: skip
    (row / "eval" / "mqp-dev-mix.json").write_text(json.dumps(mix_eval))
    export_run(row, tmp_path / "out")
    spec = _spec(tmp_path / "out")
    assert spec["mix"] == {
        **scales,
        "threshold": 0.25,
        "source": "mqp-dev-mix.json (chosen on dev (f1))",
    }
    assert spec["thresholds"] == {"gen": 0.5, "rep": pytest.approx(0.4)}  # gen/rep unchanged
    assert "mix" in spec["scores"] and "[mix]" in (tmp_path / "out" / "README.md").read_text()
    for where in (tmp_path / "out", row):  # an export, and the run directory loaded directly
        m = flipkd.load(where, merge=False, verify_base=False)
        assert m.threshold["mix"] == 0.25
        gen, rep = m.score_pairs(PAIRS, "gen"), m.score_pairs(PAIRS, "rep")
        want = MixScales(**scales)(rep, gen)
        np.testing.assert_allclose(m.score_pairs(PAIRS, "mix"), want, rtol=1e-6)
    check_matcher(m)
    index = FaqIndex.build([FaqEntry(str(i), t, None) for i, t in enumerate(TEXTS)], m.encode)
    with TestClient(create_app(m, index)) as client:
        body = client.post("/match", json={"pairs": [list(p) for p in PAIRS], "mode": "mix"}).json()
    assert body["mode"] == "mix" and body["threshold"] == 0.25
    np.testing.assert_allclose([r["score"] for r in body["results"]], want, rtol=1e-5)
    assert [r["label"] for r in body["results"]] == [w >= 0.25 for w in want]


def _prompt_ids(tokenizer, spec: dict, a: str, b: str) -> torch.Tensor:
    """The prompt built from flipkd.json alone (no flipkd code)."""
    body = spec["prompt"]["template"].format(a=a, b=b)
    assert spec["prompt"]["use_chat_template"]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]


def _label_logits(model, tokenizer, spec: dict) -> np.ndarray:
    ids = spec["prompt"]["label_token_ids"]
    with torch.no_grad():
        rows = [
            model(input_ids=_prompt_ids(tokenizer, spec, a, b)).logits[0, -1, ids] for a, b in PAIRS
        ]
    return torch.stack(rows).numpy()


# These load the export the way a user does, with peft and transformers alone: peft 0.21
# reads transformers' deprecated ``is_gradient_checkpointing`` there (flipkd's own loads
# silence it, student/lora.py quiet_peft), so the suite's error on FutureWarning is lifted.
_PLAIN_PEFT = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")


@_PLAIN_PEFT
def test_generation_loads_with_peft_and_transformers_alone(exported, matcher, tiny_llama_dir):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, want = _spec(exported), matcher.label_logits(PAIRS)
    tok = AutoTokenizer.from_pretrained(exported / "tokenizer")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    without = _label_logits(base, tok, spec)
    peft_model = PeftModel.from_pretrained(base, str(exported / "adapter")).eval()
    np.testing.assert_allclose(_label_logits(peft_model, tok, spec), want, atol=1e-5, rtol=0)
    assert not np.allclose(without, want, atol=1e-3)  # the adapter matters
    # the adapter config names the base, so peft's auto class finds it alone
    auto = AutoPeftModelForCausalLM.from_pretrained(str(exported / "adapter")).eval()
    np.testing.assert_allclose(_label_logits(auto, tok, spec), want, atol=1e-5, rtol=0)
    merged = AutoModelForCausalLM.from_pretrained(exported / "merged").eval()
    merged_tok = AutoTokenizer.from_pretrained(exported / "merged")
    np.testing.assert_allclose(_label_logits(merged, merged_tok, spec), want, atol=1e-4, rtol=0)


def test_flipkd_json_names_base_tap_prompt_thresholds_teacher(exported, run, tiny_llama_dir):
    spec, info = _spec(exported), json.loads((run / "run.json").read_text())
    assert spec["base_model"]["path"] == str(Path(tiny_llama_dir).resolve())
    assert spec["base_model"]["weights_hash"] and spec["base_model"]["config_hash"]
    assert spec["adapter"]["from_run"] == "best_adapter"
    assert spec["tap"]["layers"] == [0, -1] and spec["tap"]["modules"] == ["down_proj"]
    assert len(spec["tap"]["module_names"]) == 2 and spec["tap"]["pool"] == "mean"
    assert spec["prompt"]["label_words"] == ["yes", "no"] and spec["prompt"]["chat_template"]
    assert spec["format_version"] == 4  # 2: rep thresholds are cosines; 3: label prefix; 4: mix
    assert spec["thresholds"] == {"gen": 0.5, "rep": pytest.approx(0.4)}
    assert spec["threshold_sources"]["rep"].startswith("mqp-test.json")
    assert spec["threshold_sources"]["gen"].startswith("default")
    assert spec["teacher"]["model"] == info["teacher_model"] == "synthetic"
    assert spec["config_hash"] == info["config_hash"]
    assert spec["flipkd_version"] == flipkd.__version__


@_PLAIN_PEFT
def test_embedder_reproduces_encode_from_base_and_adapter(exported, matcher, tiny_llama_dir):
    """The A path by hand: peft model + the tapped A matrices + embedder.json's recipe."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    emb = json.loads((exported / "embedder" / "embedder.json").read_text())
    a_mats = load_file(str(exported / "embedder" / emb["weights"]))
    adapter = load_file(str(exported / "adapter" / "adapter_model.safetensors"))
    assert a_mats.keys() <= adapter.keys()
    assert all(torch.equal(a_mats[k], adapter[k]) for k in a_mats)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir), str(exported / "adapter")
    ).eval()
    tok = AutoTokenizer.from_pretrained(exported / "tokenizer")
    modules, inputs = dict(model.named_modules()), {}
    for name in emb["modules"]:
        modules[name].register_forward_pre_hook(
            lambda m, args, name=name: inputs.__setitem__(name, args[0])
        )
    rows = []
    for text in TEXTS:
        with torch.no_grad():
            model(**tok(text, add_special_tokens=False, return_tensors="pt"))
        parts = [
            F.normalize((inputs[n][0] @ a_mats[f"{n}.lora_A.weight"].T).mean(0), dim=-1)
            for n in emb["modules"]
        ]
        rows.append(F.normalize(torch.cat(parts), dim=-1))
    np.testing.assert_allclose(torch.stack(rows).numpy(), matcher.encode(TEXTS), atol=1e-5, rtol=0)


def test_card_has_front_matter_metrics_report_and_plots(exported):
    card = (exported / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "peft" and meta["base_model"] and "flipkd" in meta["tags"]
    assert "| | accuracy | f1 |" in card or "| | f1 |" in card
    assert "| mqp/test [rep] |" in card and "| dev during training (step" in card
    assert "| mask/disagree |" in card and "| agree/rep_spearman |" in card
    assert (exported / "plots" / "scores.png").is_file() and "](plots/scores.png)" in card
    assert (exported / "eval" / "mqp-test.json").is_file()


def _run_cli(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["flipkd.cli.export_cmd"])
    monkeypatch.setattr(sys, "argv", ["flipkd", *args])
    cli_main.run()


def test_cli_export_with_explicit_eval_threshold(monkeypatch, run, tmp_path, capsys):
    gen_eval = tmp_path / "gen.json"
    gen_eval.write_text(json.dumps({**REP_EVAL, "mode": "gen", "metrics": {"threshold": 0.3}}))
    _run_cli(
        monkeypatch, "export", str(run), "--out", str(tmp_path / "out"), "--eval", str(gen_eval)
    )
    spec = _spec(tmp_path / "out")
    assert spec["thresholds"] == {"gen": 0.3, "rep": pytest.approx(0.4)}
    assert spec["merged"] is None and not (tmp_path / "out" / "merged").exists()
    assert "threshold[gen] = 0.3000  from gen.json" in capsys.readouterr().out


def _not_a_run(run: Path, tmp: Path) -> tuple[Path, Path, list[str], Path]:
    (tmp / "empty").mkdir()
    return tmp / "empty", tmp / "out", [], tmp / "empty"


def _teacher_run(run: Path, tmp: Path) -> tuple[Path, Path, list[str], Path]:
    (tmp / "teacher").mkdir()
    (tmp / "teacher" / "run.json").write_text(json.dumps({"kind": "teacher", "model": "minilm-l6"}))
    return tmp / "teacher", tmp / "out", [], tmp / "teacher"


def _occupied_out(run: Path, tmp: Path) -> tuple[Path, Path, list[str], Path]:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("mine")
    return run, tmp / "out", [], tmp / "out"


def _eval_without_threshold(run: Path, tmp: Path) -> tuple[Path, Path, list[str], Path]:
    (tmp / "e.json").write_text(json.dumps({"kind": "student", "metrics": {"f1": 1}}))
    return run, tmp / "out", ["--eval", str(tmp / "e.json")], tmp / "e.json"


BAD = {
    "not-a-run": _not_a_run,
    "teacher-run": _teacher_run,
    "occupied-out": _occupied_out,
    "eval-without-threshold": _eval_without_threshold,
}


@pytest.mark.parametrize("what", list(BAD))
def test_bad_exports_fail_in_one_line_with_exit_2(monkeypatch, run, tmp_path, capsys, what):
    src, out, extra, named = BAD[what](run, tmp_path)
    with pytest.raises(FlipkdError) as err:
        export_run(src, out, eval_paths=[Path(p) for p in extra[1:]])
    assert str(named) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SystemExit) as exit_info:
        _run_cli(monkeypatch, "export", str(src), "--out", str(out), *extra)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(named) in lines[0]
    if what == "occupied-out":
        assert (out / "keep.txt").read_text() == "mine"
    else:
        assert not out.exists()


def test_load_refuses_unknown_dirs_and_a_changed_base(exported, tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path)):
        flipkd.load(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy, ignore=shutil.ignore_patterns("merged"))
    spec = _spec(copy)
    spec["base_model"]["weights_hash"] = "0000000000000000"
    (copy / "flipkd.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="weights_hash"):
        flipkd.load(copy)


def test_export_of_a_ladder_row_takes_its_dev_thresholds(run, tmp_path):
    """A ``flipkd reproduce`` row has no eval/ folder; its result.json carries both thresholds."""
    from flipkd.export.thresholds import choose_thresholds, collect_evals

    row = tmp_path / "fip-s0"
    shutil.copytree(run, row, ignore=shutil.ignore_patterns("eval"))
    metrics = {"f1": 0.6, "threshold": 0.3, "rep_f1": 0.7, "rep_threshold": 0.2,
               "mix_f1": 0.8, "mix_threshold": -0.1}  # fmt: skip
    dev = {"labels": [1, 0, 1, 0], "gen": [0.9, 0.2, 0.6, 0.4], "rep": [0.5, 0.1, 0.3, 0.2]}
    ladder = {"row": "fip", "seed": 0, "scores": {"test": {"gen": [0.1]}, "dev": dev},
              "metrics": metrics}  # fmt: skip
    (row / "result.json").write_text(json.dumps(ladder))
    values, sources = choose_thresholds(collect_evals(row))
    assert values == {"gen": 0.3, "rep": pytest.approx(0.2)}  # rep: the cosine itself
    assert sources["gen"].startswith("result.json (chosen on dev")
    export_run(row, tmp_path / "out")
    spec = json.loads((tmp_path / "out" / "flipkd.json").read_text())
    assert spec["thresholds"] == {"gen": 0.3, "rep": pytest.approx(0.2)}
    # the row's mix: its dev pairs' scales at the ladder's weight, its dev-chosen threshold
    assert spec["mix"]["weight"] == 0.5 and spec["mix"]["threshold"] == -0.1
    assert spec["mix"]["cosine_mean"] == pytest.approx(0.275)
    card = (tmp_path / "out" / "README.md").read_text()
    assert (
        "ladder row fip (seed 0)/test [gen]" in card
        and "ladder row fip (seed 0)/test [rep]" in card
        and "ladder row fip (seed 0)/test [mix]" in card
    )
    # given explicitly (`flipkd export RUN --eval RUN/result.json`, as the docs do) or from
    # elsewhere, a row's result.json still gives gen its threshold
    for given in (row / "result.json", shutil.copy(row / "result.json", tmp_path / "r.json")):
        assert choose_thresholds(collect_evals(row, [given]))[0] == values
    # a teacher row gives no student threshold
    (row / "result.json").write_text(json.dumps({**ladder, "row": "teacher"}))
    assert choose_thresholds(collect_evals(row))[1]["gen"].startswith("default")


def test_flipkd_json_is_checked_against_its_schema(exported, tmp_path):
    """flipkd.json is read through export/spec.py: a bad field fails in one line, naming it."""
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy, ignore=shutil.ignore_patterns("merged"))
    spec = _spec(copy)
    cases = {
        "missing field(s) tap": {k: v for k, v in spec.items() if k != "tap"},
        "thresholds: no threshold for rep": {**spec, "thresholds": {"gen": 0.5}},
        "max_length": {**spec, "max_length": "long"},
        "format 99 is newer": {**spec, "format_version": 99},
    }
    for message, content in cases.items():
        (copy / "flipkd.json").write_text(json.dumps(content))
        with pytest.raises(ModelError, match=re.escape(message)) as err:
            flipkd.load(copy)
        assert "\n" not in str(err.value) and "flipkd.json" in str(err.value)


def test_a_format_1_export_loads_its_rep_threshold_as_a_cosine(exported, tmp_path):
    """Format 1 wrote the rep threshold as (cos + 1) / 2; it is read back as the cosine."""
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy, ignore=shutil.ignore_patterns("merged"))
    spec = _spec(copy)
    old = {**spec, "format_version": 1, "thresholds": {"gen": 0.5, "rep": 0.7}}
    (copy / "flipkd.json").write_text(json.dumps(old))
    loaded = flipkd.load(copy, merge=False, verify_base=False)
    assert loaded.threshold == {"gen": 0.5, "rep": pytest.approx(0.4)}
    assert loaded.spec["format_version"] == 4


def test_a_format_2_plain_prompt_export_keeps_the_space_before_its_label(exported, tmp_path):
    """Formats 1-2 put a space before every plain prompt's label word and did not record it;
    such an export reads back with that space, whatever its language's default now is."""
    from flipkd.export.spec import read_spec

    spec = _spec(exported)
    prompt = {k: v for k, v in spec["prompt"].items() if k not in ("answer_suffix", "label_prefix")}
    plain = {**prompt, "language": "zh", "use_chat_template": False, "chat_template": None}
    old = {**spec, "format_version": 2, "prompt": plain}
    (tmp_path / "flipkd.json").write_text(json.dumps(old))
    read = read_spec(tmp_path / "flipkd.json")
    assert (read.prompt.answer_suffix, read.prompt.label_prefix) == ("\nAnswer:", " ")
    assert read.format_version == 4
    chat = {**spec, "format_version": 2, "prompt": prompt}  # a chat prompt has no cue to keep
    (tmp_path / "flipkd.json").write_text(json.dumps(chat))
    assert read_spec(tmp_path / "flipkd.json").prompt.label_prefix is None


def test_eval_scores_a_student_run_as_the_matcher_does(run):
    """``flipkd eval``'s scorer for student runs (export/scoring.py) loads the run once."""
    from types import SimpleNamespace

    from flipkd.evaluation.evaluator import _scorer

    pairs = [SimpleNamespace(text_a=a, text_b=b) for a, b in PAIRS]
    matcher = flipkd.load(run)
    scorer = _scorer("student")
    gen = scorer(run, pairs, benchmark="mqp", mode="gen")
    np.testing.assert_allclose(gen, matcher.score_pairs(PAIRS, "gen"), atol=1e-6, rtol=0)
    rep = scorer(run, pairs, benchmark="mqp", mode="rep")
    np.testing.assert_allclose(rep, matcher.cosine_pairs(PAIRS), atol=1e-6, rtol=0)


def test_export_run_refuses_a_file_as_out(run, tmp_path):
    """The Python API, like the CLI: a file where the export directory goes is a FlipkdError."""
    target = tmp_path / "model.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(FlipkdError, match="is a file, not a directory"):
        export_run(run, target)
    assert target.read_bytes() == b"keep me"


def test_bf16_inference_casts_every_weight_and_stays_close_to_float32(matcher, exported):
    """flipkd.load(precision=...): the whole student runs in bf16 (no per-call weight casts);
    outputs keep their documented dtypes and ranges and stay near the float32 scores."""
    low = flipkd.load(exported, precision="bfloat16")
    assert low.precision == "bfloat16" and matcher.precision == "float32"
    assert {p.dtype for p in low.student.model.parameters()} == {torch.bfloat16}
    assert "precision='bfloat16'" in repr(low)
    gen, cos = low.score_pairs(PAIRS, "gen"), low.score_pairs(PAIRS, "rep")
    emb = low.encode(TEXTS)
    assert gen.dtype == np.float32 and emb.dtype == np.float32
    assert ((gen >= 0) & (gen <= 1)).all() and ((cos >= -1) & (cos <= 1)).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(gen, matcher.score_pairs(PAIRS, "gen"), atol=0.05)
    np.testing.assert_allclose(cos, matcher.score_pairs(PAIRS, "rep"), atol=0.05)
    assert not np.array_equal(gen, matcher.score_pairs(PAIRS, "gen"))  # it really ran in bf16
    # the serve loader passes it through; a module:function loader keeps its own
    assert serve_load(exported, precision="bfloat16").precision == "bfloat16"
    with pytest.raises(ModelError, match="--precision bfloat16 is for flipkd's own loader"):
        serve_load(exported, loader="tests.nowhere:load", precision="bfloat16")
    with pytest.raises(FlipkdError, match="precision must be one of auto, float32, bfloat16"):
        flipkd.load(exported, precision="float16")


@pytest.mark.parametrize(("device_bf16", "want"), [(True, "bfloat16"), (False, "float32")])
def test_auto_inference_precision_asks_the_hardware(device_bf16, want, monkeypatch):
    from flipkd.student import precision

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: device_bf16)
    assert precision.resolve_inference_precision("auto") == want
    assert precision.resolve_inference_precision("float32") == "float32"


def test_precision_agreement_benchmark_reports_both_modes(exported):
    """benchmarks/precision_agreement.py: ROC-AUC in each precision, score differences and
    decisions flipped at the export's own thresholds."""
    from conftest import benchmark_script

    bench = benchmark_script("precision_agreement")
    report = bench.compare(str(exported), PAIRS, np.array([1, 0, 1, 0]))
    assert set(report) == {"gen", "rep"}
    for mode, m in report.items():
        assert set(m["roc_auc"]) == {"float32", "bfloat16"}
        assert 0 < m["max_abs_difference"] < 0.05 and 0 <= m["decisions_flipped"] <= len(PAIRS)
        assert m["threshold"] == pytest.approx(flipkd.load(exported).threshold[mode])
