"""The real server on loopback: graceful shutdown drains requests in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flipkd.serve.app import create_app
from flipkd.serve.faq import FaqEntry
from flipkd.serve.index import FaqIndex
from flipkd.serve.server import background_server, is_loopback
from test_serve_fake import FAQ_ROWS, FakeMatcher


def test_shutdown_drains_requests_in_flight():
    # the gate holds the first model call until all four requests are in (one in the model,
    # three queued) however slowly a loaded machine delivers them; a fixed delay alone let
    # the first call finish before the fourth arrived
    fake = FakeMatcher(delay_s=0.25, gate=threading.Event())
    index = FaqIndex.build([FaqEntry(*r) for r in FAQ_ROWS], FakeMatcher().encode)
    app = create_app(fake, index, max_batch=1, max_wait_ms=0)
    batcher = app.state.serve.batcher
    body = {"pairs": [["reset my password", "how do I reset my password"]]}
    with background_server(app) as server, ThreadPoolExecutor(4) as pool:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        futures = [
            pool.submit(httpx.post, f"{server.url}/match", json=body, timeout=10) for _ in range(4)
        ]
        deadline = time.monotonic() + 9  # under the gate's own 10 s
        while not (fake.calls and batcher.depth == 3):  # one in the model, three queued
            assert time.monotonic() < deadline
            time.sleep(0.005)
        fake.gate.set()  # the call in flight still takes 0.25 s: shutdown begins during it
        server.stop()
        responses = [f.result() for f in futures]
        assert not server.thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=2)
    assert [r.status_code for r in responses] == [200] * 4
    assert all(r.json()["results"][0]["label"] for r in responses)
    assert len(fake.calls) == 4 and not batcher.running


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("x.org", False)],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
