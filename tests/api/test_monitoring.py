"""Prometheus metrics at /monitoring/metrics, structured JSON request logs and X-Request-ID."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.observability.logging import JsonFormatter
from service.observability.prometheus import Monitoring

from ..support import TOY_TRAIN, Samples, parse_samples, sample_total, scrape

LOW, HIGH = [0.0, 1.0], [3.0, 3.0]  # predicted 0 and 1
LOG_FIELDS = {"method", "path", "status", "duration_ms", "model", "version", "rows", "request_id"}


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls), _ in samples.items() if n == name and label in dict(ls)}


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(log_level="warning")


# -- metrics --------------------------------------------------------------------------------------------
def test_request_counts_and_latency_per_route_template_and_status(client):
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    for _ in range(3):
        assert client.post("/predict_proba", json={"model": "toy", "features": [LOW]}).status_code == 200
    assert client.post("/predict_proba", json={"model": "nope", "features": [LOW]}).status_code == 404
    assert client.post("/predict_proba", json={"model": "toy"}).status_code == 422
    assert client.get("/models/toy").status_code == 200
    assert client.get("/models/toy/versions/1").status_code == 200
    assert client.get("/no/such/route").status_code == 404
    s = scrape(client)
    requests = "logreg_http_requests_total"
    assert sample_total(s, requests, method="POST", route="/train", status="201") == 1
    assert sample_total(s, requests, method="POST", route="/predict_proba", status="200") == 3
    assert sample_total(s, requests, method="POST", route="/predict_proba", status="404") == 1
    assert sample_total(s, requests, method="POST", route="/predict_proba", status="422") == 1
    # route templates, not raw paths: one series per route whatever the model or version
    assert sample_total(s, requests, method="GET", route="/models/{name}", status="200") == 1
    assert sample_total(s, requests, method="GET", route="/models/{name}/versions/{version}", status="200") == 1
    routes = label_values(s, requests, "route")
    assert not any("toy" in r for r in routes), routes
    assert "/no/such/route" not in routes
    # latency histogram: one observation per counted request, same labels
    for labels in ({"route": "/predict_proba", "status": "200"}, {"route": "/train", "status": "201"}):
        count = sample_total(s, "logreg_http_request_duration_seconds_count", **labels)
        assert count == sample_total(s, requests, **labels)
        assert sample_total(s, "logreg_http_request_duration_seconds_sum", **labels) > 0
        assert sample_total(s, "logreg_http_request_duration_seconds_bucket", le="+Inf", **labels) == sample_total(
            s, requests, **labels)


def test_probes_and_the_scrape_are_not_traffic(client):
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        scrape(client)
    s = scrape(client)
    assert sample_total(s, "logreg_http_requests_total") == 0
    assert sample_total(s, "logreg_http_request_duration_seconds_count") == 0
    assert client.post("/predict_proba", json={"model": "nope", "features": [LOW]}).status_code == 404
    s = scrape(client)
    assert sample_total(s, "logreg_http_requests_total") == 1
    assert label_values(s, "logreg_http_requests_total", "route") == {"/predict_proba"}


def test_predictions_per_model_version_and_class(client):
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    assert client.post("/train", json={**TOY_TRAIN, "labels": ["n" if v == 0 else "y" for v in TOY_TRAIN["labels"]]}
                       ).status_code == 201
    assert client.post("/predict_proba", json={"model": "toy", "version": 1, "features": [LOW, HIGH, HIGH]}
                       ).status_code == 200
    resp = client.post("/predict", json={"model": "toy", "features": [LOW, LOW, HIGH]})  # latest: version 2
    assert resp.json()["predictions"] == ["n", "n", "y"]
    resp = client.post("/predict?threshold=0.0", json={"model": "toy", "version": 2, "features": [LOW]})
    assert resp.json()["predictions"] == ["y"]  # the class actually returned is counted
    assert client.post("/metrics", json={"model": "toy", "version": 1, "features": [LOW], "labels": [0]}
                       ).status_code == 200
    s = scrape(client)
    p = "logreg_predictions_total"
    assert sample_total(s, p, model="toy", version="1", predicted_class="0") == 1
    assert sample_total(s, p, model="toy", version="1", predicted_class="1") == 2
    assert sample_total(s, p, model="toy", version="2", predicted_class="n") == 2
    assert sample_total(s, p, model="toy", version="2", predicted_class="y") == 2
    assert sample_total(s, p) == 7  # evaluation is not prediction


def test_rows_per_request(client):
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    assert client.post("/predict_proba", json={"model": "toy", "features": [LOW] * 5}).status_code == 200
    assert client.post("/predict", json={"model": "toy", "features": [LOW] * 20}).status_code == 200
    assert client.post("/predict", json={"model": "toy", "features": [HIGH] * 2}).status_code == 200
    s = scrape(client)
    rows = "logreg_request_rows"
    assert sample_total(s, f"{rows}_count", route="/train") == 1
    assert sample_total(s, f"{rows}_sum", route="/train") == 8
    assert sample_total(s, f"{rows}_count", route="/predict_proba") == 1
    assert sample_total(s, f"{rows}_sum", route="/predict_proba") == 5
    assert sample_total(s, f"{rows}_count", route="/predict") == 2
    assert sample_total(s, f"{rows}_sum", route="/predict") == 22
    assert sample_total(s, f"{rows}_bucket", route="/predict", le="10.0") == 1


def test_training_runs_and_duration(make_client):
    client = make_client(log_level="warning", train_timeout_seconds=2.0)
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    assert client.post("/train", json={**TOY_TRAIN, "model": "other"}).status_code == 201
    assert client.post("/train", json={**TOY_TRAIN, "labels": [1] * 8}).status_code == 422
    slow = {**TOY_TRAIN, "features": TOY_TRAIN["features"] * 500, "labels": TOY_TRAIN["labels"] * 500,
            "params": {"solver": "sgd", "batch_size": 1, "max_iter": 5000, "tol": 0, "n_iter_no_change": 10000}}
    assert client.post("/train", json=slow).status_code == 422  # over the time limit
    s = scrape(client)
    t = "logreg_trainings_total"
    assert sample_total(s, t, model="toy", outcome="succeeded") == 1
    assert sample_total(s, t, model="other", outcome="succeeded") == 1
    failed = {dict(ls)["outcome"] for (n, ls), v in s.items() if n == t and dict(ls)["model"] == "toy" and v}
    assert len(failed) == 3, failed  # succeeded + two distinct failure outcomes
    assert sample_total(s, "logreg_training_duration_seconds_count") == 2  # successful runs only
    assert sample_total(s, "logreg_training_duration_seconds_sum") > 0


def test_background_trainings_are_counted_too(client):
    resp = client.post("/train?background=true", json=TOY_TRAIN)
    assert resp.status_code == 202
    for _ in range(300):
        if client.get(resp.headers["location"]).json()["state"] == "succeeded":
            break
        time.sleep(0.02)
    s = scrape(client)
    assert sample_total(s, "logreg_trainings_total", model="toy", outcome="succeeded") == 1
    assert sample_total(s, "logreg_training_duration_seconds_count") == 1
    assert sample_total(s, "logreg_http_requests_total", route="/train", status="202") == 1
    assert sample_total(s, "logreg_http_requests_total", route="/jobs/{job_id}", status="200") >= 1


def test_registry_cache_hits_loads_and_models_loaded(make_client):
    client = make_client(log_level="warning", cache_size=2)
    for name in ("a", "b", "c"):
        assert client.post("/train", json={**TOY_TRAIN, "model": name}).status_code == 201
    s = scrape(client)
    base_loads = sample_total(s, "logreg_registry_loads_total")
    base_hits = sample_total(s, "logreg_registry_cache_hits_total")
    row = {"features": [LOW]}
    assert client.post("/predict_proba", json={"model": "a", **row}).status_code == 200
    s = scrape(client)
    assert sample_total(s, "logreg_registry_loads_total") == base_loads + 1
    assert sample_total(s, "logreg_models_loaded") >= 1
    for _ in range(4):
        assert client.post("/predict_proba", json={"model": "a", **row}).status_code == 200
    s = scrape(client)
    assert sample_total(s, "logreg_registry_cache_hits_total") == base_hits + 4
    assert sample_total(s, "logreg_registry_loads_total") == base_loads + 1
    for name in ("b", "c"):
        assert client.post("/predict", json={"model": name, **row}).status_code == 200
    s = scrape(client)
    assert sample_total(s, "logreg_registry_loads_total") == base_loads + 3
    assert sample_total(s, "logreg_models_loaded") == 2  # the cache holds two


def test_the_exposition_declares_every_family(client):
    resp = client.get("/monitoring/metrics")
    families = {f.name: f.type for f in text_string_to_metric_families(resp.text) if not f.name.endswith("_created")}
    assert families == {
        "logreg_http_requests": "counter",
        "logreg_http_request_duration_seconds": "histogram",
        "logreg_predictions": "counter",
        "logreg_request_rows": "histogram",
        "logreg_trainings": "counter",
        "logreg_training_duration_seconds": "histogram",
        "logreg_registry_cache_hits": "counter",
        "logreg_registry_loads": "counter",
        "logreg_models_loaded": "gauge",
        "logreg_out_of_range_rows": "counter",
        "logreg_out_of_range_values": "counter",
        "logreg_feature_psi": "gauge",
    }


def test_two_apps_in_one_process_do_not_share_counts(make_client, tmp_path):
    a = make_client(model_store=tmp_path / "a", log_level="warning")
    b = make_client(model_store=tmp_path / "b", log_level="warning")
    a.post("/predict_proba", json={"model": "x", "features": [LOW]})
    assert sample_total(scrape(a), "logreg_http_requests_total") == 1
    assert sample_total(scrape(b), "logreg_http_requests_total") == 0


# -- request ids ----------------------------------------------------------------------------------------
def test_request_id_is_echoed_or_generated(client):
    given = "client-req_42:a.b"
    resp = client.get("/healthz", headers={"X-Request-ID": given})
    assert resp.headers["x-request-id"] == given
    generated = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", g) for g in generated)
    # error answers carry it too, including the ones refused before routing
    assert client.get("/nope", headers={"X-Request-ID": "e-1"}).headers["x-request-id"] == "e-1"
    assert client.post("/predict_proba", json={}, headers={"X-Request-ID": "e-2"}).headers["x-request-id"] == "e-2"
    big = client.post("/train", content=b"x", headers={"X-Request-ID": "e-3", "content-length": str(10**9)})
    assert big.status_code == 413
    assert big.headers["x-request-id"] == "e-3"


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "<script>", "a\tb", ""])
def test_unsafe_request_ids_are_replaced(client, bad):
    resp = client.get("/healthz", headers=[("X-Request-ID", bad)])
    got = resp.headers["x-request-id"]
    assert got != bad
    assert re.fullmatch(r"[0-9a-f]{32}", got)
    assert resp.headers.get_list("x-request-id") == [got]


# -- logs -----------------------------------------------------------------------------------------------
def test_one_structured_log_line_per_request(logged, tmp_path):
    client, handler = logged(model_store=tmp_path / "s")
    trained = client.post("/train", json=TOY_TRAIN, headers={"X-Request-ID": "train-1"})
    client.post("/predict_proba", json={"model": "toy", "features": [LOW, HIGH, HIGH]},
                headers={"X-Request-ID": "pred-1"})
    client.post("/predict", json={"model": "nope", "features": [LOW]}, headers={"X-Request-ID": "miss-1"})
    client.get("/healthz", headers={"X-Request-ID": "probe-1"})
    lines = handler.access()
    assert [line["request_id"] for line in lines] == ["train-1", "pred-1", "miss-1", "probe-1"]
    for line in lines:
        assert set(line) >= LOG_FIELDS, line
        assert line["level"] == "info" and line["logger"] == "service.access"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    train, pred, miss, probe = lines
    assert train | {"duration_ms": 0, "time": ""} == {
        **train, "method": "POST", "path": "/train", "status": 201, "model": "toy",
        "version": trained.json()["version"], "rows": 8, "duration_ms": 0, "time": "",
    }
    assert (pred["method"], pred["path"], pred["status"], pred["model"], pred["version"], pred["rows"]) == (
        "POST", "/predict_proba", 200, "toy", 1, 3)
    assert (miss["status"], miss["model"], miss["version"], miss["rows"]) == (404, "nope", None, None)
    assert (probe["path"], probe["status"], probe["model"]) == ("/healthz", 200, None)


def test_log_lines_are_json_on_stderr(make_client, capsys):
    client = make_client()  # json_logs defaults to true
    client.get("/healthz", headers={"X-Request-ID": "stderr-1"})
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "stderr-1"]
    assert len(mine) == 1
    assert set(mine[0]) >= LOG_FIELDS
    assert all(line.startswith("{") for line in err.splitlines() if "stderr-1" in line)


def test_plain_logs_when_json_is_off(make_client, capsys):
    client = make_client(json_logs=False)
    client.get("/healthz", headers={"X-Request-ID": "plain-1"})
    err = capsys.readouterr().err
    assert "INFO service.access request" in err
    assert not any(line.startswith("{") for line in err.splitlines())


def test_log_level_from_settings(logged, tmp_path):
    client, handler = logged(model_store=tmp_path / "w", log_level="warning")
    client.get("/healthz")
    assert handler.access() == []
    assert logging.getLogger("service").level == logging.WARNING
    client, handler = logged(model_store=tmp_path / "d", log_level="DEBUG")
    client.get("/healthz")
    assert len(handler.access()) == 1
    assert logging.getLogger("service").getEffectiveLevel() == logging.DEBUG


def test_error_log_carries_the_traceback_as_json(logged, tmp_path, monkeypatch):
    client, handler = logged(model_store=tmp_path / "s")
    from service.api.routes import health

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(health, "json_response", boom)
    resp = client.get("/healthz", headers={"X-Request-ID": "err-1"})
    assert resp.status_code == 500
    errors = [r for r in handler.records if r.levelno >= logging.ERROR]
    assert errors
    entry = json.loads(JsonFormatter().format(errors[0]))
    assert "kaboom" in entry["exception"]
    assert [a["status"] for a in handler.access() if a["request_id"] == "err-1"] == [500]


def test_predicted_classes_follow_the_classes_of_the_version_served():
    """A version number seen again with other classes (its model was removed and trained anew) counts its
    predictions under its own labels."""
    monitoring = Monitoring()
    monitoring.observe_predictions("m", 1, np.array([0, 1]), np.array([1]))
    monitoring.observe_predictions("m", 1, np.array(["a", "b", "c"]), np.array([2, 2, 0]))
    samples = parse_samples(monitoring.exposition().decode())
    assert sample_total(samples, "logreg_predictions_total", predicted_class="1") == 1
    assert sample_total(samples, "logreg_predictions_total", predicted_class="c") == 2
    assert sample_total(samples, "logreg_predictions_total", predicted_class="a") == 1
    assert sample_total(samples, "logreg_predictions_total") == 4
