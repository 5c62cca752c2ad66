"""The load-test benchmark, run quickly against the fake matcher through the real CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from test_serve_fake import write_faq_csv

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location(
        "packing_ab", ROOT / "benchmarks" / "packing_ab.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    student = SimpleNamespace(tokenizer=tiny_tokenizer, max_text_length=64)
    texts = ["a b c d", "a"]
    lengths = [len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    expected = 1 - sum(lengths) / (2 * max(lengths))
    assert module.padding_share(student, texts) == pytest.approx(expected) and expected > 0
    assert module.padding_share(student, ["a b", "a b"]) == 0.0


@pytest.mark.parametrize("script", ["packing_ab.py", "load_test.py"])
def test_benchmark_scripts_name_a_bad_input_in_one_line(script, tmp_path):
    import subprocess
    import sys

    faq = tmp_path / "faq.csv"
    faq.write_text("id,question\n1,how?\n1,why?\n", encoding="utf-8")  # a duplicate id
    args = [str(tmp_path), "--faq", str(faq), "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(tmp_path) in lines[0]  # the file (or the model folder) it could not use
