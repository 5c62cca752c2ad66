"""Dev sweeps on the tiny profile: dev only, resumable by config hash, table with paired deltas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flipkd.errors import ConfigError, FlipkdError
from flipkd.reproduce import sweep as sweep_mod
from flipkd.reproduce.sweep import SweepSpec, load_spec, run_sweep
from flipkd.reproduce.sweep_report import paired_difference, summarise, write_sweep_report
from tiny_run import write_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_benchmark(tmp_path_factory.mktemp("sweep-bench"), 80, 48, 16)


def test_sweep_scores_dev_only_resumes_and_reports(bench, tiny_llama_dir, tmp_path, monkeypatch):
    root, teacher = bench
    spec = SweepSpec(
        name="t", benchmark=str(root), profile="tiny", rows=["teacher", "sft", "fip"], seeds=1,
        overrides=[
            f"student.model={tiny_llama_dir}", f"teacher.model={teacher}", "train.diagnose_every=2",
            "train.eval_every=2",
        ],
        variants={"base": [], "lr": ["train.lr=1e-2"]}, row_baseline="sft",
    )  # fmt: skip
    records = run_sweep(spec, tmp_path / "work", progress=False)
    assert [(r["variant"], r["row"]) for r in records] == [
        ("base", "teacher"),
        ("base", "sft"),
        ("base", "fip"),
        ("lr", "teacher"),
        ("lr", "sft"),
        ("lr", "fip"),
    ]
    assert all(set(r["scores"]) == {"dev"} for r in records)  # test is never scored
    assert all({"roc_auc", "rep_roc_auc", "gen_label_accuracy"} <= set(r["dev"]) for r in records)
    teacher = records[0]  # the teacher's cosine on the same dev pairs, nothing trained
    assert teacher["scores"]["dev"]["gen"] == teacher["scores"]["dev"]["rep"]
    assert teacher["scores"]["dev"]["labels"] == records[1]["scores"]["dev"]["labels"]
    assert teacher["dev"]["gen_label_accuracy"] is None and teacher["train_seconds"] == 0
    assert teacher["dev"]["roc_auc"] > 0.6  # the synthetic teacher separates the pairs
    # a second call reads everything back (nothing trains again)
    monkeypatch.setattr(sweep_mod, "_run_one", _explode)
    again = run_sweep(spec, tmp_path / "work", progress=False)
    assert all(r["read_back"] for r in again)
    assert [r["dev"] for r in again] == [r["dev"] for r in records]
    table = write_sweep_report(again, spec, tmp_path / "out", ["flipkd", "sweep"])
    text = table.read_text()
    assert "| lr | fip | 1 |" in text and "Δgen AUC vs base" in text
    assert "| base | teacher | 1 |" in text and "| – |" in text
    # which model the one teacher run kept (read back too; the tiny profile does not train it)
    assert all(r["teacher_kept"]["kept"] == "zero-shot" for r in [*records, *again])
    assert "Teachers: `s0-" in text and "(seed 0): not fine-tuned (zero-shot)." in text
    spearman = next(r for r in records if r["variant"] == "lr" and r["row"] == "fip")
    assert f"| {spearman['dev']['rep_spearman']:.1f} |" in text  # already ×100, not again
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    lr_fip = next(e for e in saved["summary"] if e["variant"] == "lr" and e["row"] == "fip")
    point, lo, hi = lr_fip["rep_auc_vs_base"][0]
    assert lo <= hi and {"git_commit", "versions"} <= set(saved)
    # each run keeps the commit it was computed at (a resumed sweep's report is written later)
    from flipkd.provenance import git_commit

    assert saved["run_commits"] == {git_commit(): 6}
    from flipkd.provenance import commits_line

    assert commits_line({git_commit(): 6}) in text
    # fip against sft inside each variant (row_baseline), never the teacher or sft itself
    assert "## Rows against `sft`" in text and "Δgen AUC vs sft [95%]" in text
    point, lo, hi = lr_fip["gen_auc_vs_row_sft"][0]
    lr_sft = next(r for r in records if r["variant"] == "lr" and r["row"] == "sft")
    assert point == pytest.approx(spearman["dev"]["roc_auc"] - lr_sft["dev"]["roc_auc"])
    assert lo <= hi and f"| lr | fip | {point:+.3f} [{lo:+.3f}, {hi:+.3f}] |" in text
    assert not any(
        "gen_auc_vs_row_sft" in e for e in saved["summary"] if e["row"] in ("teacher", "sft")
    )
    diag = (tmp_path / "out" / "diagnostics.md").read_text()
    assert "## lr / fip / seed 0" in diag and "## base / sft / seed 0" in diag
    assert "∇con A" in diag
    curves = {(c["variant"], c["row"]): c["points"] for c in saved["dev_curves"]}
    assert set(curves) == {("base", "sft"), ("base", "fip"), ("lr", "sft"), ("lr", "fip")}
    first = curves[("lr", "fip")][0]
    logged = [json.loads(x) for x in (Path(spearman["run_dir"]) / "logs" / "train.jsonl").open()]
    dev_logged = next(r for r in logged if r.get("kind") == "dev")
    assert first["step"] == dev_logged["step"] == 2
    assert first["gen_roc_auc"] == dev_logged["gen_roc_auc"]
    assert (
        f"| lr | fip | 0 | 2 | {first['gen_roc_auc']:.3f} |"
        in (tmp_path / "out" / "dev_curves.md").read_text()
    )
    # --finished-only: a variant added later trains nothing; its runs are listed, not scored
    grown = spec.model_copy(
        update={"variants": {**spec.variants, "wd": ["train.weight_decay=0.5"]}}
    )
    partial = run_sweep(grown, tmp_path / "work", progress=False, finished_only=True)
    missing = [(r["variant"], r["row"]) for r in partial if r.get("missing")]
    assert ("wd", "sft") in missing and ("wd", "fip") in missing
    assert all(r["read_back"] for r in partial if not r.get("missing"))
    wd_fip = next(r for r in partial if r.get("missing") and r["row"] == "fip")
    assert not Path(wd_fip["run_dir"]).exists()  # nothing was started
    ckpt = Path(wd_fip["run_dir"]) / "checkpoints" / "step-0000002"  # as if it had started
    ckpt.mkdir(parents=True)
    (ckpt / "COMPLETE").touch()
    partial = run_sweep(grown, tmp_path / "work", progress=False, finished_only=True)
    text = write_sweep_report(partial, grown, tmp_path / "partial", ["flipkd"]).read_text()
    assert f"## Partial: {len(missing)} of {len(partial)} runs have not finished" in text
    assert "- `wd` / fip / seed 0: at step 2 of 3 (" in text
    assert "- `wd` / sft / seed 0: not started (" in text
    assert "| wd |" not in text and "| lr | fip | 1 |" in text  # finished runs only
    saved = json.loads((tmp_path / "partial" / "results.json").read_text())
    assert len(saved["runs"]) == 6 and len(saved["missing_runs"]) == len(missing)


def test_unrecorded_training_time_is_shown_as_unknown_not_averaged(tmp_path):
    """A run whose summary predates complete training times (no ``seconds_complete``: it
    recorded a few ms when resumed at its last step) is left out of the mean, and a row with
    none known shows `–`; no summary (the teacher reference) is a real 0 s."""
    from flipkd.reproduce.sweep import train_time_known
    from flipkd.reproduce.sweep_report import _seconds_cell, _train_seconds

    old, new = tmp_path / "old", tmp_path / "new"
    for d, summary in (
        (old, {"steps": 150, "seconds": 0.0087}),
        (new, {"steps": 150, "seconds": 400.0, "seconds_complete": True}),
    ):
        d.mkdir()
        (d / "train_summary.json").write_text(json.dumps(summary))
    assert not train_time_known(old) and train_time_known(new)
    assert train_time_known(tmp_path / "teacher-run")  # nothing trained there

    def rec(seconds, known):
        return {"train_seconds": seconds, "train_seconds_known": known}

    assert _train_seconds([rec(0.0087, False), rec(400.0, True)]) == 400.0
    assert _train_seconds([rec(0.0087, False), rec(0.005, False)]) is None
    assert _train_seconds([{"train_seconds": 0.0}]) == 0.0  # records from before the flag
    assert _seconds_cell(None) == "–" and _seconds_cell(412.4) == "412"


def test_run_commits_count_each_runs_own_commit():
    from flipkd.provenance import commits_line, run_commits

    a, b = "a" * 40, "b" * 40 + "-dirty"
    counts = run_commits([{"git_commit": a}, {"git_commit": b}, {"git_commit": a}, {}])
    assert counts == {a: 2, b: 1, "unknown": 1}
    line = commits_line(counts)
    assert line.startswith("Runs computed at: `aaaaaaa` (2), `bbbbbbb-dirty` (1), `unknown` (1)")
    assert "recorded before runs kept their commit" in line


def test_a_run_copied_from_another_sweep_takes_this_sweeps_variant_name(tmp_path):
    """Runs are matched by config hash: one finished under another sweep's variant name
    (its directory copied under --work) is reported under this sweep's name, or the table
    would lose the variant and its paired differences."""
    done = tmp_path / "runs" / "two-tap" / "fip-s0-abc" / "sweep_result.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"variant": "top8", "row": "fip", "seed": 0, "overrides": []}))
    record = sweep_mod._read_back(done, "two-tap", ["x=1"])
    assert record["variant"] == "two-tap" and record["overrides"] == ["x=1"]
    assert record["read_from_variant"] == "top8" and record["read_back"]
    assert record["run_dir"] == str(done.parent)
    same = sweep_mod._read_back(done, "top8", [])
    assert same["variant"] == "top8" and "read_from_variant" not in same
    # a run finished before the mix mode existed: its mix is computed from its dev scores
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60).tolist()
    gen = (0.3 + 0.4 * np.array(y) * rng.uniform(size=60)).tolist()
    rep = (np.array(y) * 0.5 + rng.normal(0, 0.3, 60)).tolist()
    old = {"variant": "top8", "row": "fip", "seed": 0, "overrides": [],
           "scores": {"dev": {"labels": y, "gen": gen, "rep": rep}},
           "dev": {"roc_auc": 0.1, "gen_label_accuracy": 0.5}}  # fmt: skip
    done.write_text(json.dumps(old))
    mixed = sweep_mod._read_back(done, "top8", [])
    assert len(mixed["scores"]["dev"]["mix"]) == 60 and 0.5 < mixed["dev"]["mix_roc_auc"] <= 1
    assert mixed["dev"]["roc_auc"] != 0.1  # recomputed from the scores, not the old record
    done.write_text('{"variant": "top8", "row"')  # cut short: one line naming the file
    with pytest.raises(FlipkdError) as err:
        sweep_mod._read_back(done, "two-tap", [])
    assert str(done) in str(err.value) and "\n" not in str(err.value)


def _explode(*args, **kwargs):
    raise AssertionError("a finished sweep run trained again")


def test_paired_difference_is_zero_for_identical_runs_and_signed():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = y + rng.normal(0, 0.5, 200)
    bad = rng.normal(0, 1, 200)

    def run(s):
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(y, s)
        return {"scores": {"dev": {"labels": y.tolist(), "gen": s.tolist(), "rep": s.tolist()}},
                "dev": {"roc_auc": auc, "rep_roc_auc": auc}}  # fmt: skip

    assert paired_difference(run(good), run(good), "gen") == (0.0, 0.0, 0.0)
    point, lo, hi = paired_difference(run(good), run(bad), "rep")
    assert point > 0.2 and 0 < lo < point < hi


def _noisy_record(rng, y, variant: str, row: str, seed: int, noise: float) -> dict:
    """A sweep record whose dev scores are the labels plus Gaussian noise (both modes)."""
    from sklearn.metrics import roc_auc_score

    s = (y + rng.normal(0, noise, len(y))).tolist()
    auc = roc_auc_score(y, s)
    dev = {"roc_auc": auc, "rep_roc_auc": auc, "gen_label_accuracy": 0.5, "rep_spearman": 1.0}
    return {"variant": variant, "row": row, "seed": seed, "overrides": [], "dev": dev,
            "scores": {"dev": {"labels": y.tolist(), "gen": s, "rep": s}},
            "train_seconds": 1.0, "eval_seconds": 1.0}  # fmt: skip


def test_rows_against_a_baseline_row_are_paired_per_seed():
    """Two seeds: each seed's interval is listed, and the count of those above 0."""
    from flipkd.reproduce.sweep_report import markdown, summarise

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    records = [_noisy_record(rng, y, "v", row, k, noise)
               for row, noise in (("sft", 3.0), ("fip", 0.3)) for k in (0, 1)]  # fmt: skip
    entries = summarise(records, "sft")
    fip = next(e for e in entries if e["row"] == "fip")
    diffs = fip["gen_auc_vs_row_sft"]
    assert len(diffs) == 2 and all(lo > 0 for _, lo, _ in diffs)
    spec = SweepSpec(name="x", rows=["sft", "fip"], variants={"v": []}, row_baseline="sft")
    text = markdown(entries, spec, 300, ["flipkd", "sweep"])
    assert "(2/2 above 0: " in text and text.count("| v | fip |") == 2  # main and row tables
    assert "gen_auc_vs_row_sft" not in next(e for e in entries if e["row"] == "sft")


def test_rows_against_the_baseline_row_of_one_variant():
    """row_baseline_variant: fip of every variant against the plain variant's sft, so an option
    that only fip gets is compared with the ladder's sft, not with sft under that option."""
    from flipkd.reproduce.sweep_report import markdown, summarise

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    # plain sft is weak; the option makes sft strong and fip in between
    cases = (("plain", "sft", 3.0), ("plain", "fip", 3.0), ("x", "sft", 0.2), ("x", "fip", 0.6))
    records = [_noisy_record(rng, y, variant, row, 0, noise) for variant, row, noise in cases]

    def fip_x(entries):
        return next(e for e in entries if (e["variant"], e["row"]) == ("x", "fip"))

    own = fip_x(summarise(records, "sft"))["gen_auc_vs_row_sft"][0]
    plain = fip_x(summarise(records, "sft", "plain"))["gen_auc_vs_row_sft"][0]
    assert own[0] < 0 < plain[1]  # below its own variant's sft, above plain sft
    spec = SweepSpec(name="x", rows=["sft", "fip"], variants={"plain": [], "x": []},
                     row_baseline="sft", row_baseline_variant="plain")  # fmt: skip
    text = markdown(summarise(records, "sft", "plain"), spec, 300, ["flipkd", "sweep"])
    assert "## Rows against `sft` (`plain`'s, same seed" in text


def test_bad_spec_names_file_and_field(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\nrows: [zero-shot]\nvariants: {a: []}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: rows: .*not trained rows"):
        load_spec(spec)
    spec.write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: variants: Field required"):
        load_spec(spec)
    spec.write_text("name: x\nrows: [fip]\nrow_baseline: sft\nvariants: {a: []}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: row_baseline: 'sft' is not one of rows"):
        load_spec(spec)
    spec.write_text("name: x\nrows: [sft, fip]\nrow_baseline: sft\nrow_baseline_variant: b\n"
                    "variants: {a: []}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"row_baseline_variant: 'b' is not one of variants"):
        load_spec(spec)
    spec.write_text("name: x\nrows: [fip]\nrow_baseline_variant: a\nvariants: {a: []}\n")
    with pytest.raises(ConfigError, match=r"row_baseline_variant: needs row_baseline"):
        load_spec(spec)
    bad = SweepSpec(name="x", profile="tiny", variants={"ok": [], "bad": ["train.steps=abc"]})
    with pytest.raises(ConfigError, match=r"sweep 'x', variant 'bad': .*train\.steps"):
        run_sweep(bad, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()  # refused before any work
    spec.write_text("- a\n")
    proc = subprocess.run(
        [sys.executable, "-m", "flipkd", "sweep", str(spec)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "s.yaml" in proc.stderr


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.yaml")),
    ids=lambda p: p.name,
)  # fmt: skip
def test_every_committed_sweep_spec_builds_its_configs(path):
    """A committed spec reads and every variant × row resolves (no model or data needed)."""
    from flipkd.reproduce.ladder import build_config
    from flipkd.reproduce.profiles import PROFILES

    spec = load_spec(path)
    for variant, extra in spec.variants.items():
        for row in spec.rows_of(variant):
            build_config(PROFILES[spec.profile], spec.benchmark, row, 0, [*spec.overrides, *extra])


def test_split_parts_run_side_by_side_and_the_whole_spec_reads_them_back(
    bench, tiny_llama_dir, tmp_path, monkeypatch
):
    """benchmarks/split_sweep.py: one spec per (variant, seed) plus a teacher part per seed;
    the parts' runs are exactly the runs the whole spec looks for."""
    split_sweep = _split_sweep_module()
    root, teacher = bench
    whole = {
        "name": "parts", "benchmark": str(root), "profile": "tiny", "rows": ["sft", "fip"],
        "seeds": [0, 1], "row_baseline": "sft", "row_baseline_variant": "base",
        "overrides": [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"],
        "variants": {"base": [], "lr": ["train.lr=1e-2"]},
    }  # fmt: skip
    spec_path = tmp_path / "whole.yaml"
    spec_path.write_text(json.dumps(whole))  # JSON is YAML
    parts = split_sweep.split(spec_path, tmp_path / "parts", teachers=True)
    names = [p.name for p in parts]
    assert names[:2] == ["teacher-s0.yaml", "teacher-s1.yaml"] and len(parts) == 2 + 4
    work = tmp_path / "work"
    for part in parts:  # one after another here; a GPU machine runs them side by side
        run_sweep(load_spec(part), work, progress=False)
    assert len(list((work / "teachers").iterdir())) == 2  # one teacher per seed, reused
    monkeypatch.setattr(sweep_mod, "_run_one", _explode)
    records = run_sweep(load_spec(spec_path), work, progress=False)
    assert len(records) == 8 and all(r["read_back"] for r in records)
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**whole, "variants": {}}))
    with pytest.raises(ConfigError, match="bad.yaml: variants"):
        split_sweep.split(bad, tmp_path / "bad-parts", teachers=False)


def _record_training(monkeypatch, read) -> list[tuple]:
    """Every run the sweep trains, as (row, read(cfg)), in order; training still happens."""
    trained: list[tuple] = []
    run_one = sweep_mod._run_one

    def recording(cfg, row, *args, **kwargs):
        trained.append((row, read(cfg)))
        return run_one(cfg, row, *args, **kwargs)

    monkeypatch.setattr(sweep_mod, "_run_one", recording)
    return trained


def _split_sweep_module():
    from conftest import benchmark_script

    return benchmark_script("split_sweep")


def test_a_row_a_variant_does_not_change_is_computed_once(
    bench, tiny_llama_dir, tmp_path, monkeypatch
):
    """``train.grad_route`` changes only a row with both kinds of term: the second variant's
    ``sft`` is the first's run, read back, and its ``fip`` trains anew."""
    root, teacher = bench
    spec = SweepSpec(
        name="route", benchmark=str(root), profile="tiny", rows=["sft", "fip"], seeds=1,
        overrides=[
            f"student.model={tiny_llama_dir}", f"teacher.model={teacher}",
            "train.clip_scope=term-apart",
        ],
        variants={"shared": [], "split": ["train.grad_route=split"]},
    )  # fmt: skip
    trained = _record_training(monkeypatch, lambda cfg: cfg.train.grad_route)
    records = run_sweep(spec, tmp_path / "work", progress=False)
    assert trained == [("sft", "shared"), ("fip", "shared"), ("fip", "split")]
    split_sft = next(r for r in records if r["variant"] == "split" and r["row"] == "sft")
    shared_sft = next(r for r in records if r["variant"] == "shared" and r["row"] == "sft")
    assert split_sft["read_back"] and split_sft["read_from_variant"] == "shared"
    assert split_sft["dev"] == shared_sft["dev"]
    split_fip = next(r for r in records if r["variant"] == "split" and r["row"] == "fip")
    assert not split_fip.get("read_back")
    text = write_sweep_report(records, spec, tmp_path / "out", ["flipkd", "sweep"]).read_text()
    assert "| split (= shared's runs) | sft | 1 |" in text and "computed once" in text
    assert "| split | fip | 1 |" in text and "| shared | sft | 1 |" in text


def test_a_variant_trains_only_its_rows_and_is_compared_with_the_baseline_variant(
    bench, tiny_llama_dir, tmp_path, monkeypatch
):
    """``variant_rows``: the "lr" variant trains fip alone and is compared with the plain sft;
    its split parts carry the same rows."""
    root, teacher = bench
    raw = {
        "name": "some-rows", "benchmark": str(root), "profile": "tiny", "rows": ["sft", "fip"],
        "seeds": 1, "row_baseline": "sft", "row_baseline_variant": "plain",
        "overrides": [f"student.model={tiny_llama_dir}", f"teacher.model={teacher}"],
        "variants": {"plain": [], "lr": ["train.lr=1e-2"]}, "variant_rows": {"lr": ["fip"]},
    }  # fmt: skip
    spec = SweepSpec(**raw)
    trained = _record_training(monkeypatch, lambda cfg: cfg.train.lr)
    records = run_sweep(spec, tmp_path / "work", progress=False)
    assert [row for row, _ in trained] == ["sft", "fip", "fip"] and trained[2][1] == 1e-2
    assert [(r["variant"], r["row"]) for r in records] == [
        ("plain", "sft"),
        ("plain", "fip"),
        ("lr", "fip"),
    ]
    lr_fip = next(e for e in summarise(records, "sft", "plain") if e["variant"] == "lr")
    assert "gen_auc_vs_row_sft" in lr_fip and "gen_auc_vs_plain" in lr_fip

    split_sweep = _split_sweep_module()
    spec_path = tmp_path / "whole.yaml"
    spec_path.write_text(json.dumps(raw))
    parts = {p.name: load_spec(p) for p in split_sweep.split(spec_path, tmp_path / "parts", False)}
    assert parts["lr-s0.yaml"].rows == ["fip"] and parts["lr-s0.yaml"].row_baseline is None
    assert parts["plain-s0.yaml"].rows == ["sft", "fip"]


def test_a_variant_without_the_baseline_row_is_compared_with_the_first_variants():
    """A spec mixing variants that train sft (compared inside) with one that trains fip alone
    (variant_rows): the latter's fip is paired with the first variant's sft and marked so."""
    from flipkd.reproduce.sweep_report import markdown, summarise

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    cases = (("plain", "sft", 3.0), ("plain", "fip", 3.0), ("more", "sft", 0.2),
             ("more", "fip", 0.6), ("rank", "fip", 0.6))  # fmt: skip
    records = [_noisy_record(rng, y, variant, row, 0, noise) for variant, row, noise in cases]
    spec = SweepSpec(name="x", rows=["sft", "fip"], row_baseline="sft",
                     variants={"plain": [], "more": [], "rank": []},
                     variant_rows={"rank": ["fip"]})  # fmt: skip
    assert spec.baseline_homes() == {"plain": "plain", "more": "more", "rank": "plain"}
    entries = {
        (e["variant"], e["row"]): e for e in summarise(records, "sft", spec.baseline_homes())
    }
    more, rank = entries[("more", "fip")], entries[("rank", "fip")]
    assert "baseline_from" not in more and rank["baseline_from"] == "plain"
    assert more["gen_auc_vs_row_sft"][0][2] < 0 < rank["gen_auc_vs_row_sft"][0][1]
    assert "gen_auc_vs_row_sft" not in summarise(records, "sft")[-1]  # rank has no own sft
    text = markdown(list(entries.values()), spec, 300, ["flipkd", "sweep"])
    assert "| rank (vs `plain`'s) | fip |" in text and "| more | fip |" in text
    both = spec.model_copy(update={"row_baseline_variant": "more"})
    assert set(both.baseline_homes().values()) == {"more"}


@pytest.mark.parametrize(
    ("variant_rows", "message"),
    [
        ("{b: [fip]}", r"variant_rows: 'b' is not one of variants \['a'\]"),
        ("{a: [teacher]}", r"variant_rows: a: \['teacher'\]; give some of rows \['fip'\]"),
        ("{a: []}", r"variant_rows: a: no rows; give some of rows"),
    ],
)
def test_variant_rows_must_name_variants_and_rows(tmp_path, variant_rows, message):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: x\nrows: [fip]\nvariants: {{a: []}}\nvariant_rows: {variant_rows}\n")
    with pytest.raises(ConfigError, match=message):
        load_spec(spec)
