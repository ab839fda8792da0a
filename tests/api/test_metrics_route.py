"""POST /metrics equals sklearn.metrics on the same data; GET /metrics returns what training measured."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

TOL = {"rel": 1e-9, "abs": 1e-12}
REPORT_KEYS = {
    "model", "version", "n_samples", "accuracy", "precision", "recall", "f1", "log_loss", "brier", "roc_auc",
    "confusion_matrix", "support", "per_class", "macro", "weighted", "threshold", "calibration",
}
BINARY_KEYS = REPORT_KEYS | {"positive_class", "threshold_sweep", "best_threshold"}


def post_metrics(client: Any, model: str, X: np.ndarray, y: np.ndarray, **fields: Any) -> dict[str, Any]:
    resp = client.post("/metrics", json={"model": model, "features": X.tolist(), "labels": y.tolist(), **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()


def check_against_sklearn(out: dict[str, Any], y: np.ndarray, proba: np.ndarray, classes: list[Any],
                          threshold: float | None) -> None:
    """Every number of a /metrics report against sklearn.metrics on ``y`` and the engine's ``proba``."""
    binary = len(classes) == 2
    cls = np.asarray(classes)
    y_pred = cls[(proba[:, 1] >= threshold).astype(int)] if binary else cls[np.argmax(proba, axis=1)]
    assert out["n_samples"] == len(y)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, y_pred), **TOL)
    head = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro", "labels": classes}
    for key, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert out[key] == pytest.approx(fn(y, y_pred, zero_division=0, **head), **TOL), key
    assert out["confusion_matrix"]["labels"] == classes
    assert out["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, y_pred, labels=classes).tolist()
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes), **TOL)
    if binary:
        brier = skm.brier_score_loss(y, proba[:, 1], pos_label=classes[1])
    else:
        brier = skm.brier_score_loss(y, proba, labels=classes)
    assert out["brier"] == pytest.approx(brier, **TOL)
    present = set(np.unique(y).tolist())
    if present == set(classes):
        if binary:
            auc = skm.roc_auc_score(y == classes[1], proba[:, 1])
        else:
            auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
        assert out["roc_auc"] == pytest.approx(auc, **TOL)
    else:
        assert out["roc_auc"] is None
    p, r, f, s = skm.precision_recall_fscore_support(y, y_pred, labels=classes, average=None, zero_division=0)
    keys = [str(c) for c in classes]
    assert out["support"] == dict(zip(keys, s.tolist(), strict=True))
    assert set(out["per_class"]) == set(keys)
    for i, k in enumerate(keys):
        assert out["per_class"][k]["precision"] == pytest.approx(p[i], **TOL)
        assert out["per_class"][k]["recall"] == pytest.approx(r[i], **TOL)
        assert out["per_class"][k]["f1"] == pytest.approx(f[i], **TOL)
        assert out["per_class"][k]["support"] == s[i]
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = skm.precision_recall_fscore_support(y, y_pred, labels=classes, average=avg, zero_division=0)
        assert out[avg] == pytest.approx({"precision": ap, "recall": ar, "f1": af}, **TOL), avg
    assert out["threshold"] == (threshold if binary else None)


def check_sweep(out: dict[str, Any], y: np.ndarray, p1: np.ndarray, pos: Any) -> None:
    sweep = out["threshold_sweep"]
    assert sweep["thresholds"] == pytest.approx(np.linspace(0, 1, 101).tolist(), abs=1e-12)
    truth = y == pos
    for i in range(0, 101, 5):
        t = sweep["thresholds"][i]
        pred = p1 >= t
        (tn, fp), (fn, tp) = skm.confusion_matrix(truth, pred, labels=[False, True]).tolist()
        assert (sweep["tp"][i], sweep["fp"][i], sweep["fn"][i], sweep["tn"][i]) == (tp, fp, fn, tn), t
        assert sweep["precision"][i] == pytest.approx(skm.precision_score(truth, pred, zero_division=0), **TOL)
        assert sweep["recall"][i] == pytest.approx(skm.recall_score(truth, pred, zero_division=0), **TOL)
        assert sweep["f1"][i] == pytest.approx(skm.f1_score(truth, pred, zero_division=0), **TOL)
        assert sweep["accuracy"][i] == pytest.approx(skm.accuracy_score(truth, pred), **TOL)
    best = out["best_threshold"]
    at_best = p1 >= best["threshold"]
    assert best["f1"] == pytest.approx(skm.f1_score(truth, at_best, zero_division=0), **TOL)
    assert best["precision"] == pytest.approx(skm.precision_score(truth, at_best, zero_division=0), **TOL)
    assert best["recall"] == pytest.approx(skm.recall_score(truth, at_best, zero_division=0), **TOL)
    assert best["f1"] >= max(sweep["f1"]) - 1e-12
    # exhaustive: every distinct score is a candidate cut-off
    pred = p1[None, :] >= np.unique(p1)[:, None]
    tp = (pred & truth).sum(axis=1)
    f1 = 2 * tp / (pred.sum(axis=1) + truth.sum())
    assert best["f1"] == pytest.approx(f1.max(), **TOL)


# -- binary ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [None, 0.3, 0.5, 0.85])
def test_binary_metrics_equal_sklearn(served, threshold):
    data = served.data["bc"]
    extra = {} if threshold is None else {"threshold": threshold}
    out = post_metrics(served.client, "bc", data.X, data.y, **extra)
    assert set(out) == BINARY_KEYS
    assert (out["model"], out["version"]) == ("bc", 1)
    assert out["positive_class"] == "malignant"
    proba = served.load("bc").model.predict_proba(data.X)
    check_against_sklearn(out, data.y, proba, ["benign", "malignant"], 0.5 if threshold is None else threshold)
    if threshold is None:  # the sweep does not depend on the threshold
        check_sweep(out, data.y, proba[:, 1], "malignant")


def test_binary_metrics_on_a_subset_with_records(served):
    data = served.data["bc"]
    idx = np.arange(0, len(data.y), 7)
    records = [data.records()[i] for i in idx]
    resp = served.client.post("/metrics", json={"model": "bc", "records": records, "labels": data.y[idx].tolist(),
                                                "threshold": 0.42})
    assert resp.status_code == 200, resp.text
    proba = served.load("bc").model.predict_proba(data.X[idx])
    check_against_sklearn(resp.json(), data.y[idx], proba, ["benign", "malignant"], 0.42)


def test_binary_metrics_with_int_labels(served):
    data = served.data["toy"]
    out = post_metrics(served.client, "toy", data.X, data.y, threshold=0.6)
    assert out["positive_class"] == 1
    check_against_sklearn(out, data.y, served.load("toy").model.predict_proba(data.X), [0, 1], 0.6)


def test_binary_metrics_use_the_stored_threshold(make_client, trainer, breast_cancer_csv, breast_cancer):
    client = make_client()
    trainer.csv(client, "bc", breast_cancer_csv, "diagnosis")
    assert client.put("/models/bc/versions/1/threshold", json={"threshold": 0.2}).status_code == 200
    out = post_metrics(client, "bc", breast_cancer.X, breast_cancer.y)
    assert out["threshold"] == 0.2
    proba = client.app.state.services.registry.load("bc").model.predict_proba(breast_cancer.X)
    check_against_sklearn(out, breast_cancer.y, proba, ["benign", "malignant"], 0.2)
    explicit = post_metrics(client, "bc", breast_cancer.X, breast_cancer.y, threshold=0.9)
    check_against_sklearn(explicit, breast_cancer.y, proba, ["benign", "malignant"], 0.9)


def test_binary_metrics_with_one_class_present(served):
    data = served.data["bc"]
    mask = data.y == "benign"
    out = post_metrics(served.client, "bc", data.X[mask], data.y[mask])
    assert out["roc_auc"] is None
    assert out["support"] == {"benign": int(mask.sum()), "malignant": 0}
    check_against_sklearn(out, data.y[mask], served.load("bc").model.predict_proba(data.X[mask]),
                          ["benign", "malignant"], 0.5)


# -- multiclass -----------------------------------------------------------------------------------------
def test_multiclass_metrics_equal_sklearn(served):
    data = served.data["iris"]
    out = post_metrics(served.client, "iris", data.X, data.y)
    assert set(out) == REPORT_KEYS
    classes = ["setosa", "versicolor", "virginica"]
    check_against_sklearn(out, data.y, served.load("iris").model.predict_proba(data.X), classes, None)
    assert out["accuracy"] > 0.9


def test_multiclass_metrics_with_a_class_missing(served):
    data = served.data["iris"]
    mask = data.y != "virginica"
    out = post_metrics(served.client, "iris", data.X[mask], data.y[mask])
    assert out["roc_auc"] is None
    assert out["support"]["virginica"] == 0
    check_against_sklearn(out, data.y[mask], served.load("iris").model.predict_proba(data.X[mask]),
                          ["setosa", "versicolor", "virginica"], None)


def test_threshold_for_a_multiclass_model_is_422(served, api_error):
    data = served.data["iris"]
    resp = served.client.post("/metrics", json={"model": "iris", "features": data.X[:3].tolist(),
                                                "labels": data.y[:3].tolist(), "threshold": 0.5})
    api_error(resp, 422, "invalid_input", "binary")


# -- 422 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "kind", "fragment"),
    [
        ({"labels": ["benign", "cancer"]}, "invalid_input", "'cancer'"),
        ({"labels": [0, 1]}, "invalid_input", "classes"),
        ({"labels": [True, False]}, "invalid_input", "classes"),
        ({"labels": ["benign"]}, "invalid_input", "2 rows but 1 labels"),
        ({"labels": ["benign", "benign", "benign"]}, "invalid_input", "2 rows but 3 labels"),
        ({"labels": ["benign", 1]}, "invalid_input", "labels"),
        ({"labels": ["benign", None]}, "invalid_input", "labels"),
        ({"labels": [["benign"], ["benign"]]}, "invalid_input", "labels"),
        ({"labels": [0.5, 1.5]}, "invalid_input", "labels"),
        ({"labels": "benign"}, "invalid_input", "labels"),
        ({"labels": {"0": "benign"}}, "invalid_input", "labels"),
        ({"labels": []}, "invalid_input", "labels"),
        ({"labels": None}, "invalid_input", "labels"),
        ({"threshold": 1.5}, "validation_error", "threshold"),
        ({"threshold": -0.01}, "validation_error", "threshold"),
        ({"threshold": "high"}, "validation_error", "threshold"),
    ],
)
def test_bad_labels_or_threshold_is_422(served, api_error, fields, kind, fragment):
    payload = {"model": "bc", "features": served.data["bc"].X[:2].tolist(), "labels": ["benign", "malignant"],
               **fields}
    api_error(served.client.post("/metrics", json=payload), 422, kind, fragment)


def test_missing_labels_is_422(served, api_error):
    resp = served.client.post("/metrics", json={"model": "bc", "features": served.data["bc"].X[:2].tolist()})
    api_error(resp, 422, None, "labels")


# -- GET /metrics ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bc", "iris"])
def test_stored_metrics_are_the_training_report(served, name):
    report = served.reports[name]
    for query in (f"model={name}", f"model={name}&version=1"):
        resp = served.client.get(f"/metrics?{query}")
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["model"] == name
        assert out["version"] == 1
        assert out["n_validation"] == report["n_validation"] > 0
        assert out["validation_metrics"] == report["validation_metrics"]
        assert out["train_metrics"] == report["train_metrics"]
        assert out["validation_metrics"]["n_samples"] == report["n_validation"]


def test_stored_metrics_without_a_validation_split(served):
    out = served.client.get("/metrics", params={"model": "toy"}).json()
    assert out["validation_metrics"] is None
    assert out["n_validation"] == 0
    assert out["train_metrics"] == served.reports["toy"]["train_metrics"]


def test_stored_metrics_follow_aliases(make_client, trainer, toy):
    client = make_client()
    first = trainer.json(client, "toy", toy)
    second = trainer.json(client, "toy", toy, validation_fraction=0.5, params={"C": 0.01})
    assert client.get("/metrics?model=toy").json()["validation_metrics"] == second["validation_metrics"]
    client.put("/models/toy/aliases/production", json={"version": 1})
    assert client.get("/metrics?model=toy").json()["version"] == 1
    assert client.get("/metrics?model=toy").json()["validation_metrics"] == first["validation_metrics"]
    assert client.get("/metrics?model=toy&version=2").json()["version"] == 2
    assert client.get("/metrics?model=toy&version=production").json()["version"] == 1


@pytest.mark.parametrize(
    ("query", "status", "kind"),
    [
        ("", 422, "validation_error"),
        ("version=1", 422, "validation_error"),
        ("model=nope", 404, "not_found"),
        ("model=bc&version=9", 404, "not_found"),
        ("model=bc&version=0", 404, "not_found"),
        ("model=bc&version=staging", 404, "not_found"),
        ("model=../x", 422, None),
        ("model=" + "a" * 65, 422, None),
        ("model=", 422, None),
    ],
)
def test_stored_metrics_errors(served, api_error, query, status, kind):
    api_error(served.client.get(f"/metrics?{query}"), status, kind)


def test_stored_metrics_with_a_huge_version_is_404(served, api_error):
    api_error(served.client.get("/metrics?model=bc&version=" + "9" * 30), 404, "not_found")
