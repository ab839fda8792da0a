"""Prometheus metrics, structured request logs and request ids.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``logreg serve`` sets it before starting workers), every worker
writes its samples to that directory and ``/monitoring/metrics`` aggregates all of them, so a scrape
sees the whole server whichever worker answers it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..registry import ModelRegistry

#: Routes that are not traffic: probes and the scrape itself.
UNCOUNTED = frozenset({"/healthz", "/readyz", "/monitoring/metrics", "/v2/health/live", "/v2/health/ready",
                       "/ping", "/health"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("service.access")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Monitoring:
    """The service's metric families, one set per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("logreg_http_requests_total", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "logreg_http_request_duration_seconds", "HTTP request latency by route and status.",
            ["method", "route", "status"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.predictions = Counter("logreg_predictions_total", "Predicted rows by model, version and class.",
                                   ["model", "version", "predicted_class"], registry=r)
        self.rows = Histogram("logreg_request_rows", "Rows per scoring or training request.", ["route"],
                              registry=r, buckets=(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000))
        self.trainings = Counter("logreg_trainings_total", "Training runs by outcome.", ["model", "outcome"],
                                 registry=r)
        self.training_seconds = Histogram(
            "logreg_training_duration_seconds", "Wall-clock time of successful training runs.", registry=r,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800),
        )
        self.cache_hits = Counter("logreg_registry_cache_hits_total", "Model loads served from memory.", registry=r)
        self.cache_loads = Counter("logreg_registry_loads_total", "Model artefacts read and verified from disk.",
                                   registry=r)
        self.models_loaded = Gauge("logreg_models_loaded", "Model versions held in memory.", registry=r,
                                   multiprocess_mode="livesum")
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: The predictions' series of a version by class index, with the classes array they were made for.
        self._class_children: dict[tuple[str, int], tuple[Any, list[Any]]] = {}

    def watch_registry(self, registry: ModelRegistry) -> None:
        """Count the registry's cache hits and loads as they happen (in every worker process)."""

        def observe(counter: str, n: int, cached: int) -> None:
            if counter == "hits":
                self.cache_hits.inc(n)
            elif counter == "loads":
                self.cache_loads.inc(n)
            self.models_loaded.set(cached)

        registry.observer = observe

    def observe_predictions(self, model: str, version: int, classes: Any, predicted: Any) -> None:
        """Count predicted rows per class; ``predicted`` holds indices into ``classes``."""
        key = (model, version)
        entry = self._class_children.get(key)
        if entry is None or entry[0] is not classes:  # new, reloaded, or a number reused for another version
            if len(self._class_children) > 10_000:  # as in _child: bounded in practice, never without end
                self._class_children.clear()
            entry = self._class_children[key] = (classes, [
                self._child(self.predictions, (model, str(version), str(label))) for label in classes.tolist()])
        children = entry[1]
        predicted = np.asarray(predicted, dtype=np.intp)
        if predicted.shape[0] == 1:  # the common one-row request
            children[predicted[0]].inc()
            return
        for child, n in zip(children, np.bincount(predicted, minlength=len(children)).tolist(), strict=True):
            if n:
                child.inc(n)

    def rows_observed(self, route: str, rows: int) -> None:
        self._child(self.rows, (route,)).observe(rows)

    def request_observed(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self._child(self.requests, labels).inc()
        self._child(self.latency, labels).observe(seconds)

    def _child(self, family: Any, labels: tuple[str, ...]) -> Any:
        """``family.labels(*labels)``, remembered: the lookup and its checks cost more than the update."""
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 100_000:  # label sets are bounded in practice; never grow without end
                self._children.clear()
            child = self._children[key] = family.labels(*labels)
        return child

    def exposition(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate, path=path)
        return generate_latest(aggregate)


router = APIRouter(tags=["health"])


@router.get(
    "/monitoring/metrics",
    summary="Prometheus metrics",
    description="Request counts and latencies per route and status, predictions per model, version and class, "
    "rows per request, training runs and durations, registry cache hits and loads, models loaded, rows and "
    "values outside the training range, and the population stability index per feature.",
    response_class=Response,
)
async def prometheus_metrics(request: Request) -> Response:
    monitoring: Monitoring = request.app.state.monitoring
    request.app.state.drift.publish_all()  # this worker's PSI gauges, up to date
    return Response(monitoring.exposition(), media_type=CONTENT_TYPE_LATEST)


class RequestObserver:
    """ASGI middleware: request id in and out, one JSON log line and the metrics per request."""

    def __init__(self, app: ASGIApp, monitoring: Monitoring) -> None:
        self.app = app
        self.monitoring = monitoring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        # Else 32 random hex digits, like uuid4().hex at a quarter of its cost.
        request_id = given if given and _REQUEST_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                out_of_range = scope.get("state", {}).get("out_of_range_rows")  # set by service/api/drift.py
                if out_of_range is not None and status < 400:
                    message["headers"].append((b"x-out-of-range-rows", b"%d" % out_of_range))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template not in UNCOUNTED:
                self.monitoring.request_observed(scope["method"], template, status, elapsed)
            state = scope.get("state", {})
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={"fields": {
                        "method": scope["method"], "path": scope["path"], "status": status,
                        "duration_ms": round(elapsed * 1000, 3), "model": state.get("model"),
                        "version": state.get("version"), "rows": state.get("rows"), "request_id": request_id,
                    }},
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, json_lines: bool = True) -> None:
    """Send the service's logs to stderr, as JSON lines unless asked otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    logger = logging.getLogger("service")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
