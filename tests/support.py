"""Data and helpers shared by test packages: the toy training set, reading a Prometheus scrape, and httpx
transports that take the Python client to an app in process."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

TOY_FEATURES = [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0], [0.5, 0.2], [2.5, 2.0], [0.2, 0.9], [2.8, 2.6]]
TOY_LABELS = [0, 0, 1, 1, 0, 1, 0, 1]
TOY_NAMES = ["a", "b"]
#: ``POST /train`` body of model ``toy``: 8 separable rows, 2 named features, no validation split.
TOY_TRAIN: dict[str, Any] = {
    "model": "toy", "features": TOY_FEATURES, "labels": TOY_LABELS, "feature_names": TOY_NAMES,
    "validation_fraction": 0,
}

#: The URL in-process clients use: the service answers only to localhost names when bound to loopback (its
#: default), as a browser's DNS-rebinding guard, so the TestClient's default ``testserver`` would be refused.
LOCAL_URL = "http://localhost"

#: Prometheus samples by (name, labels).
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """The samples of a Prometheus text exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample_total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def scrape(client: Any) -> Samples:
    """``GET /monitoring/metrics`` through ``client`` (a TestClient or an httpx client), parsed."""
    resp = client.get("/monitoring/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return parse_samples(resp.text)


def _in_process(client: Any, request: httpx.Request, content: bytes) -> httpx.Response:
    answer = client.request(request.method, str(request.url), content=content, headers=dict(request.headers))
    decoded = [(k, v) for k, v in answer.headers.multi_items()  # the TestClient has decoded the body
               if k.lower() not in ("content-encoding", "content-length")]
    return httpx.Response(answer.status_code, headers=decoded, content=answer.content)


class InProcess(httpx.BaseTransport):
    """The Python client (httpx) talking to the app through a TestClient (httpx2), without a socket."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _in_process(self.client, request, request.read())


class AsyncInProcess(httpx.AsyncBaseTransport):
    """:class:`InProcess` for the async client: each request goes to the TestClient from a worker thread."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        return await anyio.to_thread.run_sync(_in_process, self.client, request, content)
