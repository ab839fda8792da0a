"""POST /train: JSON rows or records, CSV uploads, the report it returns, and every way to get it wrong."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

TOY = {
    "model": "toy",
    "features": [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0], [0.5, 0.2], [2.5, 2.0], [0.2, 0.9], [2.8, 2.6]],
    "labels": [0, 0, 1, 1, 0, 1, 0, 1],
}
REPORT_KEYS = {
    "model", "version", "classes", "feature_names", "n_samples", "n_train", "n_validation", "converged",
    "n_iter", "warnings", "train_metrics", "validation_metrics", "loss_history", "duration_seconds",
}
METRIC_KEYS = {"accuracy", "precision", "recall", "f1", "confusion_matrix", "log_loss", "brier", "roc_auc", "support",
               "per_class", "macro", "weighted"}
SMALL_CSV = b"a,b,y\n0,1,0\n1,0.5,0\n2,2.5,1\n3,3,1\n0.5,0.2,0\n2.5,2,1\n"


def body(**changes: Any) -> dict[str, Any]:
    """The toy training body with ``changes`` applied (a value of ``...`` drops the key)."""
    out = {**TOY, **changes}
    return {k: v for k, v in out.items() if v is not ...}


# -- JSON -----------------------------------------------------------------------------------------------
def test_json_training_report(make_client):
    client = make_client()
    resp = client.post("/train", json=body(feature_names=["a", "b"]))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    report = resp.json()
    assert set(report) == REPORT_KEYS
    assert report["model"] == "toy"
    assert report["version"] == 1
    assert report["classes"] == [0, 1]
    assert report["feature_names"] == ["a", "b"]
    assert report["n_samples"] == 8
    assert report["n_train"] + report["n_validation"] == 8
    assert report["n_validation"] >= 1  # default validation_fraction 0.2
    assert report["converged"] is True
    assert isinstance(report["n_iter"], int) and report["n_iter"] >= 1
    assert report["warnings"] == []
    assert set(report["train_metrics"]) >= METRIC_KEYS
    assert report["train_metrics"]["n_samples"] == report["n_train"]
    assert set(report["validation_metrics"]) >= METRIC_KEYS
    assert report["validation_metrics"]["n_samples"] == report["n_validation"]
    assert 1 <= len(report["loss_history"]) <= 200
    assert all(isinstance(v, float) for v in report["loss_history"])
    assert report["duration_seconds"] >= 0

    again = client.post("/train", json=body())
    assert again.status_code == 201
    assert again.json()["version"] == 2
    assert again.json()["feature_names"] == ["x0", "x1"]  # default names


def test_validation_fraction_zero_disables_the_holdout(make_client):
    report = make_client().post("/train", json=body(validation_fraction=0)).json()
    assert report["n_validation"] == 0
    assert report["n_train"] == report["n_samples"] == 8
    assert report["validation_metrics"] is None


def test_convergence_warning_lands_in_the_report(make_client):
    resp = make_client().post("/train", json=body(params={"max_iter": 1}))
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["converged"] is False
    assert report["n_iter"] == 1
    assert len(report["warnings"]) == 1
    assert "converge" in report["warnings"][0]


def test_loss_history_is_downsampled_to_200_points(make_client):
    params = {"solver": "sgd", "max_iter": 450, "tol": 0, "n_iter_no_change": 10_000}
    resp = make_client().post("/train", json=body(validation_fraction=0, params=params))
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["n_iter"] > 200
    assert len(report["loss_history"]) == 200


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "newton"},
        {"solver": "proximal", "penalty": "l1", "C": 0.5},
        {"solver": "adam", "penalty": "elasticnet", "l1_ratio": 0.3, "max_iter": 20},
        {"solver": "sgd", "early_stopping": True, "max_iter": 20, "lr_schedule": "cosine"},
        {"penalty": "none", "standardize": False, "fit_intercept": False},
        {"class_weight": "balanced", "alpha": 0.01},
        {"class_weight": {"1": 2.0}},
    ],
)
def test_engine_params_are_accepted_and_stored(make_client, params):
    client = make_client()
    resp = client.post("/train", json=body(params=params))
    assert resp.status_code == 201, resp.text
    card = client.get("/models/toy/versions/1").json()
    for key, value in params.items():
        assert card["params"][key] == value


def test_records_train_by_name(make_client):
    client = make_client()
    records = [{"a": r[0], "b": r[1]} for r in TOY["features"]]
    records[3] = {"b": records[3]["b"], "a": records[3]["a"]}  # key order does not matter
    resp = client.post("/train", json={"model": "rec", "records": records, "labels": TOY["labels"]})
    assert resp.status_code == 201, resp.text
    assert resp.json()["feature_names"] == ["a", "b"]  # from the first record

    named = client.post(
        "/train", json={"model": "rec", "records": records, "labels": TOY["labels"], "feature_names": ["b", "a"]}
    )
    assert named.status_code == 201, named.text
    assert named.json()["feature_names"] == ["b", "a"]
    proba_1 = client.post("/predict_proba", json={"model": "rec", "version": 1, "records": records[:2]}).json()
    proba_2 = client.post("/predict_proba", json={"model": "rec", "version": 2, "records": records[:2]}).json()
    np.testing.assert_allclose(proba_1["probabilities"], proba_2["probabilities"], atol=1e-6)


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        ([False, False, True, True, False, True, False, True], [False, True]),
        (["no", "no", "yes", "yes", "no", "yes", "no", "yes"], ["no", "yes"]),
        ([5, 5, 7, 7, 5, 9, 5, 9], [5, 7, 9]),
        (["b", "b", "c", "c", "b", "a", "a", "c"], ["a", "b", "c"]),
    ],
)
def test_label_types_are_kept(make_client, labels, classes):
    client = make_client()
    resp = client.post("/train", json=body(labels=labels, validation_fraction=0))
    assert resp.status_code == 201, resp.text
    assert resp.json()["classes"] == classes
    preds = client.post("/predict", json={"model": "toy", "features": TOY["features"]}).json()["predictions"]
    assert {type(p) for p in preds} <= {type(c) for c in classes}
    assert set(preds) <= set(classes)


def test_description_and_tags_reach_the_model_card(make_client):
    client = make_client()
    resp = client.post("/train", json=body(description="first try", tags={"team": "risk", "run": "7"}))
    assert resp.status_code == 201
    card = client.get("/models/toy/versions/1").json()
    assert card["description"] == "first try"
    assert card["tags"] == {"team": "risk", "run": "7"}
    listing = client.get("/models/toy").json()["versions"][0]
    assert listing["description"] == "first try"
    assert listing["tags"] == {"team": "risk", "run": "7"}


# -- CSV upload -----------------------------------------------------------------------------------------
def test_csv_upload_breast_cancer(make_client, breast_cancer_csv, breast_cancer):
    client = make_client()
    resp = client.post(
        "/train",
        files={"file": ("breast_cancer.csv", breast_cancer_csv, "text/csv")},
        data={"model": "bc", "target": "diagnosis"},
    )
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert set(report) == REPORT_KEYS
    assert report["classes"] == ["benign", "malignant"]
    assert report["feature_names"] == breast_cancer.feature_names
    assert len(report["feature_names"]) == 30
    assert report["n_samples"] == 569
    assert report["n_validation"] == pytest.approx(0.2 * 569, abs=2)
    assert report["validation_metrics"]["accuracy"] > 0.9
    assert report["validation_metrics"]["positive_class"] == "malignant"
    card = client.get("/models/bc/versions/1").json()
    assert card["tags"] == {"source": "breast_cancer.csv"}


def test_csv_upload_with_params_and_options(make_client, breast_cancer_csv):
    client = make_client()
    resp = client.post(
        "/train",
        files={"file": ("bc.csv", breast_cancer_csv, "text/csv")},
        data={"model": "bc", "target": "diagnosis", "params": json.dumps({"C": 0.5, "solver": "newton"}),
              "validation_fraction": "0", "description": "from a file"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["n_validation"] == 0
    card = client.get("/models/bc/versions/1").json()
    assert card["params"]["C"] == 0.5
    assert card["params"]["solver"] == "newton"
    assert card["description"] == "from a file"


@pytest.mark.parametrize(
    ("content", "classes", "names"),
    [
        (SMALL_CSV, [0, 1], ["a", "b"]),
        (b"\xef\xbb\xbfa,y,b\n0,no,1\n1,no,0.5\n\n2,yes,2.5\n3,yes,3\n0.5,no,0.2\n2.5,yes,2\n",
         ["no", "yes"], ["a", "b"]),
        (b"y,a\n1.0,0\n0.0,1\n1,2\n0,3\n1,0.5\n0,2.5\n", [0, 1], ["a"]),
        (b"a,b,y\r\n0,1,0\r\n1,0.5,0\r\n2,2.5,1\r\n3,3,1\r\n0.5,0.2,0\r\n2.5,2,1\r\n", [0, 1], ["a", "b"]),
    ],
    ids=["int-labels", "bom-strings-blank-line", "float-integers", "crlf"],
)
def test_csv_upload_small_files(make_client, content, classes, names):
    resp = make_client().post(
        "/train", files={"file": ("s.csv", content)}, data={"model": "s", "target": "y", "validation_fraction": "0"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["classes"] == classes
    assert resp.json()["feature_names"] == names


@pytest.mark.parametrize(
    ("files", "data", "status", "fragment"),
    [
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s"}, 422, "target"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "zz"}, 422, "'zz'"),
        ({"file": ("s.csv", SMALL_CSV)}, {"target": "y"}, 422, "model"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "../x", "target": "y"}, 422, "model"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "a" * 65, "target": "y"}, 422, "model"),
        ({"other": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y"}, 422, "file"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "params": "{bad"}, 422, "params"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "params": '{"zz": 1}'}, 422, "zz"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "params": '{"C": -1}'}, 422, "C"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "params": "[1]"}, 422, ""),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "validation_fraction": "abc"}, 422,
         "validation_fraction"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "validation_fraction": "0.95"}, 422,
         "validation_fraction"),
        ({"file": ("s.csv", SMALL_CSV)}, {"model": "s", "target": "y", "validation_fraction": "nan"}, 422,
         "validation_fraction"),
        ({"file": ("s.csv", b"")}, {"model": "s", "target": "y"}, 422, "empty"),
        ({"file": ("s.csv", b"a,b,y\n")}, {"model": "s", "target": "y"}, 422, "no data rows"),
        ({"file": ("s.csv", b"a,b,y\n1,2,0\n1,1\n")}, {"model": "s", "target": "y"}, 422, "line 3"),
        ({"file": ("s.csv", b"a,b,y\n1,inf,0\n1,1,1\n")}, {"model": "s", "target": "y"}, 422, "not finite"),
        ({"file": ("s.csv", b"a,b,y\n1,1e400,0\n1,1,1\n")}, {"model": "s", "target": "y"}, 422, "not finite"),
        ({"file": ("s.csv", b"a,a,y\n1,2,0\n1,1,1\n")}, {"model": "s", "target": "y"}, 422, "repeats"),
        ({"file": ("s.csv", b"y\n0\n1\n")}, {"model": "s", "target": "y"}, 422, "no feature columns"),
        ({"file": ("s.csv", b"a,y\n0,1\n1,1\n2,1\n")}, {"model": "s", "target": "y"}, 422, "single class"),
    ],
)
def test_csv_upload_errors(make_client, api_error, files, data, status, fragment):
    resp = make_client().post("/train", files=files, data=data)
    api_error(resp, status, mentions=fragment)


def test_multipart_without_boundary_is_a_client_error(make_client, api_error):
    resp = make_client().post("/train", content=b"xx", headers={"content-type": "multipart/form-data"})
    err = api_error(resp, 422)
    assert "boundary" in err["message"]


def test_csv_upload_that_is_not_utf8_is_a_422(make_client, api_error):
    content = "a,b,y\n0,1,café\n1,0.5,thé\n".encode("latin-1")
    resp = make_client().post("/train", files={"file": ("s.csv", content)}, data={"model": "s", "target": "y"})
    api_error(resp, 422)


# -- JSON errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "kind", "fragment"),
    [
        (body(model=...), "validation_error", "model"),
        (body(model="../x"), "validation_error", "model"),
        (body(model="a" * 65), "validation_error", "model"),
        (body(model=""), "validation_error", "model"),
        (body(model=".."), "validation_error", "model"),
        (body(model=".hidden"), "validation_error", "model"),
        (body(model=5), "validation_error", "model"),
        (body(labels=...), None, "labels"),
        (body(labels=[0, 1]), "invalid_input", "8 rows but 2 labels"),
        (body(labels=[1] * 8), "invalid_input", "single class"),
        (body(labels=[0, "a", 1, 1, 0, 1, 0, 1]), "invalid_input", "labels"),
        (body(labels=[0, True, 1, 1, 0, 1, 0, 1]), "invalid_input", "labels"),
        (body(labels=[0.5, 0, 1, 1, 0, 1, 0, 1]), "invalid_input", "labels"),
        (body(labels=[None, 0, 1, 1, 0, 1, 0, 1]), "invalid_input", "labels"),
        (body(labels=[[0]] * 8), "invalid_input", "labels"),
        (body(labels={"a": 1}), "invalid_input", "labels"),
        (body(labels="01101010"), "invalid_input", "labels"),
        (body(features=...), "invalid_input", "exactly one"),
        (body(records=[{"x0": 1, "x1": 2}] * 8), "invalid_input", "exactly one"),
        (body(features=[], labels=[]), "invalid_input", "empty"),
        (body(features="abc"), "invalid_input", "features"),
        (body(features=[1, 2, 3, 4, 5, 6, 7, 8]), "invalid_input", "row 0"),
        (body(features=[[1, 2]] * 7 + [[1]]), "invalid_input", "row 7 has 1"),
        (body(features=[[1, "2"], [1, 2]] * 4), "invalid_input", "'2'"),
        (body(features=[[1, None]] * 8), "invalid_input", "no values"),
        (body(features=[[1, [2]]] * 8), "invalid_input", "[2]"),
        (body(features=[[]] * 8), "invalid_input", "empty"),
        (body(feature_names=["a"]), "invalid_input", "feature names"),
        (body(feature_names=["a", "a"]), "invalid_input", "repeat"),
        (body(params={"foo": 1}), "validation_error", "foo"),
        (body(params={"C": 0}), "validation_error", "C"),
        (body(params={"C": 1, "alpha": 1}), "validation_error", "C or alpha"),
        (body(params={"penalty": "l1"}), "validation_error", "lbfgs"),
        (body(params={"solver": "magic"}), "validation_error", "solver"),
        (body(params={"l1_ratio": 1.5}), "validation_error", "l1_ratio"),
        (body(params={"max_iter": 0}), "validation_error", "max_iter"),
        (body(params={"max_iter": 10**9}), "invalid_input", "max_iter"),
        (body(params={"tol": -1}), "validation_error", "tol"),
        (body(params={"momentum": 1}), "validation_error", "momentum"),
        (body(params={"class_weight": {"7": 2}}), "invalid_input", "'7'"),
        (body(params=[1]), "validation_error", "params"),
        (body(validation_fraction=1), "validation_error", "validation_fraction"),
        (body(validation_fraction=-0.1), "validation_error", "validation_fraction"),
        (body(description="x" * 2001), "validation_error", "description"),
        (body(tags={"a": 1}), "validation_error", "tags"),
        (body(extra=1), "validation_error", "extra"),
    ],
)
def test_json_training_errors(make_client, api_error, payload, kind, fragment):
    api_error(make_client().post("/train", json=payload), 422, kind, fragment)


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ([{"a": 1, "b": 2}] * 7 + [{"a": 1}], "missing feature(s) 'b'"),
        ([{"a": 1, "b": 2}] * 7 + [{"a": 1, "b": 2, "c": 3}], "unknown feature(s) 'c'"),
        ([{"a": 1, "b": 2}] * 7 + [[1, 2]], "item 7"),
        ([{"a": 1, "b": "2"}, {"a": 1, "b": 2}] * 4, "'2'"),
        ([{"a": 1, "b": None}] * 8, "no values"),
        ([{}] * 8, "empty"),
        ([], "records"),
        ({"a": [1]}, "records"),
    ],
)
def test_record_training_errors_name_the_problem(make_client, api_error, records, fragment):
    resp = make_client().post("/train", json={"model": "r", "records": records, "labels": TOY["labels"]})
    api_error(resp, 422, "invalid_input", fragment)


def test_training_set_over_max_train_bytes_is_413(make_client, api_error, breast_cancer_csv):
    client = make_client(max_train_bytes=120)
    err = api_error(client.post("/train", json=body()), 413, "limit_exceeded", "8 x 2 values = 128 bytes")
    assert err["details"] == {"rows": 8, "features": 2, "bytes": 128, "limit": 120}
    assert "LOGREG_MAX_TRAIN_BYTES" in err["message"]
    csv_resp = client.post(
        "/train", files={"file": ("bc.csv", breast_cancer_csv)}, data={"model": "s", "target": "diagnosis"}
    )
    api_error(csv_resp, 413, "limit_exceeded", "569 x 30 values")
    assert client.post("/train", json=body(features=TOY["features"][:7], labels=TOY["labels"][:7])).status_code == 201
    assert client.get("/models").json()["models"][0]["versions"] == [1]


def test_max_iter_over_the_configured_limit_is_422(make_client, api_error):
    client = make_client(max_iter_limit=10)
    api_error(client.post("/train", json=body(params={"max_iter": 11})), 422, "invalid_input", "max_iter")
    assert client.post("/train", json=body(params={"max_iter": 10})).status_code == 201


RAW_BODIES = [
    b'{"model": "toy", "features": [[1e400, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[-1e400, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[NaN, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[Infinity, 1]], "labels": [0]}',
    b'{"model": "toy", "features": [[1' + b"0" * 400 + b', 1]], "labels": [0]}',
    b'{"model": "toy", "features": ' + b"[" * 3000 + b"]" * 3000 + b', "labels": [0]}',
    b'{"model": "toy", "features": [[1, 2]], "labels": [0]',
    b'{"model": "toy"} trailing',
    b"{'model': 'toy'}",
    b"[1, 2, 3]",
    b'"a string"',
    b"42",
    b"null",
    b"",
    b"\xff\xfe\x00\x01",
]


@pytest.mark.parametrize("raw", RAW_BODIES)
def test_malformed_json_is_422_never_500(make_client, api_error, raw):
    resp = make_client().post("/train", content=raw, headers={"content-type": "application/json"})
    api_error(resp, 422, "invalid_input")


@pytest.mark.parametrize(
    "features",
    [[[1e300, 1.0], [-1e300, 0.5]], [[1e200, 1.0], [-1e200, 0.5]], [[1.7e308, 1.0], [0.0, 0.5]]],
    ids=["1e300", "1e200", "max-double"],
)
def test_huge_finite_training_values_are_not_a_500(make_client, features):
    rows = features + TOY["features"][2:]
    resp = make_client().post("/train", json=body(features=rows))
    assert resp.status_code in (201, 422), resp.text
    if resp.status_code == 422:
        assert "metadata" not in resp.json()["error"]["message"]


def test_int_labels_beyond_int64_are_kept_or_refused(make_client):
    big = 2**63 + 1  # valid JSON integer; not representable in int64 nor exactly in float64
    raw = json.dumps(body(labels=[big, 0, big, big, 0, big, 0, 0], validation_fraction=0)).encode()
    resp = make_client().post("/train", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code in (201, 422), resp.text
    if resp.status_code == 201:
        classes = resp.json()["classes"]
        assert classes == [0, big]
        assert all(type(c) is int for c in classes)


@pytest.mark.parametrize(
    "content",
    [b"a,y\n" + b"1" * 200_000 + b",0\n2,1\n", b"a" * 140_000 + b",y\n1,0\n2,1\n", b"a,y\r0,0\r1,1\r2,0\r3,1\r"],
    ids=["big-field", "big-header", "cr-line-endings"],
)
def test_csv_module_errors_are_not_a_500(make_client, content):
    resp = make_client().post(
        "/train", files={"file": ("s.csv", content)}, data={"model": "s", "target": "y", "validation_fraction": "0"}
    )
    assert resp.status_code in (201, 422), resp.text


def test_csv_labels_beyond_64_bits_are_not_a_500(make_client):
    client = make_client()
    big = b"99999999999999999999999"
    content = b"a,y\n1," + big + b"\n2,1\n3,1\n4," + big + b"\n"
    resp = client.post("/train", files={"file": ("s.csv", content)},
                       data={"model": "s", "target": "y", "validation_fraction": "0"})
    assert resp.status_code in (201, 422), resp.text
    if resp.status_code == 201:
        assert client.get("/models/s/versions/1").status_code == 200
        assert client.post("/predict", json={"model": "s", "features": [[1.0]]}).status_code == 200
    else:
        assert client.get("/models").json()["models"] == []  # nothing half-stored
