"""``explain=true`` on /predict_proba and /predict: contributions that add up to the logit exactly, the top
reasons, and single-feature flips that land exactly on the decision threshold, calibrated models included."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from service.domain import MAX_EXPLAIN_ROWS

BINARY_KEYS = {"predicted_class", "logit", "baseline", "contributions", "top_reasons", "threshold",
               "logit_threshold", "flips"}
MULTICLASS_KEYS = {"predicted_class", "logit", "baseline", "contributions", "top_reasons"}


@pytest.fixture(scope="module")
def extra(served, trainer, breast_cancer_csv):
    """Calibrated breast-cancer versions and a model with an all-constant feature (coefficient exactly 0)."""
    for method in ("platt", "isotonic"):
        served.reports[f"bc-{method}"] = trainer.csv(served.client, f"bc-{method}", breast_cancer_csv, "diagnosis",
                                                     calibration=method)
    toy = served.data["toy"]
    X = np.column_stack([toy.X, np.full(len(toy.X), 7.0)])
    body = {"model": "const", "features": X.tolist(), "labels": toy.y.tolist(), "feature_names": ["a", "b", "c"],
            "validation_fraction": 0, "params": {"penalty": "l1", "solver": "proximal", "C": 10}}
    assert served.client.post("/train", json=body).status_code == 201
    return served


def explain(client: Any, route: str, model: str, X: np.ndarray, query: str = "") -> dict[str, Any]:
    resp = client.post(f"{route}?explain=true{query}", json={"model": model, "features": X.tolist()})
    assert resp.status_code == 200, resp.text
    return resp.json()


def proba_at(model: Any, row: np.ndarray) -> float:
    return float(model.predict_proba(row[None, :])[0, 1])


# -- contributions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/predict_proba", "/predict"])
@pytest.mark.parametrize("name", ["toy", "bc"])
def test_binary_contributions_add_up_to_the_logit(served, route, name):
    data = served.data[name]
    out = explain(served.client, route, name, data.X)
    model = served.load(name).model
    card = served.client.get(f"/models/{name}/versions/1").json()
    (positive, coefs), = card["coefficients"].items()
    mean = np.asarray(card["standardization"]["mean"])
    coef = np.array([coefs[f] for f in data.feature_names])
    logits = model.decision_function(data.X)
    assert len(out["explanations"]) == len(data.X)
    for i, e in enumerate(out["explanations"]):
        assert set(e) == BINARY_KEYS
        assert list(e["contributions"]) == data.feature_names
        assert e["logit"] == pytest.approx(logits[i], abs=1e-12)
        assert e["baseline"] + sum(e["contributions"].values()) == pytest.approx(e["logit"], abs=1e-9)
        assert e["baseline"] == pytest.approx(card["intercepts"][positive] + coef @ mean, abs=1e-9)
        np.testing.assert_allclose(list(e["contributions"].values()), coef * (data.X[i] - mean), rtol=1e-12)


@pytest.mark.parametrize("route", ["/predict_proba", "/predict"])
def test_multiclass_contributions_per_class(served, route):
    data = served.data["iris"]
    out = explain(served.client, route, "iris", data.X)
    model = served.load("iris").model
    Z = model.decision_function(data.X)
    keys = [str(c) for c in model.classes_]
    predicted = model.classes_[np.argmax(model.predict_proba(data.X), axis=1)]
    for i, e in enumerate(out["explanations"]):
        assert set(e) == MULTICLASS_KEYS
        assert e["predicted_class"] == predicted[i]
        assert list(e["logit"]) == keys == list(e["baseline"]) == list(e["contributions"])
        for k, key in enumerate(keys):
            assert e["logit"][key] == pytest.approx(Z[i, k], abs=1e-12)
            total = e["baseline"][key] + sum(e["contributions"][key].values())
            assert total == pytest.approx(e["logit"][key], abs=1e-9)
            expected = model.coef_[k] * (data.X[i] - model.mean_)
            np.testing.assert_allclose(list(e["contributions"][key].values()), expected, rtol=1e-12)
        own = e["contributions"][str(e["predicted_class"])]
        pushing = sorted((c for c in own.values() if c > 0), reverse=True)[:3]
        assert [r["contribution"] for r in e["top_reasons"]] == pushing


def test_records_give_the_same_explanations(served):
    data = served.data["bc"]
    by_rows = explain(served.client, "/predict", "bc", data.X[:5])
    resp = served.client.post("/predict?explain=true", json={"model": "bc", "records": data.records(True)[:5]})
    assert resp.status_code == 200
    assert resp.json()["explanations"] == by_rows["explanations"]


# -- top reasons ----------------------------------------------------------------------------------------
def test_top_reasons_push_toward_the_predicted_class(served):
    data = served.data["bc"]
    out = explain(served.client, "/predict", "bc", data.X)
    seen = set()
    for i, (label, e) in enumerate(zip(out["predictions"], out["explanations"], strict=True)):
        assert e["predicted_class"] == label
        sign = 1 if label == "malignant" else -1
        seen.add(sign)
        pushing = sorted(((sign * c, f) for f, c in e["contributions"].items() if sign * c > 0), reverse=True)
        assert [r["feature"] for r in e["top_reasons"]] == [f for _, f in pushing[:3]]
        for r in e["top_reasons"]:
            assert r["contribution"] == e["contributions"][r["feature"]]
            assert r["value"] == data.X[i, data.feature_names.index(r["feature"])]
    assert seen == {1, -1}


# -- flips ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [None, 0.2, 0.5, 0.83])
def test_flips_land_exactly_on_the_threshold(served, threshold):
    data = served.data["bc"]
    rows = data.X[::40]
    query = "" if threshold is None else f"&threshold={threshold}"
    out = explain(served.client, "/predict", "bc", rows, query)
    t = 0.5 if threshold is None else threshold
    model = served.load("bc").model
    for i, e in enumerate(out["explanations"]):
        assert e["threshold"] == t == out["threshold"]
        assert e["logit_threshold"] == pytest.approx(math.log(t / (1 - t)), abs=1e-12)
        for j, name in enumerate(data.feature_names):
            flip = e["flips"][name]
            assert flip["value"] == pytest.approx(rows[i, j] + flip["delta"], rel=1e-12)
            moved = rows[i].copy()
            moved[j] = flip["value"]
            assert model.decision_function(moved[None, :])[0] == pytest.approx(e["logit_threshold"], abs=1e-7)
            assert proba_at(model, moved) == pytest.approx(t, abs=1e-8)
            # a little further and the decision is the other one
            beyond = moved.copy()
            beyond[j] += 1e-6 * np.sign(flip["delta"]) * max(1.0, abs(flip["delta"]))
            assert (proba_at(model, beyond) >= t) != (e["predicted_class"] == "malignant")


def test_predict_proba_flips_use_the_stored_threshold(make_client, trainer, toy):
    client = make_client()
    trainer.json(client, "toy", toy, validation_fraction=0)
    plain = explain(client, "/predict_proba", "toy", toy.X)
    assert {e["threshold"] for e in plain["explanations"]} == {0.5}
    assert client.put("/models/toy/versions/1/threshold", json={"threshold": 0.7}).status_code == 200
    out = explain(client, "/predict_proba", "toy", toy.X)
    p1 = np.asarray(out["probabilities"])[:, 1]
    for p, e in zip(p1, out["explanations"], strict=True):
        assert e["threshold"] == 0.7
        assert e["logit_threshold"] == pytest.approx(math.log(0.7 / 0.3))
        assert e["predicted_class"] == int(p >= 0.7)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_no_finite_flip_at_thresholds_0_and_1(served, threshold):
    out = explain(served.client, "/predict", "bc", served.data["bc"].X[:3], f"&threshold={threshold}")
    for e in out["explanations"]:
        assert e["logit_threshold"] is None
        assert set(e["flips"].values()) == {None}


def test_no_flip_for_a_zero_coefficient(extra):
    X = np.array([[1.0, 1.0, 7.0], [2.5, 2.0, 7.0]])
    out = explain(extra.client, "/predict", "const", X)
    assert extra.load("const").model.coef_[0, 2] == 0.0
    for e in out["explanations"]:
        assert e["contributions"]["c"] == 0.0
        assert e["flips"]["c"] is None
        assert e["flips"]["a"] is not None and e["flips"]["b"] is not None


@pytest.mark.parametrize("method", ["platt", "isotonic"])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_flips_are_exact_for_calibrated_models(extra, method, threshold):
    name = f"bc-{method}"
    data = extra.data["bc"]
    rows = data.X[::25]
    out = explain(extra.client, "/predict", name, rows, f"&threshold={threshold}")
    model = extra.load(name).model
    assert model.calibration_ == method
    cut = out["explanations"][0]["logit_threshold"]
    if cut is None:  # an isotonic map that never (or always) reaches the threshold: nothing flips
        assert method == "isotonic"
        return
    # the decision on calibrated probabilities is exactly "raw logit >= cut"
    if method == "platt":
        assert proba_at_logit(model, cut) == pytest.approx(threshold, abs=1e-12)
    else:
        assert proba_at_logit(model, cut) >= threshold > proba_at_logit(model, np.nextafter(cut, -np.inf))
    for i, e in enumerate(out["explanations"]):
        assert e["logit_threshold"] == cut
        assert e["predicted_class"] == out["predictions"][i]
        assert (model.decision_function(rows[i : i + 1])[0] >= cut) == (e["predicted_class"] == "malignant")
        assert e["baseline"] + sum(e["contributions"].values()) == pytest.approx(e["logit"], abs=1e-9)
        for j, name_j in enumerate(data.feature_names):
            moved = rows[i].copy()
            moved[j] = e["flips"][name_j]["value"]
            assert model.decision_function(moved[None, :])[0] == pytest.approx(cut, abs=1e-7)


def proba_at_logit(model: Any, s: float) -> float:
    return float(model.calibrator_.predict(np.array([s]))[0])


# -- the flag itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["/predict_proba", "/predict"])
def test_the_flag_reads_like_a_boolean(served, route):
    body = {"model": "toy", "features": [[1.0, 2.0]]}
    plain = ["", "?explain=false", "?explain=0", "?explain=no", "?explain=False"]
    if route == "/predict":
        plain.append("?threshold=0.5")
    for query in plain:
        resp = served.client.post(route + query, json=body)
        assert resp.status_code == 200, (query, resp.text)
        assert "explanations" not in resp.json(), query
    for query in ("?explain=true", "?explain=1", "?explain=True", "?explain=yes", "?explain=on"):
        out = served.client.post(route + query, json=body).json()
        assert len(out["explanations"]) == 1, query


@pytest.mark.parametrize("route", ["/predict_proba", "/predict"])
def test_a_bad_flag_is_422(served, route, api_error):
    resp = served.client.post(route + "?explain=maybe", json={"model": "toy", "features": [[1.0, 2.0]]})
    api_error(resp, 422)


def test_too_many_rows_to_explain_is_413(served, api_error):
    rows = [[1.0, 2.0]] * (MAX_EXPLAIN_ROWS + 1)
    resp = served.client.post("/predict?explain=true", json={"model": "toy", "features": rows})
    api_error(resp, 413, mentions=str(MAX_EXPLAIN_ROWS))
    ok = served.client.post("/predict?explain=true", json={"model": "toy", "features": rows[:-1]})
    assert ok.status_code == 200 and len(ok.json()["explanations"]) == MAX_EXPLAIN_ROWS


def test_explanations_are_documented(served):
    spec = served.client.get("/openapi.json").json()
    for path in ("/predict_proba", "/predict"):
        params = {p["name"]: p for p in spec["paths"][path]["post"]["parameters"]}
        assert params["explain"]["in"] == "query"
        assert params["explain"]["schema"]["default"] is False
    assert "explanations" in spec["components"]["schemas"]["PredictProbaResponse"]["properties"]


def test_explanations_are_bounded_by_their_values_not_only_rows(make_client, api_error):
    """A wide model: few rows already make a huge answer; the 413 names the limit before any work."""
    from service.domain import MAX_EXPLAIN_VALUES

    rng = np.random.default_rng(0)
    d = 400
    X = rng.normal(size=(60, d))
    client = make_client()
    resp = client.post("/train", json={"model": "wide", "features": X.tolist(), "labels": [0, 1] * 30,
                                       "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    fits = MAX_EXPLAIN_VALUES // (3 * d)
    rows = rng.normal(size=(fits + 1, d)).tolist()
    err = api_error(client.post("/predict?explain=true", json={"model": "wide", "features": rows}), 413,
                    mentions="MAX_EXPLAIN_VALUES")
    assert err["details"]["values"] == (fits + 1) * 3 * d and f"send at most {fits} rows" in err["message"]
    ok = client.post("/predict?explain=true", json={"model": "wide", "features": rows[:fits]})
    assert ok.status_code == 200 and len(ok.json()["explanations"]) == fits
