"""``flipkd faq eval``: metrics by hand, the queries reader, and the command end to end.

The end-to-end tests check the promise of the command: its rankings are the
ones ``/search`` returns (the same app, asked over HTTP, must give the same ids
in the same order), for the fake matcher and for a tiny real student.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import flipkd.cli.main as cli_main
from flipkd.errors import ConfigError, DataError
from flipkd.evaluation.retrieval import mrr, rank_of, retrieval_metrics, top_k
from flipkd.serve.app import create_app
from flipkd.serve.faq import FaqEntry, load_faq
from flipkd.serve.faq_eval import cjk_share, evaluate_encoder, language_warning
from flipkd.serve.index import FaqIndex, Hit
from flipkd.serve.queries import load_queries
from flipkd.serve.ranking import order_by_scores, search_depth
from flipkd.serve.schemas import Limits
from test_serve_fake import FAQ_ROWS, ContraryMatcher, FakeMatcher, write_faq_csv

CORPUS = Path(__file__).parent / "bad_inputs" / "faq_eval" / "queries"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
CASES = sorted(p for p in CORPUS.iterdir() if p.name not in ("expected.json", "README.md"))
QUERIES = [
    ("forgot my password", "pw"),
    ("when are you open", "hours"),
    ("cancel an order", "cancel"),
    ("refund", "refund"),
    ("ship abroad to other countries", "ship"),
    ("do you take credit cards", "card"),
    ("new email address", "email"),
    ("remove my account", "delete"),
    ("password change email", "email"),
    ("opening", "hours"),
]


class ChineseFake(FakeMatcher):
    """The fake, recording a Chinese prompt the way an export's ``flipkd.json`` does."""

    spec = {"prompt": {"language": "zh"}, "benchmark": "atec"}


def load_zh(path: Path) -> ChineseFake:
    return ChineseFake()


def write_queries(path: Path, rows=QUERIES) -> Path:
    lines = ["query\tid", *(f"{q}\t{i}" for q, i in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["flipkd.cli.faq_cmd"])
    monkeypatch.setattr(sys, "argv", ["flipkd", *args])
    cli_main.run()


# --- metrics ------------------------------------------------------------------------------
def test_metrics_by_hand():
    ranks = [1, 3, None, 12, 2]
    assert top_k(ranks, 1) == pytest.approx(1 / 5)
    assert top_k(ranks, 5) == pytest.approx(3 / 5)
    assert mrr(ranks, 10) == pytest.approx((1 + 1 / 3 + 0 + 0 + 1 / 2) / 5)
    assert mrr(ranks, 2) == pytest.approx((1 + 0 + 0 + 0 + 1 / 2) / 5)  # rank 3 is past the cut
    assert retrieval_metrics(ranks) == pytest.approx(
        {"top1": 0.2, "top5": 0.6, "mrr@10": 11 / 30, "n": 5}
    )
    assert rank_of(["a", "b", "c"], "c") == 3 and rank_of(["a"], "z") is None
    assert rank_of(["a", "b", "a"], "a") == 1


@pytest.mark.parametrize("bad", [[], [0], [1.5], [True]])
def test_metrics_refuse_bad_ranks(bad):
    with pytest.raises(ValueError):
        retrieval_metrics(bad)


def test_mixed_scores_between_the_label_and_the_cosine():
    from flipkd.serve.ranking import mixed_scores

    cos, label = [0.9, 0.8, 0.7, 0.6], [0.2, 0.9, 0.5, 0.99]
    assert mixed_scores(cos, label, 1.0) == label  # the label alone, unchanged
    by_cos = mixed_scores(cos, label, 0.0)
    assert by_cos == sorted(by_cos, reverse=True)  # the cosine order
    half = mixed_scores(cos, label, 0.5)
    # scale-free: the cosines shifted and stretched give the same mixed scores
    np.testing.assert_allclose(mixed_scores([3 * c - 1 for c in cos], label, 0.5), half)
    assert np.argmax(half) in (1, 3) and len(set(np.round(half, 9))) == 4
    assert mixed_scores([0.5] * 3, [0.5] * 3, 0.3) == [0.0] * 3  # nothing to tell apart
    # scaled by a reference set (a dev split): the reference itself gives the plain mix back,
    # and a pair's score no longer depends on what is scored beside it
    np.testing.assert_allclose(mixed_scores(cos, label, 0.5, reference=(cos, label)), half)
    alone = mixed_scores(cos[:1], label[:1], 0.5, reference=(cos, label))
    assert alone == pytest.approx(half[:1]) and mixed_scores(cos[:1], label[:1], 0.5) == [0.0]


def test_rerank_order_is_by_score_and_stable():
    hits = [Hit(4, 0.9), Hit(2, 0.8), Hit(7, 0.7)]
    ordered = order_by_scores(hits, [0.1, 0.6, 0.6])
    assert [h.position for h, _ in ordered] == [2, 7, 4]
    assert search_depth(10, True, 20) == 20 and search_depth(10, False, 20) == 10
    assert search_depth(10, True, 5) == 10


# --- the queries file -----------------------------------------------------------------------
def test_queries_in_every_format(tmp_path):
    ids = ["pw", "7"]
    tsv = write_queries(tmp_path / "q.tsv", [("reset it", "pw")])
    csv_file = tmp_path / "q.csv"
    csv_file.write_text(' Query ,ID,extra\n"reset, please",pw,x\n', encoding="utf-8")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"query": " hours ", "id": 7}\n\n{"query": "x", "id": "pw"}\n')
    assert [(q.query, q.id, q.line) for q in load_queries(tsv, ids)] == [("reset it", "pw", 2)]
    assert load_queries(csv_file, ids)[0].query == "reset, please"
    got = load_queries(jsonl, ids)
    assert [(q.query, q.id, q.line) for q in got] == [("hours", "7", 1), ("x", "pw", 3)]
    with pytest.raises(DataError, match="not in the FAQ faq.csv"):
        load_queries(tsv, ["other"], "faq.csv")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_bad_queries_stop_with_one_line(monkeypatch, tmp_path, capsys, case):
    faq = write_faq_csv(tmp_path / "faq.csv")
    loader = "test_faq_eval:no_model"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "faq", "eval", "m", "--faq", str(faq), "--queries", str(case),
                "--loader", loader)  # fmt: skip
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {case}{EXPECTED[case.name]}"), lines[0]


def no_model(path: Path):
    raise AssertionError("a bad queries file must stop the command before the model loads")


def test_the_corpus_is_complete():
    assert sorted(EXPECTED) == sorted(p.name for p in CASES) and len(CASES) >= 15


# --- same rankings as /search -----------------------------------------------------------------
def served_ids(matcher, entries, queries, rerank_k: int) -> list[list[str]]:
    """What /search answers with ``rerank_candidates = rerank_k``: k = 10, or k = rerank_k < 10."""
    index = FaqIndex.build(entries, matcher.encode)
    limits = Limits(rerank_candidates=max(rerank_k, 1))
    k = min(10, rerank_k) if rerank_k else 10
    with TestClient(create_app(matcher, index, limits=limits)) as client:
        bodies = [{"query": q.query, "k": k, "rerank": rerank_k > 0} for q in queries]
        answers = [client.post("/search", json=body).json()["results"] for body in bodies]
    return [[r["id"] for r in results] for results in answers]


def check_against_search(matcher, entries, queries, rerank_k: int) -> list:
    from flipkd.serve.faq_eval import TimedIndex

    index = FaqIndex.build(entries, matcher.encode)
    results = evaluate_encoder(
        "student", matcher, TimedIndex(index, 0.0, False), queries, rerank_k=rerank_k,
        progress=False,
    )  # fmt: skip
    for result in results:
        served = served_ids(matcher, entries, queries, rerank_k if "rerank" in result.name else 0)
        for q, rank, ids in zip(queries, result.ranks, served, strict=True):
            want = ids.index(q.id) + 1 if q.id in ids else None
            head = rank if rank is not None and rank <= len(ids) else None  # /search's k results
            assert head == want, (result.name, q.query, ids)
    return results


def test_rankings_match_search_for_the_fake(tmp_path):
    faq = write_faq_csv(tmp_path / "faq.csv")
    entries = load_faq(faq)
    queries = load_queries(write_queries(tmp_path / "q.tsv"), [e.id for e in entries])
    results = check_against_search(FakeMatcher(), entries, queries[:4], rerank_k=10)
    assert [r.name for r in results] == ["student index", "student rerank@10 w=0.5"]
    # a label that ranks against the cosine: re-ranking really reorders, still as /search does
    contrary = check_against_search(ContraryMatcher(), entries, queries[:4], rerank_k=10)
    assert contrary[1].ranks != contrary[0].ranks


def tiny_student(path: Path):
    """A tiny real student (random LoRA on the tiny Llama) as ``flipkd.load`` returns it."""
    import torch

    from conftest import _tiny_llama, _tiny_tokenizer
    from flipkd.config import StudentConfig
    from flipkd.export.load import FlipkdMatcher
    from flipkd.student import assemble_student

    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    cfg = StudentConfig(max_length=96, max_text_length=16)
    cfg.lora.rank = 4
    student = assemble_student(_tiny_llama(len(tok)), tok, cfg, trainable=False)
    spec = {"thresholds": {"gen": 0.5, "rep": 0.5}, "prompt": {"language": "en"}}
    return FlipkdMatcher("tiny-student", student, spec, merged=False)


def test_rankings_match_search_for_a_tiny_student(tmp_path):
    from conftest import CORPUS as TEXTS

    entries = [FaqEntry(f"e{i}", t) for i, t in enumerate(TEXTS)]
    queries = load_queries(
        write_queries(tmp_path / "q.tsv", [("reset password", "e0"), ("wire fee", "e2")]),
        [e.id for e in entries],
    )
    student = tiny_student(tmp_path)
    for rerank_k in (4, 10):
        results = check_against_search(student, entries, queries, rerank_k=rerank_k)
        assert all(np.isfinite(r.metrics["mrr@10"]) for r in results)


# --- the command --------------------------------------------------------------------------------
def test_command_end_to_end(monkeypatch, tmp_path, capsys):
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    out, index_dir, model = tmp_path / "results.json", tmp_path / "index", tmp_path / "model"
    model.mkdir()
    args = ["faq", "eval", str(model), "--faq", str(faq), "--queries", str(queries), "--loader",
            "test_serve_fake:load", "--index", str(index_dir), "--no-progress"]  # fmt: skip
    run_cli(monkeypatch, *args, "--out", str(out))
    printed = capsys.readouterr().out
    assert "| student index |" in printed and "| student rerank@20 w=0.5 |" in printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"command", "git_commit", "versions"} <= set(report)
    assert report["queries"]["n"] == len(QUERIES) and report["faq"]["entries"] == len(FAQ_ROWS)
    index_row, rerank_row = report["systems"]
    assert index_row["metrics"]["n"] == len(QUERIES)
    assert index_row["metrics"]["top1"] >= 0.5  # the hashed bag of words finds most entries
    assert 0 <= rerank_row["metrics"]["mrr@10"] <= 1 and rerank_row["timings"]["rerank_qps"] > 0
    assert index_row["timings"]["index_loaded"] is False
    run_cli(monkeypatch, *args, "--rerank-k", "0", "--out", str(out))
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [s["name"] for s in report["systems"]] == ["student index"]
    assert report["systems"][0]["timings"]["index_loaded"] is True  # reused, as serve does
    run_cli(
        monkeypatch, *args, "--rerank-k", "0", "--sample", "4", "--seed", "3", "--out", str(out)
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["queries"] | {"hash": None} == {
        "path": str(queries), "hash": None, "n": 4, "in_file": len(QUERIES), "sample_seed": 3
    }  # fmt: skip
    assert report["systems"][0]["metrics"]["n"] == 4
    assert "4 queries (a sample of 10, seed 3)" in capsys.readouterr().out


def test_language_warning(monkeypatch, tmp_path, capsys):
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv", QUERIES[:2])
    run_cli(monkeypatch, "faq", "eval", str(tmp_path), "--faq", str(faq), "--queries",
            str(queries), "--loader", "test_faq_eval:load_zh", "--no-progress")  # fmt: skip
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "language zh but the FAQ looks en" in warnings[0]
    questions = ["如何修改密码", "信用卡怎么还款"]
    assert cjk_share(questions) == 1.0 and cjk_share(["abc 1"]) == 0.0
    assert language_warning("m", "zh", questions) is None
    assert language_warning("m", "multilingual", ["hello"]) is None
    assert language_warning("m", None, ["hello"]) is None
    assert "looks zh" in language_warning("m", "en", questions)
    assert language_warning("m", "zh,en", ["hello"]) is None


def test_teacher_reference_and_teacher_as_model(monkeypatch, tmp_path, capsys):
    from flipkd.teacher import build_tiny_teacher

    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv", QUERIES[:3])
    words = [r[1] for r in FAQ_ROWS] + [q for q, _ in QUERIES]
    teacher = build_tiny_teacher(tmp_path / "teacher", words)
    out = tmp_path / "r.json"
    run_cli(monkeypatch, "faq", "eval", str(tmp_path), "--faq", str(faq), "--queries",
            str(queries), "--loader", "test_serve_fake:load", "--teacher", str(teacher),
            "--rerank-k", "3", "--no-progress", "--out", str(out))  # fmt: skip
    names = [s["name"] for s in json.loads(out.read_text())["systems"]]
    assert names == ["student index", "student rerank@3 w=0.5", "teacher index"]
    run_cli(monkeypatch, "faq", "eval", str(teacher), "--faq", str(faq), "--queries",
            str(queries), "--no-progress", "--out", str(out))  # fmt: skip
    systems = json.loads(out.read_text())["systems"]
    assert [s["name"] for s in systems] == ["teacher index"]  # a teacher cannot re-rank
    assert systems[0]["metrics"]["n"] == 3


def load_contrary(path: Path) -> ContraryMatcher:
    return ContraryMatcher()


def test_a_teacher_retrieves_and_the_student_reranks(monkeypatch, tmp_path, capsys):
    from flipkd.teacher import build_tiny_teacher
    from flipkd.teacher.encoder import TeacherEncoder, resolve_source

    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    words = [r[1] for r in FAQ_ROWS] + [q for q, _ in QUERIES]
    teacher = build_tiny_teacher(tmp_path / "teacher", words)
    out = tmp_path / "r.json"
    run_cli(monkeypatch, "faq", "eval", str(tmp_path), "--faq", str(faq), "--queries",
            str(queries), "--loader", "test_faq_eval:load_contrary", "--retriever", str(teacher),
            "--rerank-k", "3", "--rerank-weight", "1", "--candidates", "--no-progress", "--out",
            str(out))  # fmt: skip
    report = json.loads(out.read_text())
    systems = {s["name"]: s for s in report["systems"]}
    assert list(systems) == ["student index", "retriever index", "retriever rerank@3"]
    assert report["retriever"] == str(teacher)
    assert "candidates" not in systems["student index"]
    # by hand: the teacher's top 3 per query, re-ordered by the student's generated label
    entries = load_faq(faq)
    encoder, student = TeacherEncoder(resolve_source(str(teacher))), ContraryMatcher()
    index = FaqIndex.build(entries, encoder.encode)
    reranked = systems["retriever rerank@3"]
    for (q, gold), rank, row in zip(
        QUERIES, reranked["ranks"], reranked["candidates"], strict=True
    ):
        head = index.search(encoder.encode([q])[0], 10)
        assert row["ids"] == [entries[h.position].id for h in head[:3]]
        gen = student.score_pairs([(q, entries[h.position].question) for h in head[:3]], "gen")
        order = [h for h, _ in order_by_scores(head[:3], list(gen))] + head[3:]
        assert rank == rank_of([entries[h.position].id for h in order], gold)
    index_ranks = systems["retriever index"]["ranks"]
    assert reranked["ranks"] != index_ranks  # the contrary label really reorders the teacher's
    assert reranked["model"].endswith(" + fake-contrary")


def test_retriever_needs_a_student(monkeypatch, tmp_path, capsys):
    from flipkd.teacher import build_tiny_teacher

    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv", QUERIES[:2])
    teacher = build_tiny_teacher(tmp_path / "teacher", [r[1] for r in FAQ_ROWS])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run_cli(monkeypatch, "faq", "eval", str(teacher), "--faq", str(faq), "--queries",
                str(queries), "--retriever", str(teacher), "--no-progress")  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--retriever needs a student" in err[0]
    # a retriever that does not exist stops before the student is loaded or searched
    model = tmp_path / "model"
    model.mkdir()
    with pytest.raises(SystemExit) as stop:
        run_cli(monkeypatch, "faq", "eval", str(model), "--faq", str(faq), "--queries",
                str(queries), "--loader", "test_faq_eval:no_student", "--retriever",
                str(tmp_path / "nope"), "--no-progress")  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def no_student(path: Path):
    raise AssertionError("the student was loaded before the retriever was checked")


# --- benchmarks/make_faq.py -----------------------------------------------------------------
def make_faq_script():
    from conftest import benchmark_script

    return benchmark_script("make_faq")


def test_paraphrase_groups_and_files(tmp_path):
    script = make_faq_script()
    pairs = [("a", "b", 1), ("b", "c", 1), ("d", "e", 1), ("a", "d", 0), ("f", "g", 1),
             ("h", "h", 1), ("i", "j", None), ("k", "e", 1)]  # fmt: skip
    groups = script.paraphrase_groups(pairs, exclude={"g"})
    assert groups == [("b", ["a", "c"]), ("e", ["d", "k"])]  # most connected is the entry
    assert script.paraphrase_groups([("q1", "r1", 1)]) == [("q1", ["r1"])]  # MQP: question_1
    n = script.write_benchmark(tmp_path, groups, "t")
    entries = load_faq(tmp_path / "faq.csv")
    queries = load_queries(tmp_path / "queries.csv", [e.id for e in entries])
    assert n == 4 and [e.question for e in entries] == ["b", "e"]
    assert [(q.query, q.id) for q in queries] == [("a", "t-00000"), ("c", "t-00000"),
                                                  ("d", "t-00001"), ("k", "t-00001")]  # fmt: skip
    with pytest.raises(DataError, match="outside the repository"):
        script.main(["mqp", "--out-dir", str(Path(__file__).parent / "x")])


def test_make_faq_excludes_what_a_run_trained_on(tmp_path, capsys):
    """--exclude-run drops the questions of the pairs the run trained on (its config's seeded
    train sample), so the rest of the train split is held out for it; not a run: one line."""
    from flipkd.config import load_config, save_resolved
    from flipkd.data import load_split
    from flipkd.errors import run_script
    from tiny_run import write_benchmark

    script = make_faq_script()
    (tmp_path / "bench").mkdir()
    root, _ = write_benchmark(tmp_path / "bench", 80, 48, 16)
    run = tmp_path / "run"
    cfg = load_config(None, [f"data.benchmark={root}", "data.max_train_pairs=10", "data.seed=3"])
    save_resolved(cfg, run)
    trained = {t for p in load_split(str(root), "train", max_pairs=10, seed=3)
               for t in (p.text_a, p.text_b)}  # fmt: skip
    assert script.run_questions([run]) == trained
    out = tmp_path / "faq"
    script.main([str(root), "--out-dir", str(out), "--splits", "train", "--exclude-run", str(run)])
    entries = load_faq(out / "faq.csv")
    queries = load_queries(out / "queries.csv", [e.id for e in entries])
    used = {e.question for e in entries} | {q.query for q in queries}
    assert used and not used & trained
    everything = [(p.text_a, p.text_b, p.label) for p in load_split(str(root), "train")]
    assert used < {t for a, b, label in everything if label == 1 for t in (a, b)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exclude_runs"] == [str(run)] and manifest["excluded_questions"] == len(trained)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: script.main([str(root), "--out-dir", str(out), "--exclude-run",
                                        str(tmp_path)]))  # fmt: skip
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "not a run directory (no config.yaml)" in lines[0], lines


def _run_rerank_benchmark(tmp_path, monkeypatch, *extra: str) -> tuple[dict, str]:
    """benchmarks/rerank_prefix.py on the tiny student: its JSON report and markdown."""
    import importlib.util

    from conftest import CORPUS as TEXTS

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "rerank_prefix", root / "benchmarks" / "rerank_prefix.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    faq = tmp_path / "faq.csv"
    faq.write_text("id,question\n" + "".join(f"e{i},{t}\n" for i, t in enumerate(TEXTS)))
    queries = write_queries(tmp_path / "q.tsv", [("reset password", "e0"), ("wire fee", "e2")])
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "rr"
    bench.main([
        "unused", "--loader", "test_faq_eval:tiny_student", "--faq", str(faq),
        "--queries", str(queries), "--rerank-k", "4", "--rounds", "1", "--out", str(out), *extra,
    ])  # fmt: skip
    return json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md").read_text()


def test_rerank_prefix_benchmark_compares_the_two_ways(tmp_path, monkeypatch):
    """benchmarks/rerank_prefix.py: both ways re-rank the same queries in turns, agree on
    every order and score, and the report says so."""
    report, md = _run_rerank_benchmark(tmp_path, monkeypatch)
    assert [r["way"] for r in report["rounds"]] == ["plain", "shared"]
    assert report["same_order"] and report["max_score_difference"] < 1e-5
    assert report["queries"]["n"] == 2 and report["speedup"] > 0
    assert "Speed-up" in md


@pytest.mark.parametrize(
    ("loader", "precision", "message"),
    [
        ("test_serve_fake:load", "bfloat16", "--precision bfloat16 is for flipkd's own loader"),
        ("flipkd", "float16", "precision must be one of auto, float32, bfloat16, not 'float16'"),
    ],
)
def test_a_precision_the_loader_cannot_give_stops_in_one_line(
    monkeypatch, tmp_path, capsys, loader, precision, message
):
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    model = tmp_path / "model"
    model.mkdir()
    (model / "flipkd.json").write_text("{}")  # an export as far as the command can tell
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "faq", "eval", str(model), "--faq", str(faq), "--queries",
                str(queries), "--loader", loader, "--precision", precision)  # fmt: skip
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_rerank_benchmark_compares_float32_with_bf16_weights(tmp_path, monkeypatch):
    """benchmarks/rerank_prefix.py --compare precision: a second copy of the student with every
    weight in bf16 re-ranks the same candidates; orders may differ, scores stay close."""
    report, md = _run_rerank_benchmark(tmp_path, monkeypatch, "--compare", "precision")
    assert [r["way"] for r in report["rounds"]] == ["float32", "bfloat16"]
    assert 0 < report["max_score_difference"] < 0.05
    assert 0 <= report["same_order_queries"] <= 2 and report["speedup"] > 0
    assert "weights in bf16" in md


def _load_script(name: str):
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(name, root / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rerank_tokens_counts_prefix_tails_and_closing_per_template(tmp_path, monkeypatch):
    """benchmarks/rerank_tokens.py: the tokens a re-ranked query costs under each template,
    counted the way the shared-prefix pass splits them."""
    from conftest import CORPUS as TEXTS

    bench = _load_script("rerank_tokens")
    faq = tmp_path / "faq.csv"
    faq.write_text("id,question\n" + "".join(f"e{i},{t}\n" for i, t in enumerate(TEXTS)))
    queries = write_queries(tmp_path / "q.tsv", [("reset password", "e0"), ("wire fee", "e2")])
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = tmp_path / "tok"
    b_first = "Is {b} the same as {a}?"
    bench.main([
        "unused", "--loader", "test_faq_eval:tiny_student", "--faq", str(faq),
        "--queries", str(queries), "--rerank-k", "3", "--template", b_first, "--out", str(out),
    ])  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    own, other = report["templates"]
    assert own["own"] and not other["own"] and other["template"] == b_first
    for t in (own, other):
        assert t["total"] == pytest.approx(t["prefix"] + 3 * t["tail"])
        assert t["padded_over_packed"] >= 1 and t["closing"] >= 1
    # the model's template starts with the query, so its prefix holds it; candidate-first
    # templates share only what comes before the candidate
    assert own["prefix"] > other["prefix"]
    assert "padded ÷ packed" in out.with_suffix(".md").read_text()
    # the counting itself: a shared end is found, nothing past the shortest sequence
    assert bench.common_suffix_length([[1, 2, 3], [9, 2, 3], [3]]) == 1
    assert bench.common_suffix_length([[1, 2], [1, 2]]) == 2


def test_rerank_tokens_refuses_a_template_without_both_slots(tmp_path, monkeypatch, capsys):
    bench = _load_script("rerank_tokens")
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    from flipkd.errors import run_script

    argv = ["unused", "--faq", str(faq), "--queries", str(queries), "--template", "only {a}",
            "--out", str(tmp_path / "x")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: bench.main(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "needs both {a} and {b}" in lines[0]


def test_rerank_benchmark_compares_two_students_on_the_same_candidates(tmp_path, monkeypatch):
    """--compare models: a second student re-ranks the first one's candidates in turns; the
    same tiny student twice agrees with itself on every order and score."""
    report, md = _run_rerank_benchmark(
        tmp_path, monkeypatch, "--compare", "models", "--other", "again"
    )
    assert [r["way"] for r in report["rounds"]] == ["unused", "again"]
    assert report["same_order"] and report["max_score_difference"] < 1e-5
    assert report["other"] == "again" and report["precision"] == "float32"
    assert "two students" in md and "both in float32" in md


def test_rerank_benchmark_models_needs_the_other_student(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="needs --other"):
        _run_rerank_benchmark(tmp_path, monkeypatch, "--compare", "models")


@pytest.mark.parametrize("script", ["rerank_tokens", "rerank_prefix"])
@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--rerank-k", "0", "--rerank-k must be at least 1, not 0"),
     ("--max-queries", "-3", "--max-queries must be 0 (all) or more, not -3")],
)  # fmt: skip
def test_faq_benchmarks_refuse_counts_out_of_range(tmp_path, capsys, script, flag, value, message):
    from flipkd.errors import run_script

    bench = _load_script(script)
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    argv = ["unused", "--faq", str(faq), "--queries", str(queries), flag, value,
            "--out", str(tmp_path / "x")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: bench.main(argv))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {message}"]


# --- benchmarks/faq_compare.py ----------------------------------------------------------------


def _faq_result(path: Path, systems: dict[str, list], query_hash: str = "abc") -> Path:
    doc = {
        "queries": {"path": "q.csv", "hash": query_hash, "n": 4, "sample_seed": None},
        "systems": [{"name": n, "model": "m", "ranks": r} for n, r in systems.items()],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_faq_compare_pairs_two_systems_query_by_query(tmp_path):
    """benchmarks/faq_compare.py: B − A per metric from the stored ranks, a paired interval
    that holds the difference, and the queries B puts first that A does not (and back)."""
    bench = _load_script("faq_compare")
    a = _faq_result(tmp_path / "a.json", {"student index": [1, 3, None, 12]})
    b = _faq_result(
        tmp_path / "b.json", {"teacher index": [2, 1, 1, None], "student index": [1, 1, 5, 1]}
    )
    bench.main([str(a), f"{b}:student index", "--resamples", "200", "--out", str(tmp_path / "c")])
    report = json.loads((tmp_path / "c.json").read_text())
    top1, top5, mrr = (report["metrics"][k] for k in ("top1", "top5", "mrr@10"))
    assert (top1["a"], top1["b"], top1["diff"]) == (0.25, 0.75, 0.5)
    assert (top5["a"], top5["b"]) == (0.5, 1.0)  # rank 12 and a miss count as not found
    assert mrr["a"] == pytest.approx((1 + 1 / 3) / 4) and mrr["b"] == pytest.approx(3.2 / 4)
    for row in (top1, top5, mrr):
        assert row["ci"][0] <= row["diff"] <= row["ci"][1]
    assert (report["top1_gained"], report["top1_lost"]) == (2, 0)
    assert report["b"]["system"] == "student index" and "git_commit" in report
    assert "| top1 | 0.250 | 0.750 | +0.500 [" in (tmp_path / "c.md").read_text()
    # without :SYSTEM the file's first system is taken
    bench.main([str(a), str(b), "--resamples", "50", "--out", str(tmp_path / "d")])
    first = json.loads((tmp_path / "d.json").read_text())
    assert first["b"]["system"] == "teacher index" and first["top1_lost"] == 1


@pytest.mark.parametrize(
    ("b_spec", "message"),
    [("other", "scored different queries"), ("b:nope", "no system 'nope'"),
     ("missing", "no such file"), ("noranks", "has no per-query ranks"),
     ("badrank", "a rank is 1-based or None, not 0")],
)  # fmt: skip
def test_faq_compare_refuses_what_does_not_pair(tmp_path, capsys, b_spec, message):
    from flipkd.errors import run_script

    bench = _load_script("faq_compare")
    a = _faq_result(tmp_path / "a.json", {"s": [1, 2, 3, 4]})
    _faq_result(tmp_path / "b.json", {"s": [1, 1, 1, 1]})
    _faq_result(tmp_path / "other.json", {"s": [1, 1, 1, 1]}, query_hash="zzz")
    noranks = json.loads(_faq_result(tmp_path / "noranks.json", {"s": []}).read_text())
    del noranks["systems"][0]["ranks"]
    (tmp_path / "noranks.json").write_text(json.dumps(noranks))
    _faq_result(tmp_path / "badrank.json", {"s": [1, 0, 2, None]})
    name, _, system = b_spec.partition(":")
    b = str(tmp_path / f"{name}.json") + (f":{system}" if system else "")
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: bench.main([str(a), b, "--out", str(tmp_path / "c")]))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


# --- faq eval --candidates and benchmarks/rerank_fusion.py --------------------------------------
def test_candidates_are_recorded_and_fusion_reproduces_the_rerank(monkeypatch, tmp_path, capsys):
    """--candidates keeps each query's re-ranked candidates with both scores; rerank_fusion.py
    rebuilds the served re-ranking from them at w = 1 and the index's order at w = 0."""
    from flipkd.errors import run_script

    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    out, model = tmp_path / "r.json", tmp_path / "model"
    model.mkdir()
    args = ["faq", "eval", str(model), "--faq", str(faq), "--queries", str(queries), "--loader",
            "test_serve_fake:load", "--no-progress", "--rerank-k", "5"]  # fmt: skip
    run_cli(monkeypatch, *args, "--candidates", "--out", str(out))
    index_row, rerank_row = json.loads(out.read_text(encoding="utf-8"))["systems"]
    assert "candidates" not in index_row
    rows = rerank_row["candidates"]
    assert len(rows) == len(QUERIES) and all(len(r["ids"]) == 5 for r in rows)
    for row in rows:
        assert row["cos"] == sorted(row["cos"], reverse=True) and len(row["gen"]) == 5
        assert all(0 <= g <= 1 for g in row["gen"])
    bench = _load_script("rerank_fusion")
    weights = ["0", "0.5", "1"]
    bench.main([str(out), "--weights", *weights, "--resamples", "50", "--out", str(tmp_path / "f")])
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["weights"]["1"]["top1"] == rerank_row["metrics"]["top1"]
    assert report["weights"]["1"]["top1_vs_label_only"] == 0
    assert report["weights"]["0"]["top1"] == index_row["metrics"]["top1"]  # cosine order
    # what the benchmark computes for w is what faq eval (and /search) serve with that weight
    run_cli(monkeypatch, *args, "--rerank-weight", "0.5", "--candidates", "--out", str(out))
    served = json.loads(out.read_text(encoding="utf-8"))
    assert served["rerank_weight"] == 0.5 and served["systems"][1]["name"].endswith("w=0.5")
    for metric in ("top1", "top5", "mrr@10"):
        assert served["systems"][1]["metrics"][metric] == report["weights"]["0.5"][metric]
    bench.main([str(out), "--weights", "1", "--resamples", "50", "--out", str(tmp_path / "h")])
    again = json.loads((tmp_path / "h.json").read_text())  # a mixed file still reads back
    assert again["weights"]["1"]["top1"] == report["weights"]["1"]["top1"]
    # --k 2 on k = 5 candidates is what faq eval (and /search) serve re-ranking only 2: a
    # label against the cosine, so that where the re-ranking stops shows in the ranks
    contrary = [*args[:7], "--loader", "test_faq_eval:load_contrary", "--no-progress",
                "--rerank-weight", "1"]  # fmt: skip
    run_cli(monkeypatch, *contrary, "--rerank-k", "5", "--candidates", "--out", str(out))
    bench.main([str(out), "--weights", "1", "--k", "2", "--resamples", "50",
                "--out", str(tmp_path / "k2")])  # fmt: skip
    two = json.loads((tmp_path / "k2.json").read_text())
    five = json.loads(out.read_text(encoding="utf-8"))["systems"][1]
    run_cli(monkeypatch, *contrary, "--rerank-k", "2", "--out", str(out))
    served_two = json.loads(out.read_text(encoding="utf-8"))["systems"][1]
    assert two["k"] == 2 and report["k"] == 5 and served_two["ranks"] != five["ranks"]
    for metric in ("top1", "top5", "mrr@10"):
        assert served_two["metrics"][metric] == two["weights"]["1"][metric]
    # without --candidates nothing is kept, and the benchmark says what to run
    run_cli(monkeypatch, *args, "--out", str(out))
    assert "candidates" not in json.loads(out.read_text(encoding="utf-8"))["systems"][1]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: bench.main([str(out), "--out", str(tmp_path / "g")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no re-ranked system with candidates" in err[0]


def _fusion_report(path: Path, faq_hash: str, rows: dict[str, tuple[float, float]]) -> Path:
    """A rerank_fusion.py report: per w, (top-1 − label only, top-1 − index)."""
    weights = {w: {"top1": 0.5, "top1_vs_label_only": a, "top1_vs_index": b}
               for w, (a, b) in rows.items()}  # fmt: skip
    doc = {"queries": {"path": f"/faq/{faq_hash}.csv", "hash": faq_hash}, "weights": weights}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_fusion_pool_picks_the_best_mean_without_falling_below_an_index(tmp_path, capsys):
    """benchmarks/fusion_pool.py: FAQs count once each (two students on one FAQ are averaged
    first), and a weight under which one student's re-ranking is below its index is never
    picked, however high the mean."""
    from flipkd.errors import run_script

    bench = _load_script("fusion_pool")
    a = _fusion_report(
        tmp_path / "fusion_a.json",
        "zh",
        {"0": (-0.02, 0.0), "0.5": (0.01, 0.03), "0.8": (0.02, 0.04), "1": (0.0, 0.02)},
    )
    b = _fusion_report(
        tmp_path / "fusion_b.json",
        "zh",
        {"0": (-0.01, 0.0), "0.5": (0.01, 0.02), "0.8": (0.01, 0.02), "1": (0.0, 0.01)},
    )
    c = _fusion_report(tmp_path / "fusion_c.json", "en", {
        "0": (0.20, 0.0), "0.5": (0.21, 0.01), "0.8": (0.25, -0.05), "1": (0.0, -0.2)})  # fmt: skip
    bench.main([str(a), str(b), str(c), "--out", str(tmp_path / "pool")])
    report = json.loads((tmp_path / "pool.json").read_text())
    row = report["weights"]["0.5"]
    assert row["mean_vs_label_only_per_faq"] == pytest.approx({"zh": 0.01, "en": 0.21})
    assert row["mean_vs_label_only"] == pytest.approx(0.11)
    assert report["weights"]["0.8"]["mean_vs_label_only"] == pytest.approx(0.1325)
    assert report["weights"]["0.8"]["worst_vs_index"] == pytest.approx(-0.05)
    assert report["pick"] == "0.5"  # 0.8's mean is higher but c's re-ranking falls below its index
    assert "| 0.5 **(pick)** |" in (tmp_path / "pool.md").read_text()
    # only the weights every report has; bad inputs are one line, exit 2
    d = _fusion_report(tmp_path / "fusion_d.json", "en", {"0.5": (0.0, 0.0), "0.6": (0.0, 0.0)})
    bench.main([str(a), str(d), "--out", str(tmp_path / "pool2")])
    assert list(json.loads((tmp_path / "pool2.json").read_text())["weights"]) == ["0.5"]
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    cases = [([str(a), str(a)], "given twice"), ([str(tmp_path / "nope.json")], "no such file"),
             ([str(tmp_path / "bad.json")], "no weights")]  # fmt: skip
    capsys.readouterr()
    for files, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            run_script(lambda files=files: bench.main([*files, "--out", str(tmp_path / "x")]))
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines


def test_fusion_ranks_stop_at_the_ten_results_faq_eval_scores():
    """rerank_fusion.ranks_at: the first k candidates re-ordered, the rest in cosine order, and
    a gold entry past the 10th result is None, as faq eval records it (k = 20 files)."""
    bench = _load_script("rerank_fusion")
    ids = [f"e{i}" for i in range(12)]
    row = {"ids": ids, "cos": [1 - i / 100 for i in range(12)], "gen": [i / 12 for i in range(12)]}
    label_first = bench.ranks_at([row], ["e11"], 1.0)  # the label puts e11 first of all 12
    assert label_first == [1]
    assert bench.ranks_at([row], ["e11"], 1.0, k=3) == [None]  # 12th by cosine: past 10
    assert bench.ranks_at([row], ["e2"], 1.0, k=3) == [1] and bench.ranks_at(
        [row], ["e3"], 1.0, k=3
    ) == [4]


def test_candidates_need_out(monkeypatch, tmp_path, capsys):
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "faq", "eval", str(tmp_path), "--faq", str(faq), "--queries",
                str(queries), "--loader", "test_serve_fake:load", "--candidates")  # fmt: skip
    assert exit_info.value.code == 2
    assert "--candidates needs --out" in capsys.readouterr().err


# --- benchmarks/index_geometry.py ----------------------------------------------------------------
def test_index_geometry_raw_is_the_served_index_and_vectors_are_cached(monkeypatch, tmp_path):
    faq = write_faq_csv(tmp_path / "faq.csv")
    queries = write_queries(tmp_path / "q.tsv")
    model = tmp_path / "model"
    model.mkdir()
    served = tmp_path / "served.json"
    run_cli(monkeypatch, "faq", "eval", str(model), "--faq", str(faq), "--queries", str(queries),
            "--loader", "test_serve_fake:load", "--rerank-k", "0", "--no-progress",
            "--out", str(served))  # fmt: skip
    index_row = json.loads(served.read_text())["systems"][0]
    bench = _load_script("index_geometry")
    argv = [str(model), "--loader", "test_serve_fake:load", "--faq", str(faq), "--queries",
            str(queries), "--cache", str(tmp_path / "cache"), "--resamples", "50",
            "--pca", "2", "999"]  # fmt: skip
    bench.main([*argv, "--out", str(tmp_path / "g")])
    report = json.loads((tmp_path / "g.json").read_text())
    assert list(report["transforms"]) == ["raw", "centre", "whiten", "csls", "pca-2"]
    raw = report["transforms"]["raw"]
    for metric in ("top1", "top5", "mrr@10"):
        assert raw[metric] == pytest.approx(index_row["metrics"][metric])
    assert raw["top1_vs_raw"] == 0 and report["space"]["dim"] > 0
    assert -1 <= report["space"]["mean_cos_random_entries"] <= 1
    # the second look reads the cached vectors: no model is loaded
    import flipkd.cli.faq_cmd as faq_cmd

    def no_model(*args, **kwargs):
        raise AssertionError("loaded the model although its vectors are cached")

    monkeypatch.setattr(faq_cmd, "load_model", no_model)
    bench.main([*argv, "--out", str(tmp_path / "h")])
    again = json.loads((tmp_path / "h.json").read_text())
    assert again["transforms"] == report["transforms"]


def test_index_geometry_transforms_by_hand():
    bench = _load_script("index_geometry")
    entries = bench.unit(np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float))
    query = bench.unit(np.array([[1, 0.4, 0.4]]))
    # the hub (entry 0, near every other entry) is the raw cosine's first; CSLS lowers it
    assert np.argmax(bench.scores_for("raw", entries, query, 0.1, 3)) == 0
    assert np.argmax(bench.scores_for("csls", entries, query, 0.1, 3)) == 1
    assert bench.entry_hub_scores(entries, 3) == pytest.approx(
        [3**-0.5, 3**-0.5 / 3, 3**-0.5 / 3, 3**-0.5 / 3]
    )
    # whitening shrunk all the way to the mean eigenvalue is a rotation: centring's cosines
    rng = np.random.default_rng(0)
    e, q = bench.unit(rng.normal(size=(20, 5))), bench.unit(rng.normal(size=(6, 5)))
    np.testing.assert_allclose(
        bench.scores_for("whiten", e, q, 1.0, 3),
        bench.scores_for("centre", e, q, 1.0, 3),
        atol=1e-9,
    )
    # every principal component kept is a rotation too; fewer lose information
    np.testing.assert_allclose(
        bench.scores_for("pca-5", e, q, 0.1, 3), bench.scores_for("centre", e, q, 0.1, 3), atol=1e-9
    )
    assert not np.allclose(
        bench.scores_for("pca-2", e, q, 0.1, 3), bench.scores_for("centre", e, q, 0.1, 3)
    )
    assert not np.allclose(bench.scores_for("whiten", e, q, 0.0, 3),
                           bench.scores_for("centre", e, q, 0.0, 3))  # fmt: skip
