"""Prometheus metrics for one app (its own registry, so apps never share counters).

Exposed at ``GET /metrics`` in the Prometheus text format:

- ``flipkd_requests_total{endpoint, status}``: requests answered;
- ``flipkd_request_latency_seconds{endpoint}``: time to answer (histogram);
- ``flipkd_batch_size{kind}``: items per model call (histogram);
- ``flipkd_model_seconds{kind}``: time per model call (histogram);
- ``flipkd_queue_depth``: items waiting for the model (gauge);
- ``flipkd_queue_rejections_total``: requests refused with 503 because the queue was full.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """The server's counters, histograms and gauges.

    Args:
        endpoints: Paths reported under their own label; anything else is
            reported as ``other`` (so random paths cannot blow up the label set).
    """

    def __init__(self, endpoints: tuple[str, ...]) -> None:
        self.endpoints = frozenset(endpoints)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flipkd_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flipkd_request_latency_seconds",
            "Seconds from request to response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "flipkd_batch_size",
            "Items per model call, by kind (encode, gen, rep).",
            ["kind"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "flipkd_model_seconds",
            "Seconds per model call, by kind.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "flipkd_queue_depth", "Items waiting for the model.", registry=self.registry
        )
        self.rejections = Counter(
            "flipkd_queue_rejections",
            "Requests refused with 503 because the queue was full.",
            registry=self.registry,
        )
        self.timeouts = Counter(
            "flipkd_request_timeouts",
            "Requests answered 504 because the model did not answer within the request timeout.",
            registry=self.registry,
        )

    def endpoint_label(self, path: str) -> str:
        """Map a request path to a bounded label value."""
        if path in self.endpoints:
            return path
        return "/static" if path.startswith("/static/") else "other"

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        endpoint = self.endpoint_label(path)
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def observe_batch(self, kind: str, size: int, seconds: float) -> None:
        """Record one model call (the batcher's ``on_batch`` hook)."""
        self.batch_size.labels(kind=kind).observe(size)
        self.model_seconds.labels(kind=kind).observe(seconds)

    def track_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth from ``depth`` at every scrape."""
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
