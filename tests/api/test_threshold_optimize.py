"""POST /models/{name}/versions/{v}/threshold:optimize: each objective equals a brute-force search with
sklearn over every candidate threshold, on the stored validation split or posted rows; storing; access."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from ..support import InProcess

URL = "/models/{name}/versions/{version}/threshold:optimize"
RESULT_KEYS = {"model", "version", "positive_class", "source", "current_threshold", "objective", "threshold",
               "value", "metrics", "n_samples", "n_positive", "n_candidates", "curve", "stored"}


def optimize(client: Any, body: dict[str, Any], name: str = "bc", version: Any = 1, status: int = 200,
             **kwargs: Any) -> dict[str, Any]:
    resp = client.post(URL.format(name=name, version=version), json=body, **kwargs)
    assert resp.status_code == status, resp.text
    return resp.json()


def brute_force(y_pos: np.ndarray, p: np.ndarray, objective: str, fp_cost: float = 1.0, fn_cost: float = 1.0,
                target: float | None = None) -> tuple[float, float]:
    """(threshold, value) by trying every candidate, counting plainly; ties go to the largest threshold.
    (The counts at the chosen threshold are checked against sklearn in the tests.)"""
    candidates = sorted(set(p.tolist()) | ({1.0} if p.max() < 1 else set()), reverse=True)
    best: tuple[Any, ...] | None = None
    for t in candidates:
        pred = p >= t
        tp, fp = int(np.sum(pred & y_pos)), int(np.sum(pred & ~y_pos))
        fn, tn = int(np.sum(~pred & y_pos)), int(np.sum(~pred & ~y_pos))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
        if objective == "f1":
            key, value = (f1,), f1
        elif objective == "youden":
            key = (recall - fp / (fp + tn),)
            value = key[0]
        elif objective == "cost":
            value = (fp_cost * fp + fn_cost * fn) / len(p)
            key = (-value,)
        elif objective == "min_recall":
            if recall < target:
                continue
            key, value = (precision, recall), precision
        else:
            if precision < target or tp == 0:
                continue
            key, value = (recall, precision), recall
        if best is None or key > best[0]:  # strictly better: among ties the first (largest) threshold stays
            best = (key, t, value)
    assert best is not None
    return best[1], best[2]


def validation(client: Any, name: str = "bc", version: Any = 1) -> tuple[np.ndarray, np.ndarray]:
    sample = client.get(f"/models/{name}/versions/{version}/validation").json()
    y_pos = np.asarray(sample["labels"]) == sample["classes"][1]
    return y_pos, np.asarray(sample["probabilities"])[:, 1]


OBJECTIVES = [
    {"objective": "f1"},
    {"objective": "youden"},
    {"objective": "cost"},
    {"objective": "cost", "cost": {"fp": 1, "fn": 10}},
    {"objective": "cost", "cost": {"fp": 7.5, "fn": 0.5}},
    {"objective": "min_recall", "target": 0.95},
    {"objective": "min_recall", "target": 1.0},
    {"objective": "min_precision", "target": 0.9},
    {"objective": "min_precision", "target": 1.0},
]


def reference(body: dict[str, Any], y_pos: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    cost = body.get("cost", {})
    return brute_force(y_pos, p, body["objective"], cost.get("fp", 1.0), cost.get("fn", 1.0), body.get("target"))


@pytest.mark.parametrize("body", OBJECTIVES, ids=lambda b: "-".join(str(v) for v in b.values()))
def test_each_objective_on_the_validation_split_equals_brute_force(served, body):
    out = optimize(served.client, body)
    assert set(out) == RESULT_KEYS | {"sampled"}
    assert out["source"] == "validation_sample" and out["sampled"] is False and out["stored"] is False
    y_pos, p = validation(served.client)
    threshold, value = reference(body, y_pos, p)
    assert out["threshold"] == threshold
    assert out["value"] == pytest.approx(value, abs=1e-12)
    pred = p >= out["threshold"]
    m = out["metrics"]
    (tn, fp), (fn, tp) = skm.confusion_matrix(y_pos, pred, labels=[False, True])
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
    assert m["confusion_matrix"] == {"labels": ["benign", "malignant"], "matrix": [[tn, fp], [fn, tp]]}
    assert m["precision"] == pytest.approx(skm.precision_score(y_pos, pred, zero_division=0), abs=1e-12)
    assert m["recall"] == m["tpr"] == pytest.approx(skm.recall_score(y_pos, pred), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y_pos, pred, zero_division=0), abs=1e-12)
    assert m["fpr"] == pytest.approx(fp / (fp + tn), abs=1e-12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_pos, pred), abs=1e-12)
    assert out["n_samples"] == len(p) and out["n_positive"] == int(y_pos.sum())
    assert (m["expected_cost"] is None) == (body["objective"] != "cost")


@pytest.mark.parametrize("body", OBJECTIVES[:6], ids=lambda b: "-".join(str(v) for v in b.values()))
def test_posted_rows_equal_brute_force(served, body):
    data = served.data["bc"]
    out = optimize(served.client, {**body, "data": {"features": data.X.tolist(), "labels": data.y.tolist()}})
    assert out["source"] == "posted" and "sampled" not in out
    p = served.load("bc").model.predict_proba(data.X)[:, 1]
    threshold, value = reference(body, data.y == "malignant", p)
    assert out["threshold"] == threshold
    assert out["value"] == pytest.approx(value, abs=1e-12)
    by_records = optimize(served.client, {**body, "data": {"records": data.records(True), "labels": data.y.tolist()}})
    assert by_records["threshold"] == out["threshold"] and by_records["curve"] == out["curve"]


def test_f1_agrees_with_the_metrics_report(served):
    data = served.data["bc"]
    out = optimize(served.client, {"objective": "f1", "data": {"features": data.X.tolist(), "labels": data.y.tolist()}})
    report = served.client.post("/metrics", json={"model": "bc", "features": data.X.tolist(),
                                                  "labels": data.y.tolist()}).json()
    assert out["threshold"] == report["best_threshold"]["threshold"]
    assert out["value"] == pytest.approx(report["best_threshold"]["f1"], abs=1e-12)


def test_the_curve(served):
    out = optimize(served.client, {"objective": "cost", "cost": {"fp": 1, "fn": 3}})
    curve = out["curve"]
    assert 2 <= len(curve) <= 201
    thresholds = [pt["threshold"] for pt in curve]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    assert out["threshold"] in thresholds
    assert set(curve[0]) == {"threshold", "precision", "recall", "f1", "tpr", "fpr", "cost"}
    assert curve[0]["recall"] == 1.0 and curve[0]["fpr"] == 1.0  # lowest threshold: all positive
    chosen = curve[thresholds.index(out["threshold"])]
    assert chosen["cost"] == out["value"] == min(pt["cost"] for pt in curve)
    assert "cost" not in optimize(served.client, {"objective": "f1"})["curve"][0]


def test_a_long_curve_is_bounded_and_keeps_the_choice(served):
    rng = np.random.default_rng(0)
    data = served.data["bc"]
    X = data.X[rng.integers(0, len(data.X), 3000)] * rng.uniform(0.9, 1.1, size=(3000, data.X.shape[1]))
    labels = np.where(rng.random(3000) < 0.4, "malignant", "benign").tolist()
    out = optimize(served.client, {"objective": "youden", "data": {"features": X.tolist(), "labels": labels}})
    assert out["n_candidates"] > 1000
    assert len(out["curve"]) <= 201
    assert out["threshold"] in [pt["threshold"] for pt in out["curve"]]


def test_multiclass_is_422(served, api_error):
    api_error(served.client.post(URL.format(name="iris", version=1), json={"objective": "f1"}), 422,
              mentions="binary")


def test_a_version_without_validation_split_needs_posted_rows(served, api_error):
    api_error(served.client.post(URL.format(name="toy", version=1), json={"objective": "f1"}), 404,
              mentions="validation")
    data = served.data["toy"]
    out = optimize(served.client, {"objective": "f1", "data": {"features": data.X.tolist(),
                                                               "labels": data.y.tolist()}}, name="toy")
    assert out["value"] == 1.0  # the toy data is separable


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"objective": "min_recall"}, "target"),
        ({"objective": "min_precision", "target": 1.5}, "target"),
        ({"objective": "f1", "target": 0.5}, "target"),
        ({"objective": "f1", "cost": {"fp": 1, "fn": 2}}, "cost"),
        ({"objective": "cost", "cost": {"fp": 0, "fn": 0}}, "cost"),
        ({"objective": "cost", "cost": {"fp": -1, "fn": 1}}, "fp"),
        ({"objective": "accuracy"}, "objective"),
        ({}, "objective"),
        ({"objective": "f1", "extra": 1}, "extra"),
        ({"objective": "f1", "data": [1, 2]}, "data"),
        ({"objective": "f1", "data": {"features": [[1.0]]}}, "labels"),
        ({"objective": "f1", "data": {"features": [[1.0] * 30], "labels": ["benign", "malignant"]}}, "label"),
        ({"objective": "f1", "data": {"features": [[1.0] * 30], "labels": ["maybe"]}}, "maybe"),
        ({"objective": "f1", "data": {"features": [[1.0] * 30, [2.0] * 30], "labels": ["benign", "benign"]}},
         "both classes"),
        ({"objective": "f1", "data": {"features": [[1.0] * 29], "labels": ["benign"]}}, "expects 30"),
    ],
)
def test_bad_requests_are_422(served, api_error, body, mentions):
    resp = served.client.post(URL.format(name="bc", version=1), json=body)
    err = api_error(resp, 422)
    assert mentions in str(err), err


def test_an_unreachable_precision_is_422(served, api_error):
    data = served.data["toy"]
    labels = [1 - v for v in data.y.tolist()]  # inverted: every threshold is wrong at the top
    body = {"objective": "min_precision", "target": 0.99, "data": {"features": data.X.tolist(), "labels": labels}}
    err = api_error(served.client.post(URL.format(name="toy", version=1), json=body), 422, mentions="precision")
    assert "max_precision" in err["details"]


def test_unknown_model_or_version_is_404(served, api_error):
    api_error(served.client.post(URL.format(name="nope", version=1), json={"objective": "f1"}), 404)
    api_error(served.client.post(URL.format(name="bc", version=99), json={"objective": "f1"}), 404)


# -- storing --------------------------------------------------------------------------------------------
def test_store_sets_the_threshold_predict_uses(make_client, trainer, breast_cancer_csv, breast_cancer):
    client = make_client()
    trainer.csv(client, "bc", breast_cancer_csv, "diagnosis")
    assert client.put("/models/bc/aliases/production", json={"version": 1}).status_code == 200
    dry = optimize(client, {"objective": "min_recall", "target": 0.99}, version="production")
    assert dry["stored"] is False and dry["version"] == 1 and dry["current_threshold"] is None
    assert client.get("/models/bc/versions/1").json()["threshold"] is None
    out = optimize(client, {"objective": "min_recall", "target": 0.99, "store": True}, version="production")
    assert out["stored"] is True and out["threshold"] == dry["threshold"]
    assert client.get("/models/bc/versions/1").json()["threshold"] == out["threshold"]
    pred = client.post("/predict", json={"model": "bc", "features": breast_cancer.X.tolist()}).json()
    assert pred["threshold"] == out["threshold"]
    again = optimize(client, {"objective": "f1"})
    assert again["current_threshold"] == out["threshold"]


def test_storing_needs_write_access_computing_does_not(make_client, trainer, breast_cancer_csv, api_error):
    client = make_client(api_keys="s3cret-s3cret-s3cret", protect_reads=False)
    auth = {"Authorization": "Bearer s3cret-s3cret-s3cret"}
    resp = client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")},
                       data={"model": "bc", "target": "diagnosis"}, headers=auth)
    assert resp.status_code == 201, resp.text
    optimize(client, {"objective": "f1"})  # a read: open when reads are opened
    api_error(client.post(URL.format(name="bc", version=1), json={"objective": "f1", "store": True}), 401)
    api_error(client.post(URL.format(name="bc", version=1), json={"objective": "f1", "store": True},
                          headers={"Authorization": "Bearer wrong"}), 403)
    assert client.get("/models/bc/versions/1", headers=auth).json()["threshold"] is None
    out = optimize(client, {"objective": "f1", "store": True}, headers=auth)
    assert out["stored"] is True
    assert client.get("/models/bc/versions/1", headers=auth).json()["threshold"] == out["threshold"]


def test_reads_protected_need_a_key_to_compute(make_client, breast_cancer_csv, api_error):
    client = make_client(api_keys="s3cret-s3cret-s3cret", protect_reads=True)
    auth = {"Authorization": "Bearer s3cret-s3cret-s3cret"}
    client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")},
                data={"model": "bc", "target": "diagnosis"}, headers=auth)
    api_error(client.post(URL.format(name="bc", version=1), json={"objective": "f1"}), 401)
    optimize(client, {"objective": "f1"}, headers=auth)


def test_the_python_client(served):
    from service.client import LogregAPIError, LogregClient

    data = served.data["bc"]
    with LogregClient("http://localhost", transport=InProcess(served.client)) as client:
        out = client.optimize_threshold("bc", 1, "min_recall", target=0.9)
        assert out["threshold"] == optimize(served.client, {"objective": "min_recall", "target": 0.9})["threshold"]
        posted = client.optimize_threshold("bc", 1, "cost", cost={"fp": 1, "fn": 4}, labels=data.y,
                                           features=data.X)
        assert posted["source"] == "posted"
        explained = client.predict("bc", features=data.X[:2], threshold=0.3, explain=True)
        assert explained["explanations"][0]["threshold"] == 0.3
        assert "explanations" not in client.predict_proba("bc", features=data.X[:2])
        assert len(client.predict_proba("bc", features=data.X[:2], explain=True)["explanations"]) == 2
        with pytest.raises(LogregAPIError) as err:
            client.optimize_threshold("iris", 1, "f1")
        assert err.value.status_code == 422
