"""The HTTP API through FastAPI's TestClient: every endpoint and every bad input."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from flipkd.modes import RERANK_WEIGHT_DEFAULT
from flipkd.serve.app import create_app
from flipkd.serve.faq import FaqEntry
from flipkd.serve.index import FaqIndex
from flipkd.serve.ranking import mixed_scores
from flipkd.serve.schemas import Limits
from test_serve_fake import FAQ_ROWS, ContraryMatcher, FakeMatcher

JSON = {"content-type": "application/json"}
LIMITS = Limits(max_body_bytes=4096, max_text_chars=200, max_pairs=4, max_k=6)


def make_client(fake: FakeMatcher | None = None, **settings) -> tuple[TestClient, FakeMatcher]:
    fake = fake or FakeMatcher()
    index = FaqIndex.build([FaqEntry(*r) for r in FAQ_ROWS], FakeMatcher(dim=fake.dim).encode)
    settings.setdefault("limits", LIMITS)
    raise_errors = settings.pop("raise_server_exceptions", True)
    app = create_app(fake, index, **settings)
    return TestClient(app, raise_server_exceptions=raise_errors), fake


@pytest.fixture
def api():
    client, fake = make_client()
    with client:
        yield client, fake


def test_healthz_page_and_static(api):
    client, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "https://" not in page.text  # no CDN
    # the page's label weight starts empty: the server's default unless the user types one
    assert 'id="rerank-weight" type="number" min="0" max="1" step="0.1" placeholder="default">' in (
        page.text
    )
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/nope").status_code == 404
    assert 'value="mix"' not in page.text  # this model has no mix scales: not offered


def test_the_page_offers_the_mix_mode_where_the_model_has_it():
    fake = FakeMatcher()
    fake.threshold = {**fake.threshold, "mix": 0.1}
    client, _ = make_client(fake)
    with client:
        assert '<option value="mix">label + cosine (mix)</option>' in client.get("/").text
    assert client.get("/search").status_code == 405


def test_search_returns_top_k_by_cosine(api):
    client, fake = api
    response = client.post("/search", json={"query": "reset password", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["k"] == 3 and body["rerank"] is False and len(body["results"]) == 3
    top = body["results"][0]
    assert top["id"] == "pw" and top["rank"] == 1 and top["answer"] == FAQ_ROWS[0][2]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    expected = float(fake._embed(["reset password"])[0] @ fake._embed([FAQ_ROWS[0][1]])[0])
    assert top["cosine"] == pytest.approx(expected, abs=1e-5) and top["score"] == top["cosine"]
    assert response.headers["cache-control"] == "no-store"


def test_search_rerank_orders_by_generated_score(api):
    client, fake = api
    ask = {"query": "cancel order refund", "k": 4, "rerank": True, "rerank_weight": 1.0}
    body = client.post("/search", json=ask)
    results = body.json()["results"]
    assert len(results) == 4
    gen = fake.score_pairs([("cancel order refund", r["question"]) for r in results], mode="gen")
    np.testing.assert_allclose([r["score"] for r in results], gen, rtol=1e-6)
    assert list(gen) == sorted(gen, reverse=True)
    assert fake.calls_of("gen")[0] == len(FAQ_ROWS)  # rerank_candidates (20) capped by the FAQ
    assert [r["label_score"] for r in results] == [r["score"] for r in results]
    assert body.json()["rerank_weight"] == 1.0


def test_search_rerank_weight_mixes_the_cosine_back_in():
    """With a label that ranks against the cosine: rerank_weight 1 orders by the label, 0 gives
    the cosine order back, in between the mixed score orders the results; each result keeps
    its own cosine and label score."""
    client, fake = make_client(ContraryMatcher())
    ask = {"query": "cancel order refund", "k": 6}
    with client:
        plain = client.post("/search", json=ask).json()["results"]
        answers = {
            w: client.post("/search", json={**ask, "rerank": True, "rerank_weight": w}).json()
            for w in (0.0, 0.3, 0.7, 1.0)
        }  # fmt: skip
    ids = {w: [r["id"] for r in a["results"]] for w, a in answers.items()}
    assert ids[0.0] == [r["id"] for r in plain] != ids[1.0]
    assert answers[0.0]["rerank_weight"] == 0.0
    for w, answer in answers.items():
        results = answer["results"]
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True), w
        pairs = [("cancel order refund", r["question"]) for r in results]
        label = fake.score_pairs(pairs, mode="gen")
        np.testing.assert_allclose([r["label_score"] for r in results], label, rtol=1e-6)
    label_order = [r["label_score"] for r in answers[1.0]["results"]]
    assert label_order == sorted(label_order, reverse=True)
    # this label's logit is −8·(cosine − 0.4): standardised, the two are opposite, so below
    # w = 0.5 the cosine's order wins and above it the label's
    assert ids[0.3] == ids[0.0] and ids[0.7] == ids[1.0]
    assert all(r["label_score"] is None for r in plain)


class LengthMatcher(FakeMatcher):
    """A fake whose generated label follows the FAQ question's length, not the cosine: a mix
    of the two orders differs from either."""

    def score_pairs(self, pairs: list[tuple[str, str]], mode: str = "gen") -> np.ndarray:
        scores = super().score_pairs(pairs, mode)
        if mode == "rep":
            return scores
        return 1.0 / (1.0 + np.exp(-(np.array([len(b) for _, b in pairs]) / 8.0 - 4.0)))


def test_search_rerank_by_default_mixes_at_the_default_weight():
    """A re-ranking request without rerank_weight is served at RERANK_WEIGHT_DEFAULT (chosen on
    dev FAQs, not 1): its scores are the mixed scores of the candidates' cosine and label."""
    limits = dataclasses.replace(LIMITS, max_k=len(FAQ_ROWS))
    client, _ = make_client(LengthMatcher(), limits=limits)
    ask = {"query": "cancel order refund", "k": len(FAQ_ROWS), "rerank": True}
    with client:
        default = client.post("/search", json=ask).json()
        explicit = client.post("/search", json={**ask, "rerank_weight": RERANK_WEIGHT_DEFAULT})
        by = {w: client.post("/search", json={**ask, "rerank_weight": w}).json() for w in (0, 1)}
    assert 0 < RERANK_WEIGHT_DEFAULT < 1 and default["rerank_weight"] == RERANK_WEIGHT_DEFAULT
    assert default["results"] == explicit.json()["results"]
    ids = [r["id"] for r in default["results"]]
    assert ids != [r["id"] for r in by[0]["results"]] and ids != [r["id"] for r in by[1]["results"]]
    results = default["results"]  # every FAQ entry: the mix standardises over all of them
    mixed = mixed_scores([r["cosine"] for r in results], [r["label_score"] for r in results],
                         RERANK_WEIGHT_DEFAULT)  # fmt: skip
    np.testing.assert_allclose([r["score"] for r in results], mixed, rtol=1e-5, atol=1e-6)
    assert np.ptp(mixed) > 1
    # a server started with another default serves it to requests that leave it out
    client, _ = make_client(LengthMatcher(), limits=limits, rerank_weight=0.0)
    with client:
        by_cosine = client.post("/search", json=ask).json()
    assert by_cosine["rerank_weight"] == 0.0
    assert [r["id"] for r in by_cosine["results"]] == [r["id"] for r in by[0]["results"]]
    with pytest.raises(ValueError, match="rerank_weight must lie in"):
        make_client(rerank_weight=1.5)


@pytest.mark.parametrize("mode", ["gen", "rep"])
def test_match_scores_and_labels(api, mode):
    client, fake = api
    pairs = [["reset my password", "how do I reset my password"], ["opening hours", "ship abroad"]]
    body = client.post("/match", json={"pairs": pairs, "mode": mode}).json()
    expected = fake.score_pairs([tuple(p) for p in pairs], mode=mode)
    assert body["mode"] == mode and body["threshold"] == fake.threshold[mode]
    np.testing.assert_allclose([r["score"] for r in body["results"]], expected, rtol=1e-6)
    assert [r["label"] for r in body["results"]] == [s >= fake.threshold[mode] for s in expected]
    assert body["results"][0]["label"] and not body["results"][1]["label"]


def test_match_in_the_mix_mode_needs_a_model_with_dev_scales(api):
    client, fake = api
    pairs = [["reset my password", "how do I reset my password"]]
    response = client.post("/match", json={"pairs": pairs, "mode": "mix"})
    assert response.status_code == 422
    assert "this model has no dev scales for it (modes: gen, rep)" in response.json()["detail"]
    assert client.post("/match", json={"pairs": pairs, "mode": "both"}).status_code == 422


def test_metrics_in_prometheus_format(api):
    client, _ = api
    client.post("/search", json={"query": "reset password"})
    client.post("/search", content=b"{oops", headers=JSON)
    text = client.get("/metrics").text
    assert 'flipkd_requests_total{endpoint="/search",status="200"} 1.0' in text
    assert 'flipkd_requests_total{endpoint="/search",status="400"} 1.0' in text
    assert 'flipkd_request_latency_seconds_bucket{endpoint="/search",le="+Inf"} 2.0' in text
    assert 'flipkd_batch_size_count{kind="encode"} 1.0' in text
    assert "flipkd_queue_depth 0.0" in text


# The bad request bodies themselves are files in tests/bad_inputs/serve/http/,
# run by test_serve_bad_inputs.py.


def _send_together(client, fake, bodies: list[tuple[str, bytes]], queued: int) -> list:
    """Hold the model busy, send ``bodies`` concurrently, then let one batch take them all.

    ``queued`` is how many items reach the queue (bad requests are refused before).
    """
    batcher = client.app.state.serve.batcher
    calls_before = len(fake.calls)
    fake.gate.clear()
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        busy = pool.submit(client.post, "/search", json={"query": "hold the model"})
        _wait_for(lambda: len(fake.calls) > calls_before)
        futures = [pool.submit(client.post, p, content=b, headers=JSON) for p, b in bodies]
        _wait_for(lambda: batcher.depth == queued)
        fake.gate.set()
        responses = [f.result() for f in futures]
        assert busy.result().status_code == 200
    return responses


def test_a_lone_surrogate_never_fails_other_requests():
    """Issue 15: 6 valid /search requests sent with one lone-surrogate request, three times."""
    client, fake = make_client(FakeMatcher(gate=threading.Event()), max_batch=32, max_wait_ms=50)
    valid = [("/search", f'{{"query": "refund {i}"}}'.encode()) for i in range(6)]
    bad = ("/search", b'{"query": "a\\ud800b"}')
    with client:
        for _ in range(3):
            calls_before = len(fake.calls)
            responses = _send_together(client, fake, [*valid[:3], bad, *valid[3:]], queued=6)
            assert fake.calls[calls_before + 1] == ("encode", 6)  # the valid ones shared a call
            assert [r.status_code for r in responses] == [200] * 3 + [422] + [200] * 3
            assert "query has a lone surrogate" in responses[3].json()["detail"]
            assert all(r.json()["results"][0]["id"] == "refund" for r in responses if r.is_success)


def test_a_text_the_model_fails_on_errs_alone():
    """A batch that still raises is retried item by item: only the guilty request gets 500."""
    fake = FakeMatcher(gate=threading.Event(), poison="boom")
    client, _ = make_client(fake, max_batch=32, max_wait_ms=50, raise_server_exceptions=False)
    bodies = [("/search", f'{{"query": "hours {i}"}}'.encode()) for i in range(4)]
    bodies += [
        ("/search", b'{"query": "boom"}'),
        ("/match", b'{"pairs": [["a b", "a c"], ["x", "boom y"]]}'),
        ("/match", b'{"pairs": [["cancel order", "cancel my order"]]}'),
    ]
    with client:
        responses = _send_together(client, fake, bodies, queued=8)
        assert client.post("/search", json={"query": "still serving"}).status_code == 200
    # one failed call per kind, then each of its items alone (which kind the batcher serves
    # first depends on when the requests land: the order between kinds is not checked)
    calls = fake.calls[1:-1]
    assert [c for c in calls if c[0] == "encode"] == [("encode", 5)] + [("encode", 1)] * 5
    assert [c for c in calls if c[0] == "gen"] == [("gen", 3)] + [("gen", 1)] * 3
    assert len(calls) == 10
    assert [r.status_code for r in responses] == [200] * 4 + [500, 500, 200]
    assert responses[4].json() == {"detail": "internal server error"}
    assert all(r.json()["results"][0]["id"] == "hours" for r in responses[:4])
    assert responses[6].json()["results"][0]["label"] is True


def test_valid_non_bmp_text_is_served(api):
    client, _ = api
    body = b'{"query": "reset password \\ud83d\\ude00 \xf0\x9f\x98\x80"}'
    response = client.post("/search", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["query"] == "reset password \U0001f600 \U0001f600"


def test_faq_without_answers_gives_null_answers():
    index = FaqIndex.build([FaqEntry(i, q) for i, q, _ in FAQ_ROWS], FakeMatcher().encode)
    with TestClient(create_app(FakeMatcher(), index, limits=LIMITS)) as client:
        hit = client.post("/search", json={"query": "opening hours", "k": 1}).json()["results"][0]
    assert hit["id"] == "hours" and hit["answer"] is None


def test_deeply_nested_json_is_a_400():
    client, _ = make_client(limits=Limits(max_body_bytes=1 << 20))
    with client:
        body = b'{"query": ' + b"[" * 100_000 + b"}"
        response = client.post("/search", content=body, headers=JSON)
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_chunked_oversized_body_is_413(api):
    client, _ = api

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = client.post("/search", content=chunks(), headers=JSON)
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_only_json_content_type_is_accepted(api, content_type):
    client, fake = api
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/search", content=b'{"query": "x"}', headers=headers)
    assert response.status_code == 415 and "application/json" in response.json()["detail"]
    ok = client.post(
        "/search",
        content=b'{"query": "x"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=UTF-8", 'Application/JSON; charset="utf-8"', "application/json;"],
)
def test_utf8_charsets_and_a_leading_bom_are_accepted(api, content_type):
    client, _ = api
    body = b'\xef\xbb\xbf{"query": "opening hours"}'
    response = client.post("/search", content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == "hours"


def test_allowed_hosts_refuse_other_host_headers():
    client, _ = make_client(allowed_hosts=["127.0.0.1", "localhost"])
    with client:
        assert client.get("/healthz").status_code == 400  # Host: testserver
        assert client.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200
        evil = client.post("/search", json={"query": "x"}, headers={"host": "evil.example"})
        assert evil.status_code == 400


def test_bearer_token():
    client, _ = make_client(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    with client:
        for path, method in [("/search", "post"), ("/match", "post"), ("/metrics", "get")]:
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
                response = getattr(client, method)(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/metrics", headers=good).status_code == 200
        ok = client.post("/search", json={"query": "refund"}, headers=good)
        assert ok.status_code == 200 and ok.json()["results"][0]["id"] == "refund"


def test_full_queue_answers_503_with_retry_after():
    gate = threading.Event()
    client, fake = make_client(FakeMatcher(gate=gate), max_batch=1, max_wait_ms=0, max_queue=2)
    batcher = client.app.state.serve.batcher
    body = {"pairs": [["a", "b"]]}
    with client, ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/match", json=body)
        _wait_for(lambda: len(fake.calls) == 1)  # the model is busy with the first request
        queued = [pool.submit(client.post, "/match", json=body) for _ in range(2)]
        _wait_for(lambda: batcher.depth == 2)
        refused = client.post("/match", json=body)
        gate.set()
        statuses = [f.result().status_code for f in [first, *queued]]
        metrics = client.get("/metrics").text
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "server busy" in refused.json()["detail"]
    assert statuses == [200, 200, 200]
    assert "flipkd_queue_rejections_total 1.0" in metrics


def test_concurrent_requests_are_batched():
    client, fake = make_client(FakeMatcher(delay_s=0.05), max_batch=32, max_wait_ms=20)
    with client, ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(client.post, "/search", json={"query": f"q{i}"}) for i in range(16)]
        assert all(f.result().status_code == 200 for f in futures)
    assert sum(fake.calls_of("encode")) == 16
    assert len(fake.calls_of("encode")) < 16 / 2


def test_non_finite_embedding_fails_only_its_request():
    class NanOnWord(FakeMatcher):
        def encode(self, texts):
            vectors = super().encode(texts)
            vectors[["nan" in t.split() for t in texts]] = np.nan
            return vectors

    fake = NanOnWord(gate=threading.Event())
    client, _ = make_client(fake, max_wait_ms=50, raise_server_exceptions=False)
    bodies = [("/search", b'{"query": "give me nan"}'), ("/search", b'{"query": "refund"}')]
    with client:
        bad, good = _send_together(client, fake, bodies, queued=2)
    assert bad.status_code == 500 and good.status_code == 200
    assert good.json()["results"][0]["id"] == "refund"


def test_model_failure_is_a_500_without_details():
    class Broken(FakeMatcher):
        def score_pairs(self, pairs, mode="gen"):
            raise RuntimeError("secret internals")

    client, _ = make_client(Broken(), raise_server_exceptions=False)
    with client:
        response = client.post("/match", json={"pairs": [["a", "b"]]})
        assert client.post("/search", json={"query": "x"}).status_code == 200
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_a_hung_model_call_gives_504_and_a_stalled_health():
    """A model call that never returns: requests get 504 after the request timeout (queued
    work of timed-out requests is dropped), /healthz says 503 'stalled' so a load balancer
    takes the replica out, and both recover when the call returns."""
    gate = threading.Event()
    client, fake = make_client(FakeMatcher(gate=gate), request_timeout_s=0.3, max_wait_ms=0)
    with client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/search", json={"query": "reset password"})
        deadline = time.monotonic() + 5
        while fake.active == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = pool.submit(client.post, "/search", json={"query": "opening hours"})
        for response in (first.result(timeout=5), queued.result(timeout=5)):
            assert response.status_code == 504, response.text
            assert response.json()["detail"] == "the model did not answer within 0.3 s"
            assert response.headers["retry-after"] == "1"
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "stalled"
        assert health.json()["model_call_seconds"] >= 0.3
        gate.set()
        deadline = time.monotonic() + 5
        while fake.active and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/search", json={"query": "reset password"}).status_code == 200
        assert "flipkd_request_timeouts_total 2.0" in client.get("/metrics").text
    assert fake.calls_of("encode") == [1, 1]  # the timed-out queued query never ran


def test_request_timeout_zero_means_no_limit():
    client, _ = make_client(FakeMatcher(delay_s=0.2), request_timeout_s=0)
    with client:
        assert client.post("/search", json={"query": "refund"}).status_code == 200
    with pytest.raises(ValueError, match="request_timeout_s"):
        make_client(request_timeout_s=-1)
