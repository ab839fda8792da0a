"""Fixtures of the HTTP API tests.

* ``make_client(**settings)`` builds an app on a fresh registry under ``tmp_path`` and enters its
  ``TestClient`` context (so the lifespan runs); use it for tests that change the registry.
* ``served`` is one app per test module with three trained models, for the read-only tests:
  ``toy`` (binary, int labels, JSON rows), ``bc`` (breast cancer, string labels, CSV upload) and
  ``iris`` (three string classes, JSON rows).
* ``logged(**settings)`` is ``make_client`` that also returns what the app logged.
* ``toy_client(**settings)`` is ``make_client`` whose registry holds ``toy`` version 1 only.
* ``api_error`` checks the one error shape ``{"error": {"type", "message", "details"}}``.

Data and helpers that other test packages use too live in ``tests/support.py``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray

from service.app import create_app
from service.config import Settings
from service.observability.logging import JsonFormatter
from service.store.registry import LoadedModel, ModelRegistry

from ..support import LOCAL_URL, TOY_FEATURES, TOY_LABELS, TOY_NAMES, TOY_TRAIN

REPO_ROOT = Path(__file__).resolve().parents[2]
BREAST_CANCER_CSV = REPO_ROOT / "examples" / "breast_cancer.csv"



@dataclass(frozen=True)
class Dataset:
    """Features, labels and feature names of one data set, as the tests send them."""

    X: NDArray[np.float64]
    y: NDArray[Any]
    feature_names: list[str]

    def records(self, reverse_keys: bool = False) -> list[dict[str, float]]:
        names = self.feature_names[::-1] if reverse_keys else self.feature_names
        idx = [self.feature_names.index(n) for n in names]
        return [{n: float(row[i]) for n, i in zip(names, idx, strict=True)} for row in self.X]


@dataclass
class Served:
    """A running app with trained models, and what training each of them reported."""

    client: TestClient
    store: Path
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, Dataset] = field(default_factory=dict)

    def load(self, name: str, version: int | str | None = None) -> LoadedModel:
        """The stored version as the engine sees it, through a registry of our own on the same store."""
        return ModelRegistry(self.store, cache_size=0).load(name, version)


def _read_breast_cancer() -> Dataset:
    with BREAST_CANCER_CSV.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    t = header.index("diagnosis")
    X = np.array([[float(v) for i, v in enumerate(r) if i != t] for r in body])
    y = np.array([r[t] for r in body])
    return Dataset(X=X, y=y, feature_names=[h for i, h in enumerate(header) if i != t])


def _read_iris() -> Dataset:
    from sklearn.datasets import load_iris

    iris = load_iris()
    return Dataset(
        X=np.asarray(iris.data, dtype=np.float64),
        y=np.asarray(iris.target_names)[iris.target],
        feature_names=["sepal_length", "sepal_width", "petal_length", "petal_width"],
    )


@dataclass
class AsgiAnswer:
    """What an app sent back to :func:`asgi_post`, and how many body chunks it pulled."""

    status: int
    body: bytes
    pulled: int

    def json(self) -> Any:
        return json.loads(self.body)


def asgi_post(app: Any, path: str, body: bytes, *, chunk: int = 512, content_length: bool = False,
              content_type: bytes = b"application/json") -> AsgiAnswer:
    """POST ``body`` to ``app`` through raw ASGI in ``chunk``-byte pieces, as a server streams a request
    (with or without a Content-Length header), then a disconnect if the app asks for more."""
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"localhost"), (b"content-type", content_type)]
    if content_length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("test", 80), "state": {},
    }
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return AsgiAnswer(start["status"], payload, pulled)


@pytest.fixture(scope="session")
def toy() -> Dataset:
    return Dataset(X=np.array(TOY_FEATURES), y=np.array(TOY_LABELS), feature_names=list(TOY_NAMES))


@pytest.fixture(scope="session")
def breast_cancer() -> Dataset:
    return _read_breast_cancer()


@pytest.fixture(scope="session")
def iris() -> Dataset:
    return _read_iris()


@pytest.fixture(scope="session")
def breast_cancer_csv() -> bytes:
    return BREAST_CANCER_CSV.read_bytes()


def check_error(
    resp: httpx.Response, status: int, kind: str | None = None, mentions: tuple[str, ...] | str = ()
) -> dict[str, Any]:
    """Assert ``resp`` is an error of ``status`` in the service's one shape; return its ``error`` object."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"type", "message", "details"}, err
    assert isinstance(err["type"], str) and err["type"], err
    assert isinstance(err["message"], str) and err["message"], err
    if kind is not None:
        assert err["type"] == kind, err
    for fragment in (mentions,) if isinstance(mentions, str) else mentions:
        assert fragment in err["message"], err
    return err


@pytest.fixture(scope="session")
def api_error() -> Callable[..., dict[str, Any]]:
    return check_error


def train_json(client: TestClient, name: str, data: Dataset, **extra: Any) -> dict[str, Any]:
    body = {"model": name, "features": data.X.tolist(), "labels": data.y.tolist(),
            "feature_names": data.feature_names, **extra}
    resp = client.post("/train", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def train_csv(client: TestClient, name: str, content: bytes, target: str, **form: str) -> dict[str, Any]:
    resp = client.post(
        "/train", files={"file": ("data.csv", content, "text/csv")}, data={"model": name, "target": target, **form}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="session")
def trainer() -> Any:
    """``trainer.json(client, name, dataset, **fields)`` and ``trainer.csv(client, name, bytes, target)``."""

    class Trainer:
        json = staticmethod(train_json)
        csv = staticmethod(train_csv)

    return Trainer


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Factory of started clients on ``tmp_path / "store"`` (or ``model_store=`` given); closed at teardown."""
    with ExitStack() as stack:

        def make(**settings: Any) -> TestClient:
            settings.setdefault("model_store", tmp_path / "store")
            app = create_app(Settings(**settings))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL))

        yield make


class LogRecords(logging.Handler):
    """Every record the service logs, kept for the test to read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]

    def access(self) -> list[dict[str, Any]]:
        """The access-log lines, as the JSON objects the server writes."""
        return [json.loads(JsonFormatter().format(r)) for r in self.records if r.name == "service.access"]


@pytest.fixture
def logged() -> Iterator[Callable[..., tuple[TestClient, LogRecords]]]:
    """``logged(**settings)``: a started client and the records its app logs (the handler is attached after
    ``create_app``, whose logging set-up resets the service logger's handlers); both undone at teardown."""
    opened: list[tuple[TestClient, LogRecords]] = []

    def start(**settings: Any) -> tuple[TestClient, LogRecords]:
        app = create_app(Settings(**settings))
        handler = LogRecords()
        logging.getLogger("service").addHandler(handler)
        client = TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL)
        client.__enter__()
        opened.append((client, handler))
        return client, handler

    yield start
    for client, handler in opened:
        client.__exit__(None, None, None)
        logging.getLogger("service").removeHandler(handler)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, toy: Dataset, breast_cancer: Dataset,
           iris: Dataset, breast_cancer_csv: bytes) -> Iterator[Served]:
    store = tmp_path_factory.mktemp("served") / "store"
    app = create_app(Settings(model_store=store))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL) as client:
        s = Served(client=client, store=store, data={"toy": toy, "bc": breast_cancer, "iris": iris})
        s.reports["toy"] = train_json(client, "toy", toy, validation_fraction=0)
        s.reports["bc"] = train_csv(client, "bc", breast_cancer_csv, "diagnosis")
        s.reports["iris"] = train_json(client, "iris", iris)
        yield s


@pytest.fixture
def toy_client(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``toy_client(**settings)``: a fresh app whose registry holds ``toy`` version 1 only."""

    def make(**settings: Any) -> TestClient:
        client = make_client(**settings)
        headers = {"Authorization": f"Bearer {settings['api_keys']}"} if "api_keys" in settings else {}
        assert client.post("/train", json=TOY_TRAIN, headers=headers).status_code == 201
        return client

    return make
