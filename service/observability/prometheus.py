"""The service's Prometheus metric families, one set per app.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``logreg serve`` sets it before starting several workers), every
worker writes its samples to that directory and :meth:`Monitoring.exposition` aggregates all of them,
so a scrape sees the whole server whichever worker answers it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..store.registry import ModelRegistry

#: Routes that are not traffic: probes and the scrape itself.
UNCOUNTED = frozenset({"/healthz", "/readyz", "/monitoring/metrics", "/v2/health/live", "/v2/health/ready",
                       "/ping", "/health"})


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

        registry.cache.observer = observe

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
