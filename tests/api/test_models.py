"""Registry routes: listings, model cards, aliases, deletes and stored thresholds."""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.support import LOCAL_URL


def _populate(client, trainer, toy):
    """``toy`` versions 1 and 2 (binary) and ``iris3`` version 1 (3 classes)."""
    trainer.json(client, "toy", toy, validation_fraction=0)
    trainer.json(client, "toy", toy, validation_fraction=0, params={"C": 0.1}, description="second")
    X = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.1, 0.0], [1.1, 1.0], [2.1, 2.0]]
    resp = client.post("/train", json={"model": "iris3", "features": X, "labels": ["a", "b", "c", "a", "b", "c"],
                                       "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    return client


@pytest.fixture
def two_versions(make_client, trainer, toy):
    """A fresh registry with two ``toy`` versions and a 3-class ``iris3``, for tests that change it."""
    return _populate(make_client(), trainer, toy)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory, trainer, toy):
    """The same registry shared by the tests that only provoke errors (and so change nothing)."""
    store = tmp_path_factory.mktemp("frozen") / "store"
    app = create_app(Settings(model_store=store))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL) as client:
        yield _populate(client, trainer, toy)


# -- listings -------------------------------------------------------------------------------------------
def test_empty_registry_lists_no_models(make_client):
    resp = make_client().get("/models")
    assert resp.status_code == 200
    assert resp.json() == {"models": []}


def test_list_models(two_versions):
    two_versions.put("/models/toy/aliases/production", json={"version": 1})
    models = two_versions.get("/models").json()["models"]
    assert models == [
        {"name": "iris3", "latest_version": 1, "versions": [1], "aliases": {}},
        {"name": "toy", "latest_version": 2, "versions": [1, 2], "aliases": {"production": 1}},
    ]


def test_list_versions(two_versions):
    two_versions.put("/models/toy/aliases/production", json={"version": 2})
    two_versions.put("/models/toy/versions/1/threshold", json={"threshold": 0.25})
    resp = two_versions.get("/models/toy")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["name"] == "toy"
    v1, v2 = out["versions"]
    assert (v1["version"], v2["version"]) == (1, 2)
    assert (v1["aliases"], v2["aliases"]) == ([], ["production"])
    assert (v1["threshold"], v2["threshold"]) == (0.25, None)
    assert (v1["description"], v2["description"]) == (None, "second")
    assert v1["converged"] is True
    assert v1["n_samples"] == 8
    assert v1["tags"] == {}
    assert v1["created_at"] <= v2["created_at"]
    assert "coefficients" not in v1  # the listing is a summary


# -- model card -----------------------------------------------------------------------------------------
def test_model_card_binary(served):
    resp = served.client.get("/models/toy/versions/1")
    assert resp.status_code == 200, resp.text
    card = resp.json()
    loaded = served.load("toy", 1)
    model = loaded.model
    assert card["name"] == "toy"
    assert card["version"] == 1
    assert card["classes"] == [0, 1]
    assert card["feature_names"] == ["a", "b"]
    # binary: one row of coefficients, keyed by the positive class, then by feature name
    assert set(card["coefficients"]) == {"1"}
    assert card["coefficients"]["1"] == pytest.approx(dict(zip(["a", "b"], model.coef_[0], strict=True)), abs=1e-12)
    assert card["intercepts"] == pytest.approx({"1": float(model.intercept_[0])}, abs=1e-12)
    artefact = served.store / "toy" / "1" / "model.joblib"
    assert card["sha256"] == hashlib.sha256(artefact.read_bytes()).hexdigest()
    assert card["created_at"].endswith("Z")
    assert datetime.fromisoformat(card["created_at"].replace("Z", "+00:00")).tzinfo is not None
    assert card["loss_history"] == served.reports["toy"]["loss_history"]
    assert card["params"]["penalty"] == "l2"
    assert card["params"]["solver"] == "lbfgs"
    assert card["train_metrics"] == served.reports["toy"]["train_metrics"]
    assert card["aliases"] == []
    assert card["threshold"] is None
    assert "validation_sample" not in card


def test_model_card_multiclass(served):
    card = served.client.get("/models/iris/versions/1").json()
    model = served.load("iris", 1).model
    names = served.data["iris"].feature_names
    assert set(card["coefficients"]) == {"setosa", "versicolor", "virginica"}
    for row, cls in zip(model.coef_, model.classes_, strict=True):
        assert card["coefficients"][cls] == pytest.approx(dict(zip(names, row, strict=True)), abs=1e-12)
    assert card["intercepts"] == pytest.approx(dict(zip(model.classes_, model.intercept_, strict=True)), abs=1e-12)
    assert card["validation_metrics"] == served.reports["iris"]["validation_metrics"]


def test_model_card_coefficients_reproduce_the_predictions(served):
    data = served.data["bc"]
    card = served.client.get("/models/bc/versions/1").json()
    w = np.array([card["coefficients"]["malignant"][n] for n in data.feature_names])
    z = data.X @ w + card["intercepts"]["malignant"]
    p1 = np.asarray(served.client.post("/predict_proba", json={"model": "bc", "features": data.X.tolist()})
                    .json()["probabilities"])[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), p1, rtol=1e-9, atol=1e-12)


def test_model_card_by_alias(two_versions):
    two_versions.put("/models/toy/aliases/production", json={"version": 1})
    card = two_versions.get("/models/toy/versions/production").json()
    assert card["version"] == 1
    assert card["aliases"] == ["production"]


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/models/nope", 404, "not_found"),
        ("/models/nope/versions/1", 404, "not_found"),
        ("/models/toy/versions/3", 404, "not_found"),
        ("/models/toy/versions/0", 404, "not_found"),
        ("/models/toy/versions/-1", 404, "not_found"),
        ("/models/toy/versions/staging", 404, "not_found"),
        ("/models/" + "a" * 65, 422, "validation_error"),
        ("/models/" + "a" * 65 + "/versions/1", 422, "validation_error"),
        ("/models/.hidden", 422, "validation_error"),
        ("/models/%2E%2E", 422, "validation_error"),
        ("/models/%2E%2E/versions/1", 422, "validation_error"),
        ("/models/a%20b", 422, "validation_error"),
    ],
)
def test_listing_and_card_errors(frozen, api_error, path, status, kind):
    api_error(frozen.get(path), status, kind)


def test_path_traversal_never_reaches_the_filesystem(frozen, api_error):
    resp = frozen.get("/models/%2E%2E%2F%2E%2E%2Fetc/versions/1")
    api_error(resp, resp.status_code)
    assert resp.status_code in (404, 422)


# -- aliases --------------------------------------------------------------------------------------------
def test_set_move_and_delete_alias(two_versions, api_error):
    c = two_versions
    resp = c.put("/models/toy/aliases/production", json={"version": 1})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": "toy", "alias": "production", "version": 1, "previous_version": None}
    moved = c.put("/models/toy/aliases/production", json={"version": 2}).json()
    assert moved == {"name": "toy", "alias": "production", "version": 2, "previous_version": 1}
    assert c.get("/models").json()["models"][1]["aliases"] == {"production": 2}
    deleted = c.delete("/models/toy/aliases/production")
    assert deleted.status_code == 204
    assert deleted.content == b""
    api_error(c.delete("/models/toy/aliases/production"), 404, "not_found", "production")
    assert c.get("/models").json()["models"][1]["aliases"] == {}


@pytest.mark.parametrize(
    ("path", "payload", "status", "kind"),
    [
        ("/models/toy/aliases/production", {"version": 7}, 404, "not_found"),
        ("/models/nope/aliases/production", {"version": 1}, 404, "not_found"),
        ("/models/toy/aliases/production", {"version": 0}, 422, "validation_error"),
        ("/models/toy/aliases/production", {"version": -1}, 422, "validation_error"),
        ("/models/toy/aliases/production", {"version": "abc"}, 422, "validation_error"),
        ("/models/toy/aliases/production", {"version": 1.5}, 422, "validation_error"),
        ("/models/toy/aliases/production", {}, 422, "validation_error"),
        ("/models/toy/aliases/production", {"version": 1, "extra": 1}, 422, "validation_error"),
        ("/models/toy/aliases/production", [1], 422, "validation_error"),
        ("/models/toy/aliases/1abc", {"version": 1}, 422, "validation_error"),
        ("/models/toy/aliases/" + "a" * 65, {"version": 1}, 422, "validation_error"),
        ("/models/toy/aliases/_x", {"version": 1}, 422, "validation_error"),
        ("/models/" + "a" * 65 + "/aliases/production", {"version": 1}, 422, "validation_error"),
    ],
)
def test_alias_errors(frozen, api_error, path, payload, status, kind):
    api_error(frozen.put(path, json=payload), status, kind)


@pytest.mark.parametrize("raw", [b"", b"{bad", b"null", b'"1"'])
def test_alias_with_malformed_body_is_422(frozen, api_error, raw):
    resp = frozen.put("/models/toy/aliases/production", content=raw, headers={"content-type": "application/json"})
    api_error(resp, 422, "validation_error")


def test_delete_unknown_alias_is_404(frozen, api_error):
    api_error(frozen.delete("/models/toy/aliases/staging"), 404, "not_found", "staging")
    api_error(frozen.delete("/models/nope/aliases/staging"), 404, "not_found")
    api_error(frozen.delete("/models/toy/aliases/9x"), 422, "validation_error")


# -- deleting versions ----------------------------------------------------------------------------------
def test_delete_version_refused_while_an_alias_points_at_it(two_versions, api_error):
    c = two_versions
    c.put("/models/toy/aliases/production", json={"version": 1})
    c.put("/models/toy/aliases/stable", json={"version": 1})
    err = api_error(c.delete("/models/toy/versions/1"), 409, "conflict", "production")
    assert err["details"]["aliases"] == ["production", "stable"]
    assert c.get("/models/toy/versions/1").status_code == 200  # still there
    c.delete("/models/toy/aliases/production")
    api_error(c.delete("/models/toy/versions/1"), 409, "conflict", "stable")
    c.put("/models/toy/aliases/stable", json={"version": 2})
    resp = c.delete("/models/toy/versions/1")
    assert resp.status_code == 204
    assert resp.content == b""


def test_deleted_version_is_gone_and_its_number_never_reused(two_versions, trainer, toy, api_error):
    c = two_versions
    c.put("/models/toy/versions/2/threshold", json={"threshold": 0.9})
    assert c.delete("/models/toy/versions/2").status_code == 204
    api_error(c.get("/models/toy/versions/2"), 404, "not_found")
    api_error(c.delete("/models/toy/versions/2"), 404, "not_found")
    api_error(c.post("/predict_proba", json={"model": "toy", "version": 2, "features": [[1.0, 2.0]]}), 404)
    assert c.post("/predict_proba", json={"model": "toy", "features": [[1.0, 2.0]]}).json()["version"] == 1
    assert [v["version"] for v in c.get("/models/toy").json()["versions"]] == [1]
    assert trainer.json(c, "toy", toy)["version"] == 3
    assert c.get("/models/toy/versions/3").json()["threshold"] is None  # not inherited from deleted v2
    assert c.delete("/models/toy/versions/1").status_code == 204
    assert c.delete("/models/toy/versions/3").status_code == 204
    api_error(c.get("/models/toy"), 404, "not_found")
    assert [m["name"] for m in c.get("/models").json()["models"]] == ["iris3"]
    assert trainer.json(c, "toy", toy)["version"] == 4


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/models/toy/versions/9", 404, "not_found"),
        ("/models/nope/versions/1", 404, "not_found"),
        ("/models/toy/versions/0", 422, "validation_error"),
        ("/models/toy/versions/abc", 422, "validation_error"),
        ("/models/toy/versions/production", 422, "validation_error"),
        ("/models/toy/versions/1.5", 422, "validation_error"),
        ("/models/" + "a" * 65 + "/versions/1", 422, "validation_error"),
    ],
)
def test_delete_errors(frozen, api_error, path, status, kind):
    api_error(frozen.delete(path), status, kind)


# -- thresholds -----------------------------------------------------------------------------------------
def test_set_and_clear_threshold(two_versions):
    c = two_versions
    resp = c.put("/models/toy/versions/1/threshold", json={"threshold": 0.7})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"name": "toy", "version": 1, "threshold": 0.7}
    assert c.get("/models/toy/versions/1").json()["threshold"] == 0.7
    assert c.get("/models/toy/versions/2").json()["threshold"] is None
    for edge in (0, 1):
        assert c.put("/models/toy/versions/1/threshold", json={"threshold": edge}).json()["threshold"] == edge
    cleared = c.put("/models/toy/versions/1/threshold", json={"threshold": None})
    assert cleared.json() == {"name": "toy", "version": 1, "threshold": None}
    assert c.get("/models/toy/versions/1").json()["threshold"] is None
    assert c.post("/predict", json={"model": "toy", "version": 1, "features": [[1.0, 1.0]]}).json()["threshold"] == 0.5


@pytest.mark.parametrize(
    ("path", "payload", "status", "kind"),
    [
        ("/models/toy/versions/1/threshold", {"threshold": 1.5}, 422, "validation_error"),
        ("/models/toy/versions/1/threshold", {"threshold": -0.5}, 422, "validation_error"),
        ("/models/toy/versions/1/threshold", {"threshold": "high"}, 422, "validation_error"),
        ("/models/toy/versions/1/threshold", {}, 422, "validation_error"),
        ("/models/toy/versions/1/threshold", {"threshold": 0.5, "x": 1}, 422, "validation_error"),
        ("/models/toy/versions/9/threshold", {"threshold": 0.5}, 404, "not_found"),
        ("/models/nope/versions/1/threshold", {"threshold": 0.5}, 404, "not_found"),
        ("/models/toy/versions/0/threshold", {"threshold": 0.5}, 422, "validation_error"),
        ("/models/toy/versions/production/threshold", {"threshold": 0.5}, 422, "validation_error"),
        ("/models/iris3/versions/1/threshold", {"threshold": 0.5}, 422, "invalid_input"),
    ],
)
def test_threshold_errors(frozen, api_error, path, payload, status, kind):
    api_error(frozen.put(path, json=payload), status, kind)


def test_clearing_a_multiclass_threshold_is_allowed(two_versions):
    resp = two_versions.put("/models/iris3/versions/1/threshold", json={"threshold": None})
    assert resp.status_code == 200
    assert resp.json()["threshold"] is None


# -- known bug ------------------------------------------------------------------------------------------
HUGE = "9" * 30


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", f"/models/toy/versions/{HUGE}", None),
        ("DELETE", f"/models/toy/versions/{HUGE}", None),
        ("PUT", f"/models/toy/versions/{HUGE}/threshold", {"threshold": 0.5}),
        ("PUT", "/models/toy/aliases/production", {"version": int(HUGE)}),
    ],
)
def test_huge_version_numbers_are_404(frozen, api_error, method, path, payload):
    api_error(frozen.request(method, path, json=payload), 404, "not_found")
