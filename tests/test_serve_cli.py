"""``flipkd serve``: FAQ validation (exit 2, one line), loader injection, index reuse, token."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

import flipkd.cli.main as cli_main
import flipkd.serve.server as server_module
from test_serve_fake import write_faq_csv

LOADER = "test_serve_fake:load"


def run_cli(monkeypatch, *args: str) -> None:
    """Run the real entry point with only the serve command registered."""
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["flipkd.cli.serve_cmd"])
    monkeypatch.setattr(sys, "argv", ["flipkd", *args])
    cli_main.run()


@pytest.fixture
def captured(monkeypatch) -> dict:
    calls: dict = {}

    def fake_run_server(app, host="127.0.0.1", port=8000):
        calls.update(app=app, host=host, port=port)

    monkeypatch.setattr(server_module, "run_server", fake_run_server)
    return calls


def test_bad_faq_exits_2_with_one_line(monkeypatch, tmp_path, capsys, captured):
    faq = tmp_path / "faq.csv"
    faq.write_text("id,question,answer\n1,hi,a\n2,,b\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {faq}:3: question is empty"
    assert not captured


def test_missing_value_exits_2(monkeypatch, tmp_path, capsys, captured):
    faq = tmp_path / "faq.jsonl"
    faq.write_text('{"id": 1, "question": "q"}\n{"id": 2}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER)
    assert exit_info.value.code == 2
    assert f"{faq}:2: missing value for question" in capsys.readouterr().err


def test_faq_of_questions_and_ids_only_serves(monkeypatch, tmp_path, captured):
    faq = tmp_path / "faq.tsv"
    faq.write_text("id\tquestion\nQ-1\tWhat are your opening hours?\n", encoding="utf-8")
    run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER)
    with TestClient(captured["app"], base_url="http://127.0.0.1:8000") as client:
        hit = client.post("/search", json={"query": "opening hours"}).json()["results"][0]
    assert hit["id"] == "Q-1" and hit["answer"] is None


def test_serve_rerank_weight_sets_the_default_of_search(monkeypatch, tmp_path, capsys, captured):
    """--rerank-weight is what a /search request that leaves rerank_weight out is served at; a
    request's own weight still wins; outside [0, 1] the command stops (exit 2)."""
    faq = write_faq_csv(tmp_path / "faq.csv")
    args = ["serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER]
    run_cli(monkeypatch, *args, "--rerank-weight", "0.2")
    ask = {"query": "cancel order refund", "k": 3, "rerank": True}
    with TestClient(captured["app"], base_url="http://127.0.0.1:8000") as client:
        assert client.post("/search", json=ask).json()["rerank_weight"] == 0.2
        own = client.post("/search", json={**ask, "rerank_weight": 1.0}).json()
        assert own["rerank_weight"] == 1.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, *args, "--rerank-weight", "1.5")
    assert exit_info.value.code == 2
    assert "--rerank-weight" in capsys.readouterr().err


def test_serve_rerank_k_is_how_many_candidates_the_label_rescores(monkeypatch, tmp_path, captured):
    faq = write_faq_csv(tmp_path / "faq.csv")
    args = ["serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER]
    for k, scored in ((3, 3), (None, 8)):  # default 20, capped by the FAQ's 8 entries
        run_cli(monkeypatch, *args, *(["--rerank-k", str(k)] if k else []))
        app = captured["app"]
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            ask = {"query": "cancel order refund", "k": 2, "rerank": True}
            assert len(client.post("/search", json=ask).json()["results"]) == 2
        assert app.state.serve.matcher.calls_of("gen") == [scored]


def test_unknown_loader_exits_2(monkeypatch, tmp_path, capsys, captured):
    faq = write_faq_csv(tmp_path / "faq.csv")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(faq), "--loader", "nope")
    assert exit_info.value.code == 2
    assert "unknown loader 'nope'" in capsys.readouterr().err


def test_serve_builds_app_and_reuses_index(monkeypatch, tmp_path, captured):
    faq = write_faq_csv(tmp_path / "faq.csv")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    index_dir = tmp_path / "index"
    args = ["serve", str(model_dir), "--faq", str(faq), "--loader", LOADER, "--index"]
    run_cli(monkeypatch, *args, str(index_dir))
    assert captured["host"] == "127.0.0.1" and captured["port"] == 8000
    with TestClient(captured["app"], base_url="http://127.0.0.1:8000") as client:
        hit = client.post("/search", json={"query": "opening hours", "k": 1}).json()["results"]
        assert hit[0]["id"] == "hours"
        assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    first_mtime = (index_dir / "index.json").stat().st_mtime_ns
    run_cli(monkeypatch, *args, str(index_dir), "--port", "9001")
    assert (index_dir / "index.json").stat().st_mtime_ns == first_mtime  # reused
    assert captured["port"] == 9001


def test_token_from_environment_and_public_host_warning(monkeypatch, tmp_path, capsys, captured):
    faq = write_faq_csv(tmp_path / "faq.csv")
    run_cli(
        monkeypatch,
        "serve",
        str(tmp_path),
        "--faq",
        str(faq),
        "--loader",
        LOADER,
        "--host",
        "0.0.0.0",
    )
    assert "without a token" in capsys.readouterr().err
    monkeypatch.setenv("FLIPKD_SERVE_TOKEN", "tok")
    run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(faq), "--loader", LOADER)
    with TestClient(captured["app"], base_url="http://127.0.0.1:8000") as client:
        assert client.post("/search", json={"query": "x"}).status_code == 401
        headers = {"Authorization": "Bearer tok"}
        assert client.post("/search", json={"query": "x"}, headers=headers).status_code == 200
