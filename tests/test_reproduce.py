"""The ablation ladder on the tiny profile: every row, resumable, table + results.json + plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flipkd.errors import ConfigError
from flipkd.provenance import commits_line
from flipkd.reproduce import ROWS, run_ladder
from flipkd.reproduce import ladder as ladder_mod
from flipkd.reproduce.report import write_report
from tiny_run import write_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp("bench"), 96, 64, 16)


def test_tiny_ladder_runs_every_row_and_resumes(bench, tiny_llama_dir, tmp_path, monkeypatch):
    root, teacher = bench
    overrides = [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"]
    out = tmp_path / "ladder"  # runs and report in one folder here
    results = run_ladder(
        str(root), "tiny", seeds=1, out_dir=out, overrides=overrides, progress=False
    )
    assert [r["row"] for r in results] == list(ROWS)
    doc = write_report(results, benchmark=str(root), profile="tiny", out_dir=out, seeds=1,
                       overrides=overrides, command=["flipkd", "reproduce"])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in saved["rows"]] == list(ROWS)
    f1 = saved["rows"][0]["metrics"]["f1"]
    assert {"mean", "ci_low", "ci_high", "seeds"} <= set(f1)
    assert f1["ci_low"] <= f1["mean"] <= f1["ci_high"]
    assert {"command", "git_commit", "versions"} <= set(saved)
    # the CPU and the kernels' instruction set: another CPU can round a run differently
    import torch

    assert saved["machine"]["cpu"] and saved["machine"]["cpu"] != "unknown"
    assert saved["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    # every run keeps the commit it computed at, counted in the report
    assert saved["run_commits"] == {saved["git_commit"]: len(ROWS)}
    assert commits_line(saved["run_commits"]) in (out / "table.md").read_text()
    assert "| fip |" in (out / "table.md").read_text()
    # which model each seed's teacher kept (the tiny profile does not fine-tune it)
    assert saved["teacher_runs"]["0"]["kept"] == "zero-shot"
    assert "Teacher: seed 0: not fine-tuned (zero-shot)." in (out / "table.md").read_text()
    assert len(doc["plots"]) == 3 and all((out / p).is_file() for p in doc["plots"])
    weak = next(r for r in saved["rows"] if r["name"] == "fip-weak-teacher")
    assert "teacher_metrics" in weak
    # the label and the A-tap mixed, a third column; a teacher's one score is its own mix
    assert " | mix AUC | train s |" in (out / "table.md").read_text()
    for row in saved["rows"]:
        mix = row["metrics"]["mix_roc_auc"]
        assert mix["ci_low"] <= mix["mean"] <= mix["ci_high"]
    teacher_row = next(r for r in saved["rows"] if r["name"] == "teacher")["metrics"]
    assert teacher_row["mix_roc_auc"]["mean"] == teacher_row["roc_auc"]["mean"]
    # a run written before the mix mode existed is read back with it, computed from its scores
    for done in out.glob("runs/*/result.json"):
        old = json.loads(done.read_text())
        for split in old["scores"].values():
            split.pop("mix", None)
        old["metrics"] = {k: v for k, v in old["metrics"].items() if not k.startswith("mix_")}
        done.write_text(json.dumps(old))
    # a second call reads every finished run back instead of running it again
    monkeypatch.setattr(ladder_mod, "ROW_RUNNERS", {k: _explode for k in ladder_mod.ROW_RUNNERS})
    again = run_ladder(str(root), "tiny", seeds=1, out_dir=out, overrides=overrides, progress=False)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in results]
    assert all(r["read_back"] for r in again) and not any(r.get("read_back") for r in results)
    import time

    redone = write_report(again, benchmark=str(root), profile="tiny", out_dir=out, seeds=1,
                          overrides=overrides, started=time.perf_counter() - 90)  # fmt: skip
    assert redone["timing"]["invocation_wall_seconds"] >= 90  # taken after the bootstrap
    assert "Wall time of this command: 1." in (out / "table.md").read_text()  # 1.5+ min
    assert redone["timing"]["runs_read_back"] == len(ROWS)
    assert redone["timing"]["runs_computed"] == 0
    assert "runs read back" in (out / "table.md").read_text()
    sft = next(r for r in redone["rows"] if r["name"] == "sft")
    assert len(sft["train_seconds_seeds"]) == 1 and sft["train_seconds_seeds"][0] > 0
    assert set(sft["dev_metrics"]) >= {"roc_auc", "rep_roc_auc"}
    verdicts = {(c["claim"], c["mode"]): c["verdict"] for c in redone["claims"]}
    # 6 pairwise claims and the ablation order in each of gen, rep and mix, one cross-mode claim
    assert len(verdicts) == 22 and set(verdicts.values()) <= {"held", "not held", "mixed"}
    assert ("fip's mix > sft's label", "mix vs gen") in verdicts
    assert ("fip > sft-kd (the teacher's probability as sft's label target)", "gen") in verdicts
    assert "## The paper's claims at this scale" in (out / "table.md").read_text()


def _explode(*args, **kwargs):
    raise AssertionError("a finished row ran again")


def test_unknown_profile_and_row_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile"):
        run_ladder("mqp", "huge", seeds=1, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="rows are"):
        run_ladder("mqp", "tiny", seeds=1, out_dir=tmp_path, rows=["nope"])


def _row(name, gen_seeds, rep_seeds, ci=None, teacher=None):
    def entry(seeds):
        out = {"mean": sum(seeds) / len(seeds), "seeds": seeds}
        if ci is not None:
            out["ci_low"], out["ci_high"] = ci
        return out

    row = {"name": name, "metrics": {"roc_auc": entry(gen_seeds), "rep_spearman": entry(rep_seeds)}}
    if teacher is not None:
        row["teacher_metrics"] = {"roc_auc": teacher, "rep_spearman": teacher}
    return row


def test_claims_verdicts_are_seed_paired_and_order_is_checked():
    from flipkd.reproduce.claims import check_claims, claims_markdown

    rows = [
        _row("teacher", [0.9, 0.9], [70, 70], ci=(0.85, 0.95)),
        _row("sft", [0.6, 0.7], [30, 20], ci=(0.5, 0.8)),
        _row("fip", [0.7, 0.6], [40, 45], ci=(0.55, 0.75)),
        _row("fip-no-mcl", [0.5, 0.5], [20, 25]),  # drop 20
        _row("fip-no-dist", [0.5, 0.5], [30, 35]),  # drop 10
        _row("fip-no-filter", [0.5, 0.5], [38, 43]),  # drop 2
        _row("fip-weak-teacher", [0.65, 0.75], [10, 10], teacher=0.55),
    ]
    claims = {(c["claim"], c["mode"]): c for c in check_claims(rows)}
    assert claims[("fip > sft", "gen")]["verdict"] == "mixed"  # +0.1, -0.1
    assert claims[("fip > sft", "rep")]["verdict"] == "held"
    assert claims[("fip > sft", "rep")]["mean_difference"] == pytest.approx(17.5)
    assert claims[("fip ≥ teacher", "gen")]["verdict"] == "not held"
    assert claims[("fip ≥ teacher", "gen")]["clear"] is True  # 0.75 < 0.85
    assert claims[("fip > sft", "gen")]["clear"] is False
    order = claims[("removing MCL hurts most, L_dist next, the filter least", "rep")]
    assert order["verdict"] == "held" and order["drops"]["fip-no-mcl"] == pytest.approx(20)
    weak = claims[("a weak teacher still helps (fip-weak-teacher > sft)", "gen")]
    assert weak["verdict"] == "held" and weak["weak_teacher_below_sft"] is True
    assert ("MCL ≥ ArcCSE", "gen") not in claims  # its row is missing: no claim, no guess
    assert not any(name.startswith("fip > sft-kd") for name, _ in claims)  # opt-in row absent
    with_kd = check_claims([*rows, _row("sft-kd", [0.8, 0.8], [20, 20])])
    kd = {c["mode"]: c for c in with_kd if c["claim"].startswith("fip > sft-kd")}
    assert kd["gen"]["verdict"] == "not held" and kd["rep"]["verdict"] == "held"
    text = claims_markdown(check_claims(rows))
    assert "| fip > sft | rep (rep_spearman) | fip 42.5 vs sft 25.0 | held | 2/2 |" in text


def test_finished_only_reports_what_is_done_and_runs_nothing(bench, tiny_llama_dir, tmp_path):
    root, teacher = bench
    overrides = [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"]
    out = tmp_path / "partial"
    run_ladder(str(root), "tiny", seeds=1, out_dir=out, overrides=overrides, progress=False,
               rows=["teacher", "sft"])  # fmt: skip
    with pytest.raises(ConfigError, match="no finished runs"):
        run_ladder(str(root), "tiny", seeds=1, out_dir=tmp_path / "none", finished_only=True)
    done = run_ladder(str(root), "tiny", seeds=2, out_dir=out, overrides=overrides,
                      finished_only=True)  # fmt: skip
    assert sorted(r["row"] for r in done) == ["sft", "teacher"]
    doc = write_report(done, benchmark=str(root), profile="tiny", out_dir=out, seeds=2,
                       overrides=overrides)  # fmt: skip
    assert doc["timing"]["runs_computed"] == 0
    assert "**Partial**" in (out / "table.md").read_text()
    assert set(doc["teacher_runs"]) == {"0"}  # seed 1's teacher never ran


def test_the_teacher_line_says_when_a_fine_tuned_teacher_kept_its_base():
    from flipkd.reproduce.report import _teacher_line

    kept = {"kept": "checkpoint", "step": 125, "steps": 125, "metric": "AP", "base_value": 0.41,
            "checkpoint_value": 0.478, "dev_pairs": 1000}  # fmt: skip
    base = {**kept, "kept": "base", "step": 0, "base_value": 0.559, "checkpoint_value": 0.527,
            "dev_pairs": 100}  # fmt: skip
    line = _teacher_line({0: kept, 1: base})
    assert line == (
        "Teacher: seed 0: fine-tuned, step 125 of 125 kept (dev AP 0.410 untrained, 0.478 best "
        "checkpoint, 1,000 pairs); seed 1: fine-tuned, but **the untrained base model kept** "
        "(dev AP 0.559 untrained, 0.527 best checkpoint, 100 pairs).\n"
    )
    assert _teacher_line({}) == ""


def test_the_mix_mode_is_scaled_on_dev_and_scored_like_the_others():
    from flipkd.mixing import mix_scores
    from flipkd.reproduce.scoring import dev_metrics, evaluate_scores, with_mix

    rng = np.random.default_rng(0)

    def split(n: int) -> dict:
        y = rng.integers(0, 2, n)
        gen = 1 / (1 + np.exp(-(y + rng.normal(0, 1.2, n))))  # two noisy views of the label
        rep = 0.4 * y + rng.normal(0, 0.3, n)
        return {"labels": y.tolist(), "gen": gen.tolist(), "rep": rep.tolist()}

    scores = with_mix({"dev": split(400), "test": split(400)})
    dev, test = scores["dev"], scores["test"]
    reference = (dev["rep"], dev["gen"])
    # test pairs on dev's scales: a pair scored alone keeps its score
    alone = mix_scores(test["rep"][:1], test["gen"][:1], 0.5, reference)
    assert alone == pytest.approx(test["mix"][:1])
    metrics, on_dev = evaluate_scores(scores), dev_metrics(scores)
    assert {"mix_roc_auc", "mix_threshold", "mix_spearman"} <= set(metrics)
    assert metrics["mix_roc_auc"] > max(metrics["roc_auc"], metrics["rep_roc_auc"])
    assert on_dev["mix_roc_auc"] > max(on_dev["roc_auc"], on_dev["rep_roc_auc"])
    assert with_mix({"dev": {**dev, "mix": [0.0] * 400}})["dev"]["mix"] == [0.0] * 400  # kept
    same = {"labels": dev["labels"], "gen": dev["rep"], "rep": dev["rep"]}  # a teacher's cosine
    assert with_mix({"dev": same})["dev"]["mix"] == dev["rep"]
    assert with_mix({"dev": dev}, weight=1.0)["dev"]["mix"] == dev["mix"]  # kept, already there
    assert (
        with_mix({"dev": {k: dev[k] for k in ("labels", "gen", "rep")}}, 1.0)["dev"]["mix"]
        == dev["gen"]
    )


def test_table_formats_each_metric_by_its_scale():
    from flipkd.reproduce.aggregate import markdown_table

    metrics = {
        "f1": {"mean": 0.5, "ci_low": 0.41234, "ci_high": 0.6},
        "spearman": {"mean": -0.098, "ci_low": -12.008, "ci_high": 12.309},  # ×100, near zero
        "rep_spearman": {"mean": 37.24, "ci_low": 26.0, "ci_high": 47.9},
    }
    table = markdown_table([{"name": "fip", "metrics": metrics, "train_seconds": 12.4}])
    row = table.splitlines()[2]
    assert "| 0.500 [0.412, 0.600] |" in row
    assert "| -0.1 [-12.0, 12.3] |" in row  # not "-0.098 [-12.008, 12.309]"
    assert "| 37.2 [26.0, 47.9] |" in row and row.endswith("| 12 |")


@pytest.mark.parametrize("chunk", [2_000_000, 500])
def test_bootstrap_equals_the_one_resample_at_a_time_loop(monkeypatch, chunk):
    """All resamples at once (in chunks) give the loop's interval: same draws, same values."""
    import numpy as np

    from flipkd.evaluation import metrics, pair_metric
    from flipkd.reproduce import aggregate

    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK", chunk)  # 500: 12 resamples per chunk
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40).tolist()
    runs = [
        {
            "scores": {
                "test": {"gen": np.round(rng.normal(size=40), 1).tolist(), "labels": labels}
            },
            "metrics": {"threshold": 0.1 * k},
        }
        for k in range(3)
    ]
    for metric in ("f1", "accuracy", "ap", "roc_auc", "spearman"):
        loop_rng, values = np.random.default_rng(7), []
        fns = [pair_metric(metric, r["metrics"]["threshold"]) for r in runs]
        for _ in range(100):
            idx = loop_rng.integers(0, 40, 40)
            values.append(
                np.nanmean(
                    [
                        fn(np.array(r["scores"]["test"]["gen"])[idx], np.array(labels)[idx])
                        for fn, r in zip(fns, runs, strict=True)
                    ]
                )
            )
        expected = np.nanpercentile(values, [2.5, 97.5])
        got = aggregate._bootstrap(runs, "gen", metric, 100, 7)
        np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=metric)


@pytest.mark.parametrize("benchmark", ["atec", "bq"])
def test_the_chinese_cpu_ladders_take_the_dev_chosen_student_and_the_mqp_recipe(benchmark):
    """results/dev/atec/atec-student/: Qwen2.5-0.5B (real Chinese vocabulary) over Gemma-3-270M;
    everything else as the profile's MQP-chosen recipe, the plain prompt in Chinese."""
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES, TOP8
    from flipkd.student.prompt import resolve_prompt

    cfg = build_config(PROFILES["cpu"], benchmark, "fip", 0, [])
    mqp = build_config(PROFILES["cpu"], "mqp", "fip", 0, [])
    assert (cfg.student.model, cfg.teacher.model) == ("qwen2.5-0.5b", "e5-small-multilingual")
    assert cfg.student.lora.layers == TOP8 and cfg.student.tap == mqp.student.tap
    assert cfg.train.clip_scope == "term-apart" and cfg.train.lr == mqp.train.lr
    assert not cfg.student.prompt.use_chat_template
    assert resolve_prompt(cfg.student.prompt, benchmark).answer_suffix.endswith("答案：")


def test_chinese_cpu_profiles_train_300_steps_from_one_teacher_on_more_pairs():
    """results/dev/atec/atec-pairs/: ATEC's student sees 4,000 pairs; atec-rep-levers/: its
    teacher fine-tunes once on the whole train split (shared by the seeds) and the student
    trains 300 steps. BQ (bq-gen-uptake/): one teacher on a seeded 20,000 of its train pairs,
    the student on the profile's 1,000 for 300 steps."""
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    atec, bq = (build_config(PROFILES["cpu"], b, "fip", 2, []) for b in ("atec", "bq"))
    assert (atec.data.max_train_pairs, bq.data.max_train_pairs) == (4000, 1000)
    # dev is the 1,000-pair sample each benchmark's dev sweeps chose the defaults on
    assert (atec.data.max_dev_pairs, bq.data.max_dev_pairs) == (1000, 1000)
    assert (atec.train.steps, bq.train.steps) == (300, 300)
    assert (atec.teacher.max_train_pairs, bq.teacher.max_train_pairs) == (None, 20000)
    for cfg in (atec, bq):  # one teacher for every seed, with the speed options
        assert cfg.teacher.seed == 0 and cfg.train.seed == 2 and cfg.teacher.lr == 5e-5
        assert cfg.teacher.freeze_embeddings and cfg.teacher.group_by_length
    # MQP keeps the profile's per-seed teacher and 150 steps
    mqp = build_config(PROFILES["cpu"], "mqp", "fip", 2, [])
    assert (mqp.teacher.seed, mqp.teacher.max_train_pairs, mqp.train.steps) == (2, "data", 150)
    # the sft row trains as long as fip; the gpu profile keeps its own 450 steps
    for b in ("atec", "bq"):
        assert build_config(PROFILES["cpu"], b, "sft", 0, []).train.steps == 300
        gpu = build_config(PROFILES["gpu"], b, "fip", 0, [])
        assert gpu.train.steps == 450 and gpu.teacher.seed == 0
    # a user's override still wins over the benchmark's
    small = build_config(
        PROFILES["cpu"], "atec", "fip", 0, ["data.max_train_pairs=500", "teacher.seed=3"]
    )
    assert (small.data.max_train_pairs, small.teacher.seed) == (500, 3)


def test_a_fixed_teacher_seed_shares_one_teacher_trained_on_its_own_sample(
    bench, tiny_llama_dir, tmp_path
):
    """teacher.seed fixed and teacher.max_train_pairs null: the ladder fine-tunes one teacher,
    on the whole train split, for every seed; the students keep their 32-pair sample."""
    root, teacher = bench
    overrides = [
        f"student.model={tiny_llama_dir}", f"teacher.model={teacher}", "teacher.seed=0",
        "teacher.finetune=true", "teacher.max_train_pairs=null", "teacher.batch_size=16",
    ]  # fmt: skip
    out = tmp_path / "shared"
    results = run_ladder(str(root), "tiny", seeds=2, out_dir=out, overrides=overrides,
                         progress=False, rows=["teacher", "sft"])  # fmt: skip
    order = [("teacher", 0), ("sft", 0), ("teacher", 1), ("sft", 1)]
    assert [(r["row"], r["seed"]) for r in results] == order
    (shared,) = (out / "teachers").iterdir()
    assert shared.name.startswith("s0-")
    metrics = json.loads((shared / "metrics.json").read_text())
    assert metrics["train_pairs"] == 64  # the whole train split, not the students' 32
    sft = [r for r in results if r["row"] == "sft"]
    assert sft[0]["config_hash"] != sft[1]["config_hash"]
    # both seeds' teacher rows score the same teacher
    teachers = [r["scores"]["test"] for r in results if r["row"] == "teacher"]
    assert teachers[0] == teachers[1]
    # a third seed reuses it: nothing trains the teacher again
    stamp = (shared / "run.json").stat().st_mtime_ns
    run_ladder(str(root), "tiny", seeds=3, out_dir=out, overrides=overrides, progress=False,
               rows=["teacher"], only_seeds=[2])  # fmt: skip
    assert (shared / "run.json").stat().st_mtime_ns == stamp
    assert len(list((out / "teachers").iterdir())) == 1


def test_sft_kd_is_sft_with_the_teacher_in_the_label_target_and_opt_in():
    """sft-kd: sft's terms (no representation terms) and L_gen's target half the teacher's
    probability, whatever the profile says; no profile runs it unless asked."""
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    for name in ("demo", "cpu", "gpu"):
        kd = build_config(PROFILES[name], "mqp", "sft-kd", 0, [])
        sft = build_config(PROFILES[name], "mqp", "sft", 0, [])
        assert (kd.loss.contrastive, kd.loss.dist, kd.loss.gen_teacher) == ("none", "none", 0.5)
        assert sft.loss.gen_teacher == 0.0
        assert kd.model_dump(exclude={"loss", "name"}) == sft.model_dump(exclude={"loss", "name"})
        assert "sft-kd" not in PROFILES[name].rows


@pytest.mark.parametrize("pays", [True, False])
def test_the_demo_trains_in_bf16_only_where_the_cpu_multiplies_bf16(pays, monkeypatch):
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES
    from flipkd.trainer import precision

    monkeypatch.setattr(precision, "cpu_bf16_pays", lambda: pays)
    demo = build_config(PROFILES["demo"], "mqp", "fip", 0, [])
    assert demo.train.mixed_precision == ("bf16" if pays else "auto")
    assert precision.prefix_dtype(demo.train) == ("bfloat16" if pays else "float32")
    # the cpu profile's committed ladders ran in float32 and stay so; an override wins
    assert build_config(PROFILES["cpu"], "mqp", "fip", 0, []).train.mixed_precision == "auto"
    forced = build_config(PROFILES["demo"], "mqp", "fip", 0, ["train.mixed_precision=no"])
    assert forced.train.mixed_precision == "no"


@pytest.mark.parametrize("benchmark", ["mqp", "atec"])
def test_the_gpu_profile_is_the_cpu_recipe_at_the_dev_chosen_capacity(benchmark):
    """results/dev/mqp/mqp-capacity/: every layer at r=64 for 450 steps; all else as cpu, so
    a gpu ladder row is the dev sweep's run with its train.threads left to the machine."""
    from flipkd.config import config_hash
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    gpu = build_config(PROFILES["gpu"], benchmark, "fip", 1, [])
    assert gpu.student.lora.layers is None and gpu.student.lora.rank == 64
    assert (gpu.student.lora.alpha, gpu.train.steps, gpu.train.threads) == (128, 450, None)
    swept = ["student.lora.layers=null", "student.lora.rank=64", "student.lora.alpha=128",
             "train.steps=450", "train.threads=null"]  # fmt: skip
    cpu = build_config(PROFILES["cpu"], benchmark, "fip", 1, swept)
    assert config_hash(gpu) == config_hash(cpu)
    assert PROFILES["gpu"].rows == PROFILES["cpu"].rows


def test_one_seed_of_a_ladder_runs_alone_as_a_part(bench, tiny_llama_dir, tmp_path):
    """--seed: a part of the ladder (one seed) runs by itself; the others stay untouched."""
    root, teacher = bench
    overrides = [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"]
    out = tmp_path / "parts"
    with pytest.raises(ConfigError, match=r"seeds \[2\] are outside 0..1"):
        run_ladder(str(root), "tiny", seeds=2, out_dir=out, only_seeds=[2], rows=["sft"])
    part = run_ladder(str(root), "tiny", seeds=2, out_dir=out, overrides=overrides,
                      progress=False, rows=["teacher", "sft"], only_seeds=[1])  # fmt: skip
    assert [(r["row"], r["seed"]) for r in part] == [("teacher", 1), ("sft", 1)]
    assert [p.name[:2] for p in (out / "teachers").iterdir()] == ["s1"]
    done = run_ladder(str(root), "tiny", seeds=2, out_dir=out, overrides=overrides,
                      rows=["teacher", "sft"], finished_only=True)  # fmt: skip
    assert sorted((r["row"], r["seed"]) for r in done) == [("sft", 1), ("teacher", 1)]
    with pytest.raises(ConfigError, match="no finished runs"):  # seed 0 never ran
        run_ladder(str(root), "tiny", seeds=2, out_dir=out, overrides=overrides,
                   rows=["sft"], finished_only=True, only_seeds=[0])  # fmt: skip


def test_a_part_of_a_ladder_does_not_overwrite_the_profile_table(tmp_path):
    """Without --out, only the whole ladder (every row, every seed, no overrides) writes to
    results/<bench>/<profile>; a part goes beside its runs."""
    from pathlib import Path

    from flipkd.cli.reproduce_cmd import report_dir
    from flipkd.reproduce import PROFILES

    work = tmp_path / "w"
    whole = {"rows": None, "only_seeds": None, "overrides": None}
    assert report_dir("atec", "cpu", work, **whole) == Path("results/atec/cpu")
    every_row = {**whole, "rows": list(PROFILES["cpu"].rows)}
    assert report_dir("atec", "cpu", work, **every_row) == Path("results/atec/cpu")
    parts = [
        {**whole, "rows": ["fip"]},
        {**whole, "only_seeds": [1]},
        {**whole, "overrides": ["data.max_test_pairs=500"]},
        {**whole, "rows": ["teacher"], "only_seeds": [0]},
    ]
    for part in parts:
        assert report_dir("atec", "cpu", work, **part) == work / "report", part
    # an unknown profile is named by run_ladder; here it only must not crash
    assert report_dir("atec", "nope", work, **{**whole, "rows": ["fip"]}) == work / "report"


def test_the_zero_shot_label_is_scored_once_per_ladder(
    bench, tiny_llama_dir, tmp_path, monkeypatch
):
    """Untrained adapters add nothing to the label (B = 0), so its scores are the same for
    every seed: a second seed takes the first's and scores only the seed-drawn A-tap."""
    import flipkd.student as student_mod

    root, teacher = bench
    overrides = [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"]
    kw = {"seeds": 2, "overrides": overrides, "progress": False, "rows": ["zero-shot"]}
    find = ladder_mod._zero_shot_gen
    monkeypatch.setattr(ladder_mod, "_zero_shot_gen", lambda *a: None)  # score every seed
    apart = run_ladder(str(root), "tiny", out_dir=tmp_path / "apart", **kw)
    monkeypatch.setattr(ladder_mod, "_zero_shot_gen", find)
    for split in ("dev", "test"):  # the premise, checked
        assert apart[0]["scores"][split]["gen"] == apart[1]["scores"][split]["gen"]
    assert apart[0]["scores"]["test"]["rep"] != apart[1]["scores"]["test"]["rep"]
    calls = []
    score_pairs = student_mod.score_pairs

    def counting(student, pairs, mode="gen", **kwargs):
        calls.append(mode)
        return score_pairs(student, pairs, mode=mode, **kwargs)

    monkeypatch.setattr(student_mod, "score_pairs", counting)
    once = run_ladder(str(root), "tiny", out_dir=tmp_path / "once", **kw)
    assert calls.count("gen") == 2  # dev and test, for seed 0 only
    assert "gen_scores_from" not in once[0]
    assert once[1]["gen_scores_from"].endswith(once[0]["config_hash"])
    assert [r["metrics"] for r in once] == [r["metrics"] for r in apart]
    # an unreadable earlier run is not fatal: the label is scored again (a warning)
    from flipkd.reproduce.profiles import PROFILES

    seed1 = ladder_mod.build_config(PROFILES["tiny"], str(root), "zero-shot", 1, overrides)
    runs = tmp_path / "once" / "runs"
    assert ladder_mod._zero_shot_gen(seed1, runs) is not None
    (runs / once[1]["gen_scores_from"].split("/")[-1] / "result.json").write_text("{")
    assert ladder_mod._zero_shot_gen(seed1, runs) is None
