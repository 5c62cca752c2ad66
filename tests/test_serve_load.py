"""The load-test benchmark, run quickly against the fake matcher through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import benchmark_script
from test_serve_fake import write_faq_csv

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _load_benchmark():
    return benchmark_script("load_test")


def test_load_test_reports_levels_without_5xx(tmp_path, monkeypatch):
    load_test = _load_benchmark()
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "fake.json").write_text(json.dumps({"delay_s": 0.01}))
    faq = write_faq_csv(tmp_path / "faq.csv")
    out = tmp_path / "report" / "load"
    code = load_test.main(
        [str(model_dir), "--faq", str(faq), "--out", str(out), "--loader", "test_serve_fake:load",
         "--concurrency", "1", "8", "--requests", "60", "--max-seconds", "20",
         "--malformed", "0.25"]
    )  # fmt: skip
    result = json.loads(Path(f"{out}.json").read_text())
    assert code == 0 and result["ok"], result
    levels = {lv["clients"]: lv for lv in result["levels"]}
    assert set(levels) == {1, 8}
    for lv in levels.values():
        assert lv["requests"] == 60 and lv["http_5xx"] == 0 and lv["malformed_not_4xx"] == 0
        assert any(s.startswith("4") for s in lv["status"]) and lv["status"]["200"] > 0
        assert lv["p99_ms"] >= lv["p50_ms"] > 0
    assert levels[8]["mean_batch"]["encode"] > levels[1]["mean_batch"]["encode"]
    report = Path(f"{out}.md").read_text()
    assert "| 8 | 60 |" in report and "PASS" in report
    assert result["git_commit"] and "torch" in result["versions"]
    assert len(result["load_average_start"]) == 3 and result["targets"] is None  # no 16 level


def test_targets_are_ratios_against_the_serial_level():
    load_test = _load_benchmark()
    levels = [
        {"clients": 1, "qps": 10.0, "valid_p50_ms": 100.0, "valid_p99_ms": 150.0},
        {"clients": 16, "qps": 28.0, "valid_p50_ms": 600.0, "valid_p99_ms": 790.0},
    ]
    assert load_test.targets(levels) == {
        "clients": 16, "throughput_vs_serial": 2.8, "p99_vs_single_latency": 7.9,
    }  # fmt: skip


def test_malformed_requests_are_what_they_claim():
    load_test = _load_benchmark()
    import random
    from types import SimpleNamespace

    args = SimpleNamespace(malformed=1.0, match_share=0.0, rerank=0.0)
    rng = random.Random(0)
    kinds = {load_test.make_request(rng, ["How do I reset it?"], args)[0] for _ in range(200)}
    assert kinds == set(load_test.MALFORMED)
    args.malformed = 0.0
    label, path, body, valid = load_test.make_request(rng, ["How do I reset it?"], args)
    assert valid and path == "/search" and json.loads(body)["k"] == 5


def test_packing_ab_measures_padding_share(tiny_tokenizer):
    from types import SimpleNamespace

    module = benchmark_script("packing_ab")
    student = SimpleNamespace(tokenizer=tiny_tokenizer, max_text_length=64)
    texts = ["a b c d", "a"]
    lengths = [len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    expected = 1 - sum(lengths) / (2 * max(lengths))
    assert module.padding_share(student, texts) == pytest.approx(expected) and expected > 0
    assert module.padding_share(student, ["a b", "a b"]) == 0.0


@pytest.mark.parametrize("script", ["packing_ab.py", "load_test.py", "load_open.py"])
def test_benchmark_scripts_name_a_bad_input_in_one_line(script, tmp_path):
    import subprocess
    import sys

    faq = tmp_path / "faq.csv"
    faq.write_text("id,question\n1,how?\n1,why?\n", encoding="utf-8")  # a duplicate id
    args = [str(tmp_path), "--faq", str(faq), "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=600,  # a guard; imports are slow under load
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(tmp_path) in lines[0]  # the file (or the model folder) it could not use


# ---- open-loop load test (benchmarks/load_open.py) -----------------------------------------


def _load_open():
    return benchmark_script("load_open")


def _stats():
    return benchmark_script("open_loop_stats")  # its pure parts


def test_poisson_arrivals_are_seeded_and_have_the_right_rate():
    import random

    stats = _stats()
    times = stats.poisson_arrivals(8.0, 20_000, random.Random(1))
    assert times == stats.poisson_arrivals(8.0, 20_000, random.Random(1))
    assert times != stats.poisson_arrivals(8.0, 20_000, random.Random(2))
    gaps = np.diff([0.0, *times])
    assert (gaps > 0).all()
    assert gaps.mean() == pytest.approx(1 / 8.0, rel=0.03)  # sd of the mean: 0.7%
    assert gaps.std() == pytest.approx(1 / 8.0, rel=0.05)  # exponential: sd = mean
    per_second = np.bincount(np.floor(times).astype(int))[:-1]  # whole seconds only
    assert per_second.var() == pytest.approx(per_second.mean(), rel=0.15)  # Poisson counts
    assert stats.arrivals_for(2.0, 30, 100) == 100
    assert stats.arrivals_for(10.0, 30, 100) == 300


def test_percentiles_by_hand():
    stats = _stats()
    assert stats.percentiles(list(range(1, 102))) == {
        "p50_ms": 51.0, "p90_ms": 91.0, "p99_ms": 100.0, "max_ms": 101.0,
    }  # fmt: skip
    # 10 values: rank 0.99 * 9 = 8.91 lies between 9 and 100, at 0.91 of the way
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 100]
    got = stats.percentiles(values)
    assert got["p50_ms"] == 5.5 and got["p99_ms"] == pytest.approx(9 + 0.91 * 91, abs=0.01)
    assert stats.percentiles([]) == {"p50_ms": 0, "p90_ms": 0, "p99_ms": 0, "max_ms": 0}


def test_within_bound_needs_p99_and_no_failures():
    stats = _stats()
    row = {"p99_ms": 200.0, "http_5xx": 0, "transport_errors": 0, "valid_not_200": 0,
           "malformed_not_4xx": 0}  # fmt: skip
    assert stats.within_bound(row, 200.0) and not stats.within_bound(row, 199.9)
    assert not stats.within_bound({**row, "http_5xx": 1}, 1000.0)  # 503 queue full too


def test_rate_at_bound_and_bisection_by_hand():
    stats = _stats()
    rows = [{"rate": r, "ok": ok} for r, ok in [(1, True), (2, True), (4, True), (8, False)]]
    assert stats.rate_at_bound(rows) == {"rate": 4, "first_failing": 8, "censored": False}
    assert stats.next_probe(rows) == 6.0
    rows.append({"rate": 6.0, "ok": False})
    assert stats.rate_at_bound(rows)["first_failing"] == 6.0
    assert stats.next_probe(rows) == 5.0
    rows.append({"rate": 5.0, "ok": True})
    assert stats.rate_at_bound(rows)["rate"] == 5.0
    assert stats.next_probe(rows, min_step=0.25) is None  # 5 → 6 is within 25% of 5
    # a lucky rate above a failing one does not count
    noisy = [{"rate": r, "ok": ok} for r, ok in [(1, True), (2, False), (3, True)]]
    assert stats.rate_at_bound(noisy) == {"rate": 1, "first_failing": 2, "censored": False}
    # nothing failed: a lower bound only; everything failed: no rate
    assert stats.rate_at_bound([{"rate": 3, "ok": True}])["censored"]
    assert stats.next_probe([{"rate": 3, "ok": True}]) is None
    assert stats.rate_at_bound([{"rate": 3, "ok": False}])["rate"] is None
    assert stats.next_probe([{"rate": 3, "ok": False}]) is None


def test_ratio_says_what_kind_of_number_it_is():
    stats = _stats()

    def found(rate, censored=False):
        return {"rate": rate, "first_failing": None if censored else 99, "censored": censored}

    exact = stats.ratio(found(10.0), found(4.0), 2.5)
    assert exact == {"value": 2.5, "kind": "exact", "goal": 2.5, "goal_met": True}
    assert stats.ratio(found(9.0), found(4.0), 2.5)["goal_met"] is False
    lower = stats.ratio(found(9.0, censored=True), found(4.0), 2.5)
    assert lower["kind"] == "lower" and lower["goal_met"] is None  # could still be ≥ 2.5
    assert stats.ratio(found(12.0, censored=True), found(4.0), 2.5)["goal_met"] is True
    upper = stats.ratio(found(8.0), found(4.0, censored=True), 2.5)
    assert upper["kind"] == "upper" and upper["goal_met"] is False
    assert stats.ratio(found(12.0), found(4.0, censored=True), 2.5)["goal_met"] is None
    assert stats.ratio(found(None), found(4.0), 2.5)["value"] is None
    assert stats.ratio(found(8.0), found(None), 2.5)["goal_met"] is None


def test_open_loop_run_against_the_fake_server(tmp_path, monkeypatch):
    """Both servers, the sweep and the report, in a few seconds: per-call delay 20 ms."""
    load_open = _load_open()
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "fake.json").write_text(json.dumps({"delay_s": 0.02}))
    faq = write_faq_csv(tmp_path / "faq.csv")
    out = tmp_path / "report" / "open"
    code = load_open.main(
        [str(model_dir), "--faq", str(faq), "--out", str(out), "--loader", "test_serve_fake:load",
         "--rates", "10", "100", "--duration", "1", "--min-requests", "25", "--past-bound", "2",
         "--single-requests", "10", "--warmup", "2", "--single-gap-ms", "10",
         "--match-share", "0.2", "--malformed", "0.1", "--refine", "1"]
    )  # fmt: skip
    result = json.loads(Path(f"{out}.json").read_text())
    assert code == 0 and result["server_errors"] == 0, result
    assert set(result["servers"]) == {"max-batch-1", "batched"}
    assert result["bound_ms"] == pytest.approx(2 * result["single"]["max-batch-1"]["p50_ms"])
    for name, srv in result["servers"].items():
        rows = srv["rows"]
        assert rows[0]["rate"] == 10.0 and rows[0]["requests"] == 25 and len(rows) >= 2
        for row in rows:
            assert row["p99_ms"] >= row["p90_ms"] >= row["p50_ms"] > 0
            assert row["ok"] == load_open.within_bound(row, result["bound_ms"])
            assert row["malformed_not_4xx"] == 0 and row["achieved"] > 0
        assert srv["rate_at_bound"] == load_open.rate_at_bound(rows)
        batch = max(max(r["mean_batch"].values()) for r in rows)
        assert (batch == 1.0) == (name == "max-batch-1")
    # 100 req/s is twice what 20 ms per call can serve one at a time
    unbatched = {r["rate"]: r for r in result["servers"]["max-batch-1"]["rows"]}
    assert not unbatched[100.0]["ok"] and unbatched[100.0]["p99_ms"] > 500
    report = Path(f"{out}.md").read_text()
    assert "## batched (`--max-batch 32`)" in report and "| 10.0 | 25 |" in report
    assert "Rate at the bound, batched ÷ `--max-batch 1`" in report
    assert result["git_commit"] and "torch" in result["versions"]
    assert len(result["load_average_start"]) == 3
