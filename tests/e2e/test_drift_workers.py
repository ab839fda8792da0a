"""End to end: drift monitoring in a real two-worker server sharing a Prometheus multi-process directory.

The out-of-range counters add up over the workers; each worker keeps its own PSI window, and the
``logreg_feature_psi`` gauge shows the highest among live workers (one series per feature, no pid label).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from service.client import LogregClient

from .conftest import Server, fresh, scrape, start_server, stop_server

pytestmark = pytest.mark.e2e

N_REQUESTS = 40
ROWS = 50
rng = np.random.default_rng(0)
TRAIN_X = rng.normal(size=(1000, 2))
TRAIN = {"model": "gauss", "feature_names": ["u", "v"], "features": TRAIN_X.tolist(),
         "labels": (TRAIN_X.sum(axis=1) > 0).astype(int).tolist()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("drift")
    (root / "prometheus").mkdir()
    srv = start_server(root / "store", root / "server.log", "--workers", "2",
                       env={"LOGREG_PROMETHEUS_DIR": str(root / "prometheus"), "LOGREG_DRIFT_WINDOW_ROWS": "100"})
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def traffic(server: Server) -> dict[str, Any]:
    assert fresh(server, "POST", "/train", json=TRAIN).status_code == 201
    flagged = 0
    for i in range(N_REQUESTS):
        X = np.random.default_rng(i).normal(size=(ROWS, 2)) + 3.0  # shifted by 3 std
        resp = fresh(server, "POST", "/predict_proba", json={"model": "gauss", "features": X.tolist()})
        assert resp.status_code == 200, resp.text
        flagged += int(resp.headers["x-out-of-range-rows"])
    assert flagged > 0
    return {"flagged": flagged}


def test_out_of_range_counts_add_up_over_workers(server, traffic):
    for _ in range(6):  # either worker answers
        s = scrape(server)
        rows = sum(v for (n, ls), v in s.items() if n == "logreg_out_of_range_rows_total")
        assert rows == traffic["flagged"]


def test_psi_is_one_series_per_feature_with_the_highest_worker_value(server, traffic):
    deadline = time.monotonic() + 15
    while True:
        s = scrape(server)
        psi = {dict(ls)["feature"]: (v, ls) for (n, ls), v in s.items() if n == "logreg_feature_psi"}
        if set(psi) == {"u", "v"} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(psi) == {"u", "v"}
    for value, labels in psi.values():
        assert dict(labels) == {"model": "gauss", "version": "1", "feature": dict(labels)["feature"]}  # no pid
        assert value > 2


def test_the_drift_route_answers_for_the_worker(server, traffic):
    seen: dict[int, int] = {}
    deadline = time.monotonic() + 15
    while len(seen) < 2 and time.monotonic() < deadline:
        body = fresh(server, "GET", "/models/gauss/versions/1/drift").json()
        assert body["scope"] == "worker"
        seen[body["pid"]] = body["rows_seen"]
    assert len(seen) == 2, seen
    assert sum(seen.values()) == N_REQUESTS * ROWS  # each worker counts its own rows; together, every row sent


def test_the_python_client_reads_drift(server, traffic):
    with LogregClient(server.url) as client:
        body = client.drift("gauss", 1)
    assert set(body["psi"]) == {"u", "v"}
    assert body["training"]["n_rows"] == 800  # the training split
