"""The FastAPI app: FAQ search, pair matching, health, metrics and a web page.

``create_app(matcher, index)`` wires a :class:`~flipkd.serve.protocol.Matcher`
and a :class:`~flipkd.serve.index.FaqIndex` to a :class:`MicroBatcher`; the
batcher starts and drains with the app's lifespan. Only this package imports
FastAPI.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from flipkd.modes import RERANK_WEIGHT_DEFAULT
from flipkd.serve.batcher import BatcherClosedError, MicroBatcher, QueueFullError
from flipkd.serve.index import FaqIndex, Hit
from flipkd.serve.metrics import CONTENT_TYPE, ServeMetrics
from flipkd.serve.middleware import MetricsMiddleware, SecurityHeadersMiddleware
from flipkd.serve.protocol import Matcher
from flipkd.serve.ranking import (
    mixed_scores,
    model_handlers,
    order_by_scores,
    rerank_pairs,
    search_depth,
    served_modes,
)
from flipkd.serve.schemas import (
    ApiError,
    Limits,
    MatchRequest,
    MatchResponse,
    PairScore,
    SearchHit,
    SearchRequest,
    SearchResponse,
    parse_body,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
ENDPOINTS = ("/", "/search", "/match", "/healthz", "/metrics")
RETRY_AFTER_S = "1"


@dataclass
class ServeState:
    """Everything a request handler needs, stored on ``app.state.serve``."""

    matcher: Matcher
    index: FaqIndex
    batcher: MicroBatcher
    metrics: ServeMetrics
    limits: Limits
    token: str | None
    request_timeout_s: float | None = None
    rerank_weight: float = RERANK_WEIGHT_DEFAULT  # for requests that leave it out


def _state(request: Request) -> ServeState:
    return request.app.state.serve


def require_token(request: Request) -> None:
    """401 unless the request carries ``Authorization: Bearer <token>`` (when a token is set)."""
    token = _state(request).token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    ):
        raise ApiError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "charset":
            return value.strip().strip('"')
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """Read a JSON body, refusing (413) as soon as it exceeds ``limit`` bytes.

    Only ``Content-Type: application/json`` is accepted (else 415): browsers must
    then ask before sending from another origin, which this server never allows.
    A charset other than UTF-8 or a compressed body (``Content-Encoding`` other
    than identity) is refused (415).
    """
    media_type, _, params = request.headers.get("content-type", "").lower().partition(";")
    if media_type.strip() != "application/json":
        raise ApiError(415, "send the body as Content-Type: application/json")
    charset = _charset(params)
    if charset not in (None, "utf-8", "utf8"):
        raise ApiError(415, f"charset {charset!r} is not supported; send UTF-8")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported; send plain JSON")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body over {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as err:
        raise ApiError(400, "client disconnected while sending the body") from err
    return b"".join(chunks)


async def submit(state: ServeState, kind: str, payloads: Sequence[Any]) -> list[Any]:
    """Run ``payloads`` through the batcher; overload and shutdown become 503, a model that
    does not answer within the request timeout 504 (its items not yet started are dropped)."""
    timeout = state.request_timeout_s
    try:
        return await asyncio.wait_for(state.batcher.submit(kind, payloads), timeout)
    except TimeoutError as err:
        state.metrics.timeouts.inc()
        raise ApiError(
            504, f"the model did not answer within {timeout:g} s", {"Retry-After": RETRY_AFTER_S}
        ) from err
    except QueueFullError as err:
        state.metrics.rejections.inc()
        raise ApiError(503, f"server busy: {err}", {"Retry-After": RETRY_AFTER_S}) from err
    except BatcherClosedError as err:
        raise ApiError(503, str(err), {"Retry-After": RETRY_AFTER_S}) from err


async def _rerank(
    state: ServeState, query: str, hits: list[Hit], weight: float
) -> list[tuple[Hit, float, float | None]]:
    labels = await submit(state, "gen", rerank_pairs(state.index, query, hits))
    by_position = {h.position: label for h, label in zip(hits, labels, strict=True)}
    scores = mixed_scores([h.score for h in hits], labels, weight)
    return [(h, s, by_position[h.position]) for h, s in order_by_scores(hits, scores)]


async def search(request: Request) -> SearchResponse:
    """Top-k FAQ entries by cosine, optionally re-ranked by the generated-label score."""
    state = _state(request)
    body = parse_body(
        await read_body(request, state.limits.max_body_bytes), SearchRequest, state.limits
    )
    [vector] = await submit(state, "encode", [body.query])
    depth = search_depth(body.k, body.rerank, state.limits.rerank_candidates)
    hits = state.index.search(vector, depth)
    weight = state.rerank_weight if body.rerank_weight is None else body.rerank_weight
    if body.rerank:
        scored = await _rerank(state, body.query, hits, weight)
    else:
        scored = [(h, h.score, None) for h in hits]
    results = []
    for rank, (hit, score, label) in enumerate(scored[: body.k], start=1):
        entry = state.index.entries[hit.position]
        results.append(
            SearchHit(
                rank=rank,
                id=entry.id,
                question=entry.question,
                answer=entry.answer,
                score=score,
                cosine=hit.score,
                label_score=label,
            )
        )
    return SearchResponse(
        query=body.query, k=body.k, rerank=body.rerank, rerank_weight=weight,
        results=results,
    )  # fmt: skip


async def match(request: Request) -> MatchResponse:
    """Score each pair in ``mode``; label = score >= the matcher's threshold for that mode."""
    state = _state(request)
    body = parse_body(
        await read_body(request, state.limits.max_body_bytes), MatchRequest, state.limits
    )
    if body.mode not in state.matcher.threshold:
        raise ApiError(
            422, f"mode {body.mode!r}: this model has no dev scales for it (modes: "
            f"{', '.join(served_modes(state.matcher))}); export it after `flipkd eval RUN "
            "--split dev --mode mix`",
        )  # fmt: skip
    threshold = float(state.matcher.threshold[body.mode])
    scores = await submit(state, body.mode, [(a, b) for a, b in body.pairs])
    results = [PairScore(score=s, label=s >= threshold) for s in scores]
    return MatchResponse(mode=body.mode, threshold=threshold, results=results)


async def healthz(request: Request) -> JSONResponse:
    """200 while serving; 503 while draining, or while one model call has been running for
    longer than the request timeout (a stalled replica: take it out of the pool)."""
    state = _state(request)
    if not state.batcher.running:
        return JSONResponse({"status": "draining"}, status_code=503)
    busy, timeout = state.batcher.busy_seconds, state.request_timeout_s
    if timeout is not None and busy > timeout:
        return JSONResponse(
            {"status": "stalled", "model_call_seconds": round(busy, 1)}, status_code=503
        )
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


async def _api_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, ApiError)
    return JSONResponse({"detail": err.message}, status_code=err.status, headers=err.headers)


async def _internal_error(request: Request, err: Exception) -> JSONResponse:
    log.error("unhandled error on %s: %r", request.url.path, err)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _lifespan(state: ServeState, drain_timeout_s: float):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.batcher.start()
        log.info("serving %s with %d FAQ entries", state.matcher.name, len(state.index))
        try:
            yield
        finally:
            await state.batcher.close(timeout=drain_timeout_s)

    return lifespan


def create_app(
    matcher: Matcher,
    index: FaqIndex,
    *,
    limits: Limits | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    max_queue: int = 256,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    drain_timeout_s: float = 30.0,
    request_timeout_s: float | None = 60.0,
    rerank_weight: float = RERANK_WEIGHT_DEFAULT,
) -> FastAPI:
    """Build the app.

    Args:
        matcher: The model (called from one worker thread, one batch at a time).
        index: The FAQ index built with ``matcher.encode``.
        limits: Request limits (defaults: :class:`Limits`).
        max_batch: Most items per model call.
        max_wait_ms: How long a batch waits to fill.
        max_queue: Most items waiting; more gets 503 with Retry-After.
        token: If set, every endpoint but ``/healthz`` and the web page needs
            ``Authorization: Bearer <token>``.
        allowed_hosts: If set, requests with another ``Host`` header get 400
            (defends a loopback server against DNS rebinding).
        drain_timeout_s: How long shutdown waits for queued work.
        request_timeout_s: Longest wait for the model per request (queue included) before
            504; ``/healthz`` reports 503 "stalled" while one model call runs longer than
            this. None or 0: no limit.
        rerank_weight: ``/search``'s ``rerank_weight`` for requests that leave it out.
    """
    if request_timeout_s is not None and request_timeout_s < 0:
        raise ValueError("request_timeout_s must be >= 0 (0: no limit)")
    if not 0 <= rerank_weight <= 1:
        raise ValueError(f"rerank_weight must lie in [0, 1], not {rerank_weight}")
    limits = limits or Limits()
    largest = max(limits.max_pairs, limits.rerank_candidates)
    if max_queue < largest:
        log.warning(
            "queue of %d items: requests with %d items will always get 503", max_queue, largest
        )
    app_metrics = ServeMetrics(ENDPOINTS)
    batcher = MicroBatcher(
        model_handlers(matcher),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        on_batch=app_metrics.observe_batch,
    )
    app_metrics.track_queue(lambda: batcher.depth)
    state = ServeState(
        matcher, index, batcher, app_metrics, limits, token or None, request_timeout_s or None,
        rerank_weight,
    )  # fmt: skip
    app = FastAPI(
        title="flipkd",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=_lifespan(state, drain_timeout_s),
    )
    app.state.serve = state
    _mount(app, matcher, app_metrics, allowed_hosts)
    return app


def _mount(
    app: FastAPI, matcher: Matcher, app_metrics: ServeMetrics, allowed_hosts: list[str] | None
) -> None:
    """The routes, the web page, the error handlers and the middleware of :func:`create_app`."""
    guarded = [Depends(require_token)]
    app.add_api_route("/search", search, methods=["POST"], dependencies=guarded)
    app.add_api_route("/match", match, methods=["POST"], dependencies=guarded)
    app.add_api_route("/metrics", metrics, methods=["GET"], dependencies=guarded)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if "mix" in served_modes(matcher):  # the page offers the mix mode where the model has it
        page = page.replace("<!--mix-->", '<option value="mix">label + cosine (mix)</option>')
    app.add_api_route("/", lambda: HTMLResponse(page), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Exception, _internal_error)
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app_metrics)
