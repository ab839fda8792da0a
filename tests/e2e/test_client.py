"""The Python clients, blocking and async, against a real server: a training the server sends to the
background still returns its report, the errors of the tree, and a 429 retried after its Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.client import (
    AsyncLogregClient,
    ConnectionFailed,
    InvalidInput,
    Job,
    LogregClient,
    NotFound,
    RateLimited,
    Retry,
)

from ..support import TOY_FEATURES, TOY_LABELS, TOY_NAMES
from .conftest import Server, slow_publish_env, start_server, stop_server

pytestmark = pytest.mark.e2e

BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("client")
    # Sets over 1000 values (the breast-cancer upload has 17,070) train as background jobs.
    server = start_server(root / "model_store", root / "server.log",
                          env={"LOGREG_BACKGROUND_TRAIN_CELLS": "1000"})
    try:
        yield server
    finally:
        stop_server(server)


def test_train_csv_returns_a_report_when_the_server_makes_it_a_job(server: Server) -> None:
    jobs: list[Job] = []
    with LogregClient(server.url) as client:
        report = client.train_csv("bc", BREAST_CANCER, "diagnosis", progress=jobs.append)
        assert report["model"] == "bc" and report["n_samples"] == 569 and report["version"] == 1
        assert jobs and jobs[-1]["state"] == "succeeded" and jobs[-1]["result"] == report
        assert client.model_card("bc", 1)["n_samples"] == 569
        small = client.train("toy", features=TOY_FEATURES, labels=TOY_LABELS, feature_names=TOY_NAMES,
                             validation_fraction=0)  # 16 values: synchronous
        assert small["version"] == 1
        with pytest.raises(NotFound):
            client.versions("nope")
        with pytest.raises(InvalidInput) as err:
            client.predict("toy", features=[[1.0]])
        assert "expects 2 features" in err.value.message


def test_the_async_client_against_the_server(server: Server) -> None:
    async def main() -> None:
        async with AsyncLogregClient(server.url) as client:
            reports = await asyncio.gather(*(
                client.train("async", features=TOY_FEATURES, labels=TOY_LABELS, background=True,
                             validation_fraction=0) for _ in range(3)))
            assert sorted(r["version"] for r in reports) == [1, 2, 3]
            rows = [[0.5, 0.5], [2.5, 2.5]]
            answers = await asyncio.gather(*(client.predict_proba("async", features=rows, version=v)
                                             for v in (1, 2, 3)))
            assert all(a["classes"] == [0, 1] for a in answers)
            assert "async" in {m["name"] for m in await client.models()}
            with pytest.raises(NotFound):
                await client.model_card("async", 9)

    asyncio.run(main())


def test_a_refused_connection_is_connection_failed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "store", tmp_path / "server.log")
    stop_server(server)
    with LogregClient(server.url, retries=Retry(attempts=1, backoff=0.01)) as client, \
            pytest.raises(ConnectionFailed) as err:
        client.models()
    assert server.url.removeprefix("http://") in err.value.message


@pytest.mark.slow
def test_a_busy_server_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    # One training slot, and each save holds it 3 s longer: a second training meanwhile is a 429.
    env = {**slow_publish_env(3.0), "LOGREG_MAX_CONCURRENT_TRAININGS": "1"}
    server = start_server(tmp_path / "store", tmp_path / "server.log", env=env)
    try:
        with LogregClient(server.url, timeout=60) as client:
            first = threading.Thread(target=client.train, args=("busy",),
                                     kwargs={"features": TOY_FEATURES, "labels": TOY_LABELS})
            first.start()
            time.sleep(1.0)  # the first training holds the slot now, in its 3 s pause
            with pytest.raises(RateLimited) as err:  # a POST without an Idempotency-Key is not retried
                client.train("busy", features=TOY_FEATURES, labels=TOY_LABELS)
            assert err.value.retry_after == 5 and err.value.status_code == 429
            started = time.monotonic()
            report = client.train("busy", features=TOY_FEATURES, labels=TOY_LABELS, idempotency_key="busy-2")
            assert time.monotonic() - started >= 5  # waited as Retry-After said, then trained
            first.join(timeout=60)
            assert report["version"] == 2
            assert [v["version"] for v in client.versions("busy")] == [1, 2]
    finally:
        stop_server(server)
