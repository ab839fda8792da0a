"""Drift over HTTP: training statistics in the model card, X-Out-Of-Range-Rows, the out-of-range counters
and the PSI gauge at /monitoring/metrics, and GET /models/{name}/versions/{version}/drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.store.registry import ModelRegistry

from ..support import Samples, sample_total, scrape

NAMES = ["small", "big", "narrow"]
MEANS = np.array([0.0, 10.0, -5.0])
STDS = np.array([1.0, 5.0, 0.1])
HEADER = "x-out-of-range-rows"


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def sample(n: int, seed: int, shift_in_stds: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return MEANS + STDS * (rng.normal(size=(n, 3)) + shift_in_stds)


def train(client: TestClient, name: str = "gauss", n: int = 2000) -> dict[str, Any]:
    X = sample(n, seed=0)
    y = ((X - MEANS) / STDS @ np.array([1.0, -1.0, 0.5]) > 0).astype(int)
    resp = client.post("/train", json={"model": name, "features": X.tolist(), "labels": y.tolist(),
                                       "feature_names": NAMES, "params": {"random_state": 0}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def series(samples: Samples, name: str, **labels: str) -> dict[str, float]:
    """{feature: value} of a per-feature family, for the series whose labels include ``labels``."""
    want = set(labels.items())
    return {dict(ls)["feature"]: v for (n, ls), v in samples.items() if n == name and want <= ls}


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(log_level="warning")


def predict(client: TestClient, rows: Any, route: str = "/predict_proba", **body: Any) -> Any:
    resp = client.post(route, json={"model": "gauss", "features": np.asarray(rows).tolist(), **body})
    assert resp.status_code == 200, resp.text
    return resp


# -- training statistics ---------------------------------------------------------------------------------
def test_the_model_card_shows_the_training_statistics(client):
    report = train(client)
    stats = client.get("/models/gauss/versions/1").json()["feature_statistics"]
    assert stats["n_rows"] == report["n_train"] == 1600  # the training split, not the validation rows
    assert stats["quantile_levels"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert [f["name"] for f in stats["features"]] == NAMES
    for f, mean, std in zip(stats["features"], MEANS, STDS, strict=True):
        assert f["mean"] == pytest.approx(mean, abs=0.1 * std)
        assert f["std"] == pytest.approx(std, rel=0.1)
        assert f["min"] < f["quantiles"][0] < f["quantiles"][4] < f["quantiles"][-1] < f["max"]
        assert sum(f["bin_proportions"]) == pytest.approx(1.0)


# -- out of range ----------------------------------------------------------------------------------------------
def test_the_header_counts_rows_outside_the_training_range(client):
    train(client)
    stats = client.get("/models/gauss/versions/1").json()["feature_statistics"]["features"]
    lo = np.array([f["min"] for f in stats])
    hi = np.array([f["max"] for f in stats])
    middle = (lo + hi) / 2
    step = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [100, 0, 0], [0, 0, -1], [100, -100, 1]])
    rows = np.array([middle, lo, hi, middle, middle, middle]) + step
    for route in ("/predict_proba", "/predict"):
        resp = predict(client, rows, route)
        assert resp.headers[HEADER] == "3"  # the bounds themselves are in range
        assert resp.headers["x-request-id"]
        assert predict(client, [middle], route).headers[HEADER] == "0"
    s = scrape(client)
    assert sample_total(s, "logreg_out_of_range_rows_total", model="gauss", version="1") == 6
    assert series(s, "logreg_out_of_range_values_total") == {"small": 4, "big": 2, "narrow": 4}


def test_evaluation_answers_the_header_but_is_not_counted(client):
    train(client)
    far = sample(4, seed=1, shift_in_stds=50)
    resp = client.post("/metrics", json={"model": "gauss", "features": far.tolist(), "labels": [0, 1, 0, 1]})
    assert resp.status_code == 200, resp.text
    assert resp.headers[HEADER] == "4"
    s = scrape(client)
    assert sample_total(s, "logreg_out_of_range_rows_total") == 0
    assert client.get("/models/gauss/versions/1/drift").json()["rows_seen"] == 0


def test_no_header_on_errors(client, api_error):
    train(client)
    resp = client.post("/predict", json={"model": "gauss", "features": [[1e9, 1e9]]})  # wrong width
    api_error(resp, 422)
    assert HEADER not in resp.headers
    resp = client.post("/predict", json={"model": "nope", "features": [[1.0, 2.0, 3.0]]})
    api_error(resp, 404)
    assert HEADER not in resp.headers


# -- PSI -----------------------------------------------------------------------------------------------------
def test_psi_is_near_zero_for_data_like_the_training_data_and_large_when_shifted(make_client):
    client = make_client(log_level="warning", drift_window_rows=1000)
    train(client, "gauss")
    train(client, "other")
    for i in range(10):
        predict(client, sample(100, seed=10 + i))  # 1000 fresh rows from the training distribution
    resp = client.post("/predict_proba", json={"model": "other", "features": sample(1000, 99, 3.0).tolist()})
    assert resp.status_code == 200
    s = scrape(client)
    same = series(s, "logreg_feature_psi", model="gauss", version="1")
    shifted = series(s, "logreg_feature_psi", model="other", version="1")
    assert set(same) == set(shifted) == set(NAMES)
    assert max(same.values()) < 0.1, same
    assert min(shifted.values()) > 2, shifted  # features + 3 std: mostly above the top decile
    report = client.get("/models/other/versions/1/drift").json()
    assert report["psi"] == pytest.approx(shifted, rel=1e-4)
    assert report["drifted_features"] == NAMES
    assert client.get("/models/gauss/versions/1/drift").json()["drifted_features"] == []


def test_the_window_slides(make_client):
    client = make_client(log_level="warning", drift_window_rows=200)
    train(client)
    predict(client, sample(200, seed=1, shift_in_stds=3.0))
    shifted = client.get("/models/gauss/versions/1/drift").json()
    assert shifted["window_rows"] == 200 and min(shifted["psi"].values()) > 2
    for i in range(20):  # 1-row requests, as most clients send them: they reach the window too
        predict(client, sample(10, seed=100 + i)[:1])
    for i in range(18):
        predict(client, sample(10, seed=200 + i))
    back = client.get("/models/gauss/versions/1/drift").json()
    assert back["window_rows"] == 200 and back["rows_seen"] == 400
    assert max(back["psi"].values()) < 0.25, back["psi"]  # the shifted rows have left the window


def test_psi_waits_for_enough_rows(client):
    train(client)
    predict(client, sample(10, seed=3))
    s = scrape(client)
    assert series(s, "logreg_feature_psi") == {}  # 10 rows would give a noisy PSI
    assert all(v is not None for v in client.get("/models/gauss/versions/1/drift").json()["psi"].values())
    predict(client, sample(90, seed=4))
    assert set(series(scrape(client), "logreg_feature_psi")) == set(NAMES)


def test_a_window_of_zero_turns_psi_off(make_client):
    client = make_client(log_level="warning", drift_window_rows=0)
    train(client)
    resp = predict(client, sample(300, seed=5, shift_in_stds=3.0))
    assert int(resp.headers[HEADER]) > 0  # out-of-range checks stay on
    s = scrape(client)
    assert series(s, "logreg_feature_psi") == {}
    assert sample_total(s, "logreg_out_of_range_rows_total") > 0
    report = client.get("/models/gauss/versions/1/drift").json()
    assert report["window_size"] == report["window_rows"] == 0
    assert report["psi"] == dict.fromkeys(NAMES)
    assert report["drifted_features"] == []


# -- the drift route -----------------------------------------------------------------------------------------
def test_the_drift_route(client, api_error):
    train(client)
    assert client.put("/models/gauss/aliases/production", json={"version": 1}).status_code == 200
    far = sample(5, seed=6) + np.array([0, 0, 100])
    predict(client, far)
    predict(client, sample(5, seed=7))
    body = client.get("/models/gauss/versions/production/drift").json()
    assert set(body) == {"model", "version", "scope", "pid", "window_size", "window_rows", "rows_seen", "psi",
                         "psi_thresholds", "drifted_features", "out_of_range", "training"}
    assert (body["model"], body["version"], body["scope"]) == ("gauss", 1, "worker")
    assert isinstance(body["pid"], int)
    assert (body["window_size"], body["window_rows"], body["rows_seen"]) == (1000, 10, 10)
    assert set(body["psi"]) == set(NAMES) and all(isinstance(v, float) for v in body["psi"].values())
    assert body["psi_thresholds"] == {"moderate": 0.1, "significant": 0.25}
    assert body["out_of_range"] == {"rows": 5, "values": {"small": 0, "big": 0, "narrow": 5}}
    assert body["training"] == client.get("/models/gauss/versions/1").json()["feature_statistics"]
    api_error(client.get("/models/gauss/versions/9/drift"), 404, "not_found")
    api_error(client.get("/models/nope/versions/1/drift"), 404, "not_found")
    assert "/models/{name}/versions/{version}/drift" in client.get("/openapi.json").json()["paths"]


def test_the_drift_route_before_any_traffic(client):
    train(client)
    body = client.get("/models/gauss/versions/1/drift").json()
    assert body["window_rows"] == body["rows_seen"] == 0
    assert body["psi"] == dict.fromkeys(NAMES)
    assert body["out_of_range"]["rows"] == 0


# -- versions trained before statistics existed --------------------------------------------------------------
def test_a_version_without_statistics_still_predicts(client, api_error, tmp_path):
    train(client)
    registry = ModelRegistry(tmp_path / "store", cache_size=0)
    old = registry.load("gauss", 1)
    meta = old.metadata.model_dump(exclude_unset=True, exclude={"feature_statistics", "name", "version",
                                                                "created_at", "sha256", "artefact"})
    assert registry.save("gauss", old.model, meta).version == 2
    far = sample(3, seed=8, shift_in_stds=50)
    for route in ("/predict", "/predict_proba"):
        resp = predict(client, far, route, version=2)
        assert HEADER not in resp.headers  # unknown, rather than a misleading 0
    assert predict(client, far, version=1).headers[HEADER] == "3"
    assert "feature_statistics" not in client.get("/models/gauss/versions/2").json()
    err = api_error(client.get("/models/gauss/versions/2/drift"), 404, "not_found")
    assert "statistics" in err["message"]
    s = scrape(client)
    assert sample_total(s, "logreg_out_of_range_rows_total", version="2") == 0
    assert {dict(ls)["version"] for (n, ls) in s if n == "logreg_out_of_range_rows_total"} == {"1"}


# -- bounds ------------------------------------------------------------------------------------------------------
def test_wide_models_keep_the_header_but_publish_no_per_feature_series(client):
    from service.services import drift_tracker as drift_api

    d = drift_api.MAX_FEATURE_SERIES + 1
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, d))
    resp = client.post("/train", json={"model": "wide", "features": X.tolist(), "labels": (X[:, 0] > 0).astype(int)
                                       .tolist(), "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    far = rng.normal(size=(150, d)) + 10
    resp = client.post("/predict_proba", json={"model": "wide", "features": far.tolist()})
    assert resp.headers[HEADER] == "150"
    s = scrape(client)
    assert sample_total(s, "logreg_out_of_range_rows_total", model="wide") == 150
    assert series(s, "logreg_out_of_range_values_total", model="wide") == {}
    assert series(s, "logreg_feature_psi", model="wide") == {}
    body = client.get("/models/wide/versions/1/drift").json()
    assert len(body["psi"]) == d and min(body["psi"].values()) > 2


def test_the_least_recently_used_versions_are_dropped(client, monkeypatch):
    from service.services import drift_tracker as drift_api

    monkeypatch.setattr(drift_api, "MAX_VERSIONS", 2)
    far = sample(120, seed=9, shift_in_stds=50)
    for name in ("m1", "m2", "m3"):
        train(client, name, n=300)
        assert client.post("/predict", json={"model": name, "features": far.tolist()}).status_code == 200
        scrape(client)  # publishes the PSI of the tracked versions
    s = scrape(client)
    assert {dict(ls)["model"] for (n, ls) in s if n == "logreg_out_of_range_rows_total"} == {"m2", "m3"}
    assert {dict(ls)["model"] for (n, ls) in s if n == "logreg_feature_psi"} == {"m2", "m3"}
    assert client.get("/models/m1/versions/1/drift").json()["rows_seen"] == 0  # tracked afresh
