"""The serve bad-input corpus: every file under ``tests/bad_inputs/serve/`` is one case.

- ``http/*.http``: a request (``# expect: STATUS MESSAGE``, ``POST /path``, headers,
  a blank line, then the body bytes as sent). It must get STATUS with MESSAGE in
  the JSON ``detail``, and nothing may reach the model.
- ``faq/*``: an FAQ file; ``faq/expected.json`` maps its name to what follows the
  file's path in the error, e.g. ``":3: question is empty"``. ``flipkd serve`` must
  stop with exactly one line ``error: PATH...`` and exit code 2.

Add a case by adding a file (and, for an FAQ file, its line in ``expected.json``).
The requests run against :data:`LIMITS` and the fake model of ``test_serve_fake``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import flipkd.serve.server as server_module
from flipkd.serve.app import create_app
from flipkd.serve.faq import FaqEntry
from flipkd.serve.index import FaqIndex
from flipkd.serve.schemas import Limits
from test_serve_cli import LOADER, run_cli
from test_serve_fake import FAQ_ROWS, FakeMatcher

CORPUS = Path(__file__).parent / "bad_inputs" / "serve"
HTTP_CASES = sorted((CORPUS / "http").glob("*.http"))
FAQ_EXPECTED = json.loads((CORPUS / "faq" / "expected.json").read_text(encoding="utf-8"))
FAQ_CASES = sorted(p for p in (CORPUS / "faq").iterdir() if p.name != "expected.json")
LIMITS = Limits(max_body_bytes=8192, max_text_chars=200, max_pairs=4, max_k=6)


def read_case(path: Path) -> tuple[str, str, dict[str, str], bytes, int, str]:
    """Parse an ``.http`` case into (method, path, headers, body, status, message)."""
    head, sep, body = path.read_bytes().partition(b"\n\n")
    assert sep, f"{path.name}: no blank line between the headers and the body"
    lines = head.decode("utf-8").splitlines()
    expect = [line.removeprefix("# expect:").strip() for line in lines if line.startswith("#")]
    status, _, message = expect[0].partition(" ")
    request = [line for line in lines if not line.startswith("#")]
    method, target = request[0].split()
    headers = dict(line.split(": ", 1) for line in request[1:])
    return method, target, headers, body, int(status), message


@pytest.fixture(scope="module")
def corpus_client():
    fake = FakeMatcher()
    index = FaqIndex.build([FaqEntry(*r) for r in FAQ_ROWS], FakeMatcher().encode)
    with TestClient(create_app(fake, index, limits=LIMITS)) as client:
        yield client, fake


def test_the_corpus_is_there():
    assert len(HTTP_CASES) >= 40 and len(FAQ_CASES) >= 30
    assert sorted(FAQ_EXPECTED) == sorted(p.name for p in FAQ_CASES)


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda p: p.stem)
def test_bad_request_gets_a_clear_4xx(corpus_client, case):
    client, fake = corpus_client
    method, target, headers, body, status, message = read_case(case)
    calls_before = len(fake.calls)
    response = client.request(method, target, content=body, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert message in detail and "\n" not in detail
    assert len(fake.calls) == calls_before  # nothing bad reaches the model
    ok = client.post("/search", json={"query": "reset password"})  # the server still serves
    assert ok.status_code == 200


@pytest.fixture
def no_server(monkeypatch) -> dict:
    started: dict = {}
    monkeypatch.setattr(server_module, "run_server", lambda app, **kw: started.update(app=app))
    return started


@pytest.mark.parametrize("case", FAQ_CASES, ids=lambda p: p.name)
def test_bad_faq_stops_serve_with_one_line(monkeypatch, tmp_path, capsys, no_server, case):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(monkeypatch, "serve", str(tmp_path), "--faq", str(case), "--loader", LOADER)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {case}{FAQ_EXPECTED[case.name]}"), lines[0]
    assert not no_server


def test_lone_surrogate_faq_through_the_real_command(tmp_path):
    """The installed entry point, in a subprocess: one line, exit 2, no traceback."""
    faq = CORPUS / "faq" / "lone-surrogate-question.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "flipkd", "serve", str(tmp_path), "--faq", str(faq)]
    done = subprocess.run(
        [*command, "--loader", LOADER], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {faq}{FAQ_EXPECTED[faq.name]}")
