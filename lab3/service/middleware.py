"""What every request passes through (Guard: the body limit, each request's status and
latency) and the Prometheus metrics it records (Metrics, with the model watcher's state)."""

from __future__ import annotations

import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from lab3.service.prediction_log import PredictionLog
from lab3.service.watcher import ModelWatcher

ENDPOINTS = ("/health", "/ready", "/model", "/predict", "/predict/image", "/metrics")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"body: larger than the limit of {limit} bytes")


class Metrics:
    """Request counters and latency per endpoint, plus the watcher's state at scrape time."""

    def __init__(self, watcher: ModelWatcher, log: PredictionLog | None = None):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "service_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "service_request_seconds",
            "Time to answer",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.rows = Counter(
            "service_predicted_rows", "Rows or images predicted", registry=self.registry
        )
        self.batch_requests = Histogram(
            "service_batch_requests",
            "Requests per model call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "service_model_call_seconds",
            "Time in the model per call",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )

        self.registry.register(_StateCollector(watcher, log))

    def model_call(self, requests: int, rows: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.rows.inc(rows)
        self.model_seconds.observe(seconds)


class _StateCollector:
    """The watcher's state, and what the prediction log did, at scrape time."""

    def __init__(self, watcher: ModelWatcher, log: PredictionLog | None):
        self.watcher, self.log = watcher, log

    def collect(self):
        watcher, model = self.watcher, self.watcher.current
        ready = GaugeMetricFamily("service_model_ready", "1 once a model is loaded")
        ready.add_metric([], 1.0 if model else 0.0)
        yield ready
        info = GaugeMetricFamily("service_model_info", "The served model", labels=["uri"])
        if model:
            info.add_metric([model.info.uri], 1.0)
        yield info
        yield GaugeMetricFamily(
            "service_model_loads", "Successful model loads", value=watcher.loads
        )
        yield GaugeMetricFamily(
            "service_model_load_failures", "Failed resolves or loads", value=watcher.failures
        )
        if self.log is not None:
            rows = CounterMetricFamily(
                "service_prediction_log_rows",
                "Predicted rows by what the log did",
                labels=["outcome"],
            )
            for outcome, count in self.log.rows.items():
                rows.add_metric([outcome], count)
            yield rows


class Guard:
    """Pure ASGI middleware (cheap, unlike BaseHTTPMiddleware): refuses bodies over the limit
    (by Content-Length, and by counting when the length is not declared) and records each
    request's status and latency."""

    def __init__(self, app, max_body_bytes: int, metrics: Metrics):
        self.app = app
        self.limit = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = 500
        limit = self.limit
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            if declared.isdigit():
                error = BodyTooLarge(limit)
            else:
                error = HTTPException(400, "bad Content-Length header")
            status = error.status_code
            await JSONResponse({"detail": error.detail}, status)(scope, receive, send)
            self._record(endpoint, status, started)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        finally:
            self._record(endpoint, status, started)

    def _record(self, endpoint: str, status: int, started: float) -> None:
        self.metrics.requests.labels(endpoint, str(status)).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
