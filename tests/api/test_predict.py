"""POST /predict_proba and POST /predict: equal to the engine, version resolution, thresholds, errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

SCORING_ROUTES = ["/predict_proba", "/predict", "/metrics"]


def scoring_body(route: str, model: str, n_rows: int, label: Any = 0, **fields: Any) -> dict[str, Any]:
    """A body for ``route``; /metrics also gets one label per row."""
    out: dict[str, Any] = {"model": model, **fields}
    if route == "/metrics" and "labels" not in out:
        out["labels"] = [label] * n_rows
    return out


def toy_body(route: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` over ``{"model": "toy"}`` (plus one label for /metrics)."""
    return scoring_body(route, **{"model": "toy", "n_rows": 1, **fields})


# -- equality with the engine -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["toy", "bc", "iris"])
def test_predict_proba_equals_the_engine(served, name):
    data = served.data[name]
    resp = served.client.post("/predict_proba", json={"model": name, "features": data.X.tolist()})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert set(out) == {"model", "version", "classes", "probabilities"}
    loaded = served.load(name, 1)
    expected = loaded.model.predict_proba(data.X)
    assert out["model"] == name
    assert out["version"] == 1
    assert out["classes"] == loaded.model.classes_.tolist() == served.reports[name]["classes"]
    got = np.asarray(out["probabilities"])
    assert got.shape == expected.shape == (len(data.X), len(out["classes"]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["toy", "bc", "iris"])
def test_records_in_any_key_order_equal_features(served, name):
    data = served.data[name]
    by_rows = served.client.post("/predict_proba", json={"model": name, "features": data.X.tolist()}).json()
    by_name = served.client.post("/predict_proba", json={"model": name, "records": data.records(reverse_keys=True)})
    assert by_name.status_code == 200, by_name.text
    np.testing.assert_allclose(by_name.json()["probabilities"], by_rows["probabilities"], rtol=0, atol=1e-12)


def test_a_single_row(served):
    row = served.data["bc"].X[:1]
    out = served.client.post("/predict_proba", json={"model": "bc", "features": row.tolist()}).json()
    np.testing.assert_allclose(out["probabilities"], served.load("bc").model.predict_proba(row), rtol=0, atol=1e-12)


# -- /predict and thresholds ----------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [None, 0.0, 0.05, 0.3, 0.5, 0.77, 1.0])
def test_predict_binary_threshold(served, threshold):
    data = served.data["bc"]
    url = "/predict" if threshold is None else f"/predict?threshold={threshold}"
    resp = served.client.post(url, json={"model": "bc", "features": data.X.tolist()})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert set(out) == {"model", "version", "predictions", "threshold"}
    t = 0.5 if threshold is None else threshold
    assert out["threshold"] == t
    model = served.load("bc").model
    p1 = model.predict_proba(data.X)[:, 1]
    assert out["predictions"] == model.classes_[(p1 >= t).astype(int)].tolist()
    if threshold == 0.0:
        assert set(out["predictions"]) == {"malignant"}


def test_predict_multiclass_is_the_argmax(served):
    data = served.data["iris"]
    out = served.client.post("/predict", json={"model": "iris", "features": data.X.tolist()}).json()
    model = served.load("iris").model
    assert out["threshold"] is None
    assert out["predictions"] == model.classes_[np.argmax(model.predict_proba(data.X), axis=1)].tolist()
    assert np.mean(np.asarray(out["predictions"]) == data.y) > 0.9


def test_predict_keeps_int_labels(served):
    out = served.client.post("/predict", json={"model": "toy", "features": served.data["toy"].X.tolist()}).json()
    assert all(type(p) is int for p in out["predictions"])


@pytest.mark.parametrize("query", ["threshold=1.5", "threshold=-0.1", "threshold=abc", "threshold=nan",
                                   "threshold=inf", "threshold="])
def test_predict_threshold_out_of_range_is_422(served, api_error, query):
    resp = served.client.post(f"/predict?{query}", json={"model": "bc", "features": [[0.0] * 30]})
    err = api_error(resp, 422, "validation_error", "threshold")
    assert err["details"][0]["loc"] == ["query", "threshold"]


def test_threshold_for_a_multiclass_model_is_422(served, api_error):
    resp = served.client.post("/predict?threshold=0.5", json={"model": "iris", "features": [[5.0, 3.0, 1.5, 0.2]]})
    api_error(resp, 422, "invalid_input", "binary")


def test_stored_threshold_is_the_default(make_client, trainer, breast_cancer_csv, breast_cancer):
    client = make_client()
    trainer.csv(client, "bc", breast_cancer_csv, "diagnosis")
    X = breast_cancer.X[:80].tolist()
    assert client.put("/models/bc/versions/1/threshold", json={"threshold": 0.8}).status_code == 200
    stored = client.post("/predict", json={"model": "bc", "features": X}).json()
    assert stored["threshold"] == 0.8
    p1 = np.asarray(client.post("/predict_proba", json={"model": "bc", "features": X}).json()["probabilities"])[:, 1]
    assert stored["predictions"] == np.where(p1 >= 0.8, "malignant", "benign").tolist()
    override = client.post("/predict?threshold=0.2", json={"model": "bc", "features": X}).json()
    assert override["threshold"] == 0.2
    assert override["predictions"] == np.where(p1 >= 0.2, "malignant", "benign").tolist()
    assert client.put("/models/bc/versions/1/threshold", json={"threshold": None}).status_code == 200
    assert client.post("/predict", json={"model": "bc", "features": X}).json()["threshold"] == 0.5


# -- version resolution ---------------------------------------------------------------------------------
def test_version_resolution(make_client, trainer, toy):
    client = make_client()
    trainer.json(client, "toy", toy, validation_fraction=0)
    trainer.json(client, "toy", toy, validation_fraction=0, params={"C": 0.01})
    X = toy.X.tolist()
    reg = client.app.state.services.registry

    def version_of(**fields: Any) -> int:
        resp = client.post("/predict_proba", json={"model": "toy", "features": X, **fields})
        assert resp.status_code == 200, resp.text
        out = resp.json()
        expected = reg.load("toy", out["version"]).model.predict_proba(toy.X)
        np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-12)
        return out["version"]

    assert version_of() == 2  # latest
    assert version_of(version=1) == 1
    assert version_of(version="1") == 1
    assert version_of(version=None) == 2
    assert client.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
    assert version_of() == 1  # production wins over latest
    assert version_of(version="production") == 1
    assert version_of(version=2) == 2
    assert client.put("/models/toy/aliases/canary", json={"version": 2}).status_code == 200
    assert version_of(version="canary") == 2
    assert client.post("/predict", json={"model": "toy", "features": X}).json()["version"] == 1
    assert client.delete("/models/toy/aliases/production").status_code == 204
    assert version_of() == 2
    p_v1 = client.post("/predict_proba", json={"model": "toy", "version": 1, "features": X}).json()["probabilities"]
    p_v2 = client.post("/predict_proba", json={"model": "toy", "version": 2, "features": X}).json()["probabilities"]
    assert not np.allclose(p_v1, p_v2)  # really two different models


@pytest.mark.parametrize("route", SCORING_ROUTES)
@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"model": "nope"}, "model 'nope' not found"),
        ({"version": 99}, "no version 99"),
        ({"version": "99"}, "no version 99"),
        ({"version": 0}, "no version 0"),
        ({"version": "staging"}, "alias 'staging' not found"),
    ],
)
def test_unknown_model_version_or_alias_is_404(served, api_error, route, fields, fragment):
    payload = toy_body(route, {"features": [[1.0, 2.0]], **fields})
    api_error(served.client.post(route, json=payload), 404, "not_found", fragment)


# -- 422 ------------------------------------------------------------------------------------------------
BAD_SCORING_INPUTS = [
    ({"features": [[1.0, 2.0, 3.0]]}, "invalid_input", "expects 2 features"),
    ({"features": [[1.0]]}, "invalid_input", "expects 2 features"),
    ({"records": [{"a": 1.0}]}, "invalid_input", "missing feature(s) 'b'"),
    ({"records": [{"a": 1.0, "b": 2.0, "zzz": 3.0}]}, "invalid_input", "unknown feature(s) 'zzz'"),
    ({"records": [{"a": 1.0, "c": 2.0}]}, "invalid_input", "'c'"),
    ({"records": [{"x0": 1.0, "x1": 2.0}]}, "invalid_input", "'x0'"),
    ({"records": [{"a": "1", "b": 2.0}]}, "invalid_input", "'1'"),
    ({"records": [{"a": None, "b": 2.0}]}, "invalid_input", "is None"),
    ({"records": [[1.0, 2.0]]}, "invalid_input", "item 0"),
    ({"records": []}, "invalid_input", "records"),
    ({"records": {"a": 1.0, "b": 2.0}}, "invalid_input", "records"),
    ({"features": [[1.0, 2.0]], "records": [{"a": 1.0, "b": 2.0}]}, "invalid_input", "exactly one"),
    ({}, "invalid_input", "exactly one"),
    ({"features": []}, "invalid_input", "empty"),
    ({"features": [[]]}, "invalid_input", "empty"),
    ({"features": "1,2"}, "invalid_input", "features"),
    ({"features": [1.0, 2.0]}, "invalid_input", "row 0"),
    ({"features": [[1.0, 2.0], [1.0]]}, "invalid_input", "row 1 has 1"),
    ({"features": [[1.0, "2"]]}, "invalid_input", "'2'"),
    ({"features": [[1.0, "abc"]]}, "invalid_input", "'abc'"),
    ({"features": [[1.0, None]]}, "invalid_input", "is None"),
    ({"features": [[1.0, [2.0]]]}, "invalid_input", "[2.0]"),
    ({"features": [[1.0, {"x": 2}]]}, "invalid_input", "every value must be a number"),
    ({"features": [[[1.0, 2.0]]]}, "invalid_input", "every value must be a number"),
    ({"model": "../x"}, "validation_error", "model"),
    ({"model": "a" * 65}, "validation_error", "model"),
    ({"model": ""}, "validation_error", "model"),
    ({"model": ".."}, "validation_error", "model"),
    ({"model": None}, "validation_error", "model"),
    ({"model": ["toy"]}, "validation_error", "model"),
    ({"version": 1.5}, "validation_error", "version"),
    ({"version": [1]}, "validation_error", "version"),
    ({"version": {"v": 1}}, "validation_error", "version"),
    ({"unexpected": 1}, "validation_error", "unexpected"),
]


@pytest.mark.parametrize("route", SCORING_ROUTES)
@pytest.mark.parametrize(("fields", "kind", "fragment"), BAD_SCORING_INPUTS)
def test_bad_scoring_input_is_422(served, api_error, route, fields, kind, fragment):
    needs_rows = fields and not fields.keys() & {"features", "records"}
    payload = toy_body(route, {**({"features": [[1.0, 2.0]]} if needs_rows else {}), **fields})
    api_error(served.client.post(route, json=payload), 422, kind, fragment)


def test_missing_model_is_422(served, api_error):
    err = api_error(served.client.post("/predict_proba", json={"features": [[1.0, 2.0]]}), 422, "validation_error")
    assert err["details"][0]["loc"] == ["body", "model"]


RAW_BODIES = [
    b'{"model": "toy", "features": [[1e400, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[-1e999, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[NaN, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[Infinity, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[-Infinity, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[1' + b"0" * 400 + b", 1]], " + b'"labels": [0]}',
    b'{"model": "toy", "features": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"model": "toy", "features": [[1, 2]]',
    b'{"model": "toy", "features": [[1, 2]],}',
    b"{'model': 'toy'}",
    b"[1, 2]",
    b'[{"model": "toy", "features": [[1, 2]]}]',
    b'"toy"',
    b"3.14",
    b"true",
    b"null",
    b"",
    b"   ",
    b"\xff\xfe\xfd",
]


@pytest.mark.parametrize("route", SCORING_ROUTES)
@pytest.mark.parametrize("raw", RAW_BODIES)
def test_malformed_json_is_422(served, api_error, route, raw):
    resp = served.client.post(route, content=raw, headers={"content-type": "application/json"})
    api_error(resp, 422, "invalid_input")


@pytest.mark.parametrize("route", SCORING_ROUTES)
def test_large_but_safe_values_are_scored(served, route):
    features = [[1e12, -1e12], [-1e15, 3.0], [1e-300, 5e-324], [123456789012345678901234567890, 0]]
    resp = served.client.post(route, json=scoring_body(route, "toy", len(features), features=features))
    assert resp.status_code == 200, resp.text
    if route == "/predict_proba":
        got = np.asarray(resp.json()["probabilities"])
        assert np.isfinite(got).all()
        expected = served.load("toy").model.predict_proba(np.asarray(features, dtype=float))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("route", SCORING_ROUTES)
@pytest.mark.parametrize(("name", "row", "label"), [("iris", [1e308, 1e308, 1e308, 1e308], "setosa"),
                                                    ("iris", [-1e308, 0.0, 0.0, 1e308], "setosa"),
                                                    ("toy", [1e308, 1e308], 1)])
def test_huge_finite_features_never_give_null_or_500(served, route, name, row, label):
    resp = served.client.post(route, json=scoring_body(route, name, 1, label=label, features=[row]))
    assert resp.status_code in (200, 422), resp.text
    with np.errstate(all="ignore"):  # 200 exactly when the engine's probabilities are finite
        finite = bool(np.isfinite(served.load(name).model.predict_proba(np.array([row]))).all())
    assert resp.status_code == (200 if finite else 422), resp.text
    if resp.status_code == 200 and route == "/predict_proba":
        proba = resp.json()["probabilities"][0]
        assert None not in proba
        assert sum(proba) == pytest.approx(1.0)


def test_no_more_rows_than_max_predict_rows(make_client, trainer, toy, api_error):
    client = make_client(max_predict_rows=3)
    trainer.json(client, "toy", toy, validation_fraction=0)
    for route in SCORING_ROUTES:
        ok = client.post(route, json=scoring_body(route, "toy", 3, features=[[1.0, 2.0]] * 3))
        assert ok.status_code == 200, ok.text
        err = api_error(client.post(route, json=scoring_body(route, "toy", 4, features=[[1.0, 2.0]] * 4)),
                        413, "limit_exceeded", "4 rows")
        assert err["details"]["limit"] == 3
        records = [{"a": 1.0, "b": 2.0}] * 4
        api_error(client.post(route, json=scoring_body(route, "toy", 4, records=records)), 413, "limit_exceeded")


@pytest.mark.parametrize("route", SCORING_ROUTES)
def test_huge_version_number_is_404(served, api_error, route):
    payload = scoring_body(route, "toy", 1, version="9" * 30, features=[[1.0, 2.0]])
    api_error(served.client.post(route, json=payload), 404, "not_found")


@pytest.mark.parametrize("route", ["/predict_proba", "/metrics"])
def test_huge_finite_features_in_production_warning_mode(served, route):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        resp = served.client.post(route, json=scoring_body(route, "iris", 1, label="setosa", features=[[1e308] * 4]))
    assert resp.status_code in (200, 422), resp.text
    if resp.status_code == 200 and route == "/predict_proba":
        assert None not in resp.json()["probabilities"][0]
