"""Prometheus metrics in a per-app registry, and the two ASGI middlewares that feed and guard it.

``TelemetryMiddleware`` counts every request by route template, method and status and
times it (every label takes a bounded set of values: a client cannot add series);
``BodyLimitMiddleware`` answers 413 as soon as a body is known to be too big
(its Content-Length, or the bytes streamed so far) without reading the rest.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Any other method (uvicorn/h11 accept any token, e.g. "FOO") is counted as "other".
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of every path no route matches


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/models/{name}/predict``), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class ServerMetrics:
    """The server's metrics, registered in their own registry (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("imgcls_http_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("imgcls_http_request_duration_seconds", "Time to answer a request.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("imgcls_batch_size", "Images per model call (micro-batch size).",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.errors = Counter("imgcls_errors", "Error answers and failed images by code.", ["code"],
                              registry=r)
        self.images = Counter("imgcls_images_predicted", "Images given predictions.", ["model"],
                              registry=r)
        self.model_info = Gauge("imgcls_model_info", "The loaded version of each model (value 1).",
                                ["model", "version", "backend"], registry=r)
        self.drift_score = Gauge("imgcls_drift_score", "Last drift comparison of a model version's recent "
                                 "images with its test split: the largest KS distance.",
                                 ["model", "version"], registry=r)
        self.drift = Gauge("imgcls_drift", "1 when a model version's recent images drifted from its test "
                           "split at the last comparison, else 0.", ["model", "version"], registry=r)

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_size.labels(model).observe(size)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TelemetryMiddleware:
    """Request count and latency by route template and known method (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_label(scope)
            self.metrics.requests.labels(route, method_label(scope["method"]), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes``, checked before and while they stream in."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServerMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    def _too_large(self, size: str) -> ApiError:
        return ApiError(413, "payload_too_large", f"The request body is {size} bytes, over the limit of "
                        f"{self.max_bytes:,} bytes (max_upload_bytes).")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > self.max_bytes:
            err = self._too_large(f"{int(length):,}")
            if self.metrics is not None:  # raised inside the app, the error handler counts it
                self.metrics.errors.labels(err.code).inc()
            await error_response(err.status, err.code, err.message)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large(f"more than {self.max_bytes:,}")
            return message

        await self.app(scope, limited_receive, send)
