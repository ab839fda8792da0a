"""End to end: Prometheus counts and JSON request logs of a real two-worker uvicorn server.

Each worker writes its samples to the shared multiprocess directory, so every scrape, whichever worker
answers it, must see exactly the requests the whole server served.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support import TOY_TRAIN, sample_total
from .conftest import Server, fresh, scrape, start_server, stop_server

pytestmark = pytest.mark.e2e

KEY = "e2e-secret-key-7f3a"
N_PREDICTIONS = 30
LOG_FIELDS = {"method", "path", "status", "duration_ms", "model", "version", "rows", "request_id"}
STALE = 1000.0  # a count a previous server left in the directory; a clean start must not show it


def _stale_samples(directory: Path) -> list[Path]:
    """Write the files a dead worker of an earlier run would leave behind (real prometheus-client files)."""
    code = (
        "from prometheus_client import Counter\n"
        "c = Counter('logreg_http_requests_total', 'x', ['method', 'route', 'status'])\n"
        f"c.labels('POST', '/predict_proba', '200').inc({STALE})\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    stale = list(directory.glob("counter_*.db"))
    assert stale
    return stale


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[Path]]]:
    root = tmp_path_factory.mktemp("monitoring")
    prom = root / "prometheus"
    prom.mkdir()
    stale = _stale_samples(prom)
    srv = start_server(root / "store", root / "server.log", "--workers", "2", "--log-level", "info",
                       env={"LOGREG_API_KEYS": KEY, "LOGREG_PROTECT_READS": "false",
                            "LOGREG_PROMETHEUS_DIR": str(prom)})
    try:
        yield srv, stale
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def traffic(server: tuple[Server, list[Path]]) -> dict[str, Any]:
    """Train one model, then N predictions over fresh connections, each with its own request id."""
    srv, _ = server
    pids = set()
    deadline = time.monotonic() + 15
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(fresh(srv, "GET", "/healthz").json()["pid"])
    trained = fresh(srv, "POST", "/train", json=TOY_TRAIN,
                    headers={"Authorization": f"Bearer {KEY}", "X-Request-ID": "e2e-train"})
    assert trained.status_code == 201, trained.text
    answers = []
    for i in range(N_PREDICTIONS):
        resp = fresh(srv, "POST", "/predict_proba", json={"model": "toy", "features": [[0.0, 1.0], [3.0, 3.0]]},
                     headers={"X-Request-ID": f"e2e-pred-{i}"})
        assert resp.status_code == 200, resp.text
        answers.append(resp)
    for _ in range(5):  # probes in between: never counted
        fresh(srv, "GET", "/healthz")
        fresh(srv, "GET", "/readyz")
    return {"pids": pids, "answers": answers, "version": trained.json()["version"]}


def test_both_workers_answer(traffic):
    assert len(traffic["pids"]) == 2, traffic["pids"]


def test_every_scrape_counts_every_request_exactly_once(server, traffic):
    srv, stale = server
    assert not any(p.exists() for p in stale)  # `logreg serve` emptied the directory before the workers started
    for _ in range(8):  # over fresh connections: either worker answers
        s = scrape(srv)
        labels = {"method": "POST", "route": "/predict_proba", "status": "200"}
        assert sample_total(s, "logreg_http_requests_total", **labels) == N_PREDICTIONS  # not 1000 + N: dir was emptied
        assert sample_total(s, "logreg_http_request_duration_seconds_count", **labels) == N_PREDICTIONS
        assert sample_total(s, "logreg_http_requests_total", route="/train", status="201") == 1
        assert sample_total(s, "logreg_http_requests_total") == N_PREDICTIONS + 1  # probes and scrapes are not traffic
        assert sample_total(s, "logreg_predictions_total", model="toy", version="1") == 2 * N_PREDICTIONS
        assert sample_total(s, "logreg_predictions_total", predicted_class="0") == N_PREDICTIONS
        assert sample_total(s, "logreg_predictions_total", predicted_class="1") == N_PREDICTIONS
        assert sample_total(s, "logreg_request_rows_count", route="/predict_proba") == N_PREDICTIONS
        assert sample_total(s, "logreg_request_rows_sum", route="/predict_proba") == 2 * N_PREDICTIONS
        assert sample_total(s, "logreg_trainings_total", model="toy", outcome="succeeded") == 1
        assert sample_total(s, "logreg_training_duration_seconds_count") == 1
        loads = sample_total(s, "logreg_registry_loads_total")
        hits = sample_total(s, "logreg_registry_cache_hits_total")
        assert 1 <= loads <= 2  # once per worker that served a prediction
        assert loads + hits == N_PREDICTIONS
        assert 1 <= sample_total(s, "logreg_models_loaded") <= 2


def test_request_ids_are_echoed(traffic):
    for i, resp in enumerate(traffic["answers"]):
        assert resp.headers["x-request-id"] == f"e2e-pred-{i}"


def _access_lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "service.access":
                out.append(entry)
    return out


def test_json_request_logs_from_every_worker(server, traffic):
    srv, _ = server
    wanted = {f"e2e-pred-{i}" for i in range(N_PREDICTIONS)} | {"e2e-train"}
    deadline = time.monotonic() + 10
    while True:
        lines = _access_lines(srv.log)
        if wanted <= {e["request_id"] for e in lines}:
            break
        assert time.monotonic() < deadline, "request log lines missing"
        time.sleep(0.1)
    by_id = {e["request_id"]: e for e in lines}
    for i in range(N_PREDICTIONS):
        entry = by_id[f"e2e-pred-{i}"]
        assert set(entry) >= LOG_FIELDS, entry
        assert (entry["method"], entry["path"], entry["status"], entry["model"], entry["version"], entry["rows"]) \
            == ("POST", "/predict_proba", 200, "toy", traffic["version"], 2)
        assert entry["duration_ms"] > 0
    train = by_id["e2e-train"]
    assert (train["path"], train["status"], train["model"], train["rows"]) == ("/train", 201, "toy", 8)
    # every JSON line of the service parses, and none carries the key
    text = srv.log.read_text(errors="replace")
    assert KEY not in text
    assert "Bearer" not in text
    # keys are configured: no warning that the service is open
    assert "LOGREG_API_KEYS" not in text


def test_one_log_line_per_request(server, traffic):
    srv, _ = server
    text = srv.log.read_text(errors="replace")
    plain = [line for line in text.splitlines() if not line.startswith("{") and "/predict_proba" in line]
    assert plain == []


def test_every_log_line_is_one_json_object_uvicorns_included(server, traffic):
    """Start-up, worker and shutdown lines of uvicorn go through the service's JSON formatter too."""
    srv, _ = server
    lines = [line for line in srv.log.read_text(errors="replace").splitlines() if line.strip()]
    loggers = set()
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), line
        loggers.add(entry["logger"])
    assert "uvicorn.error" in loggers  # "Started server process", "Waiting for application startup", ...
