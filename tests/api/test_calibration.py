"""Calibration in the API: the report in POST and GET /metrics, and the optional calibration step at training
(Platt or isotonic on the validation split), checked against scikit-learn fitted on the same rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import _sigmoid_calibration, calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss

from service import cli
from service.engine import evaluation

CAL_KEYS = {"kind", "n_samples", "brier", "ece", "mce", "n_bins", "bins"}
STEP_KEYS = {"method", "fitted_on", "n_rows", "parameters", "before", "after", "after_cross_fitted", "note",
             "warnings"}


@pytest.fixture(scope="module")
def calibrated(served, trainer, breast_cancer, breast_cancer_csv):
    """``bc-platt`` trained from JSON, ``bc-isotonic`` from a CSV upload, both on the default 20% split."""
    served.reports["bc-platt"] = trainer.json(served.client, "bc-platt", breast_cancer, calibration="platt")
    served.reports["bc-isotonic"] = trainer.csv(served.client, "bc-isotonic", breast_cancer_csv, "diagnosis",
                                                calibration="isotonic")
    return served


def check_bins(report: dict[str, Any], hit: np.ndarray, score: np.ndarray) -> None:
    frac, mean = calibration_curve(hit, score, n_bins=10, strategy="uniform")
    full = [b for b in report["bins"] if b["count"]]
    np.testing.assert_allclose([b["fraction_positive"] for b in full], frac, atol=1e-12)
    np.testing.assert_allclose([b["mean_predicted"] for b in full], mean, atol=1e-12)
    counts = np.array([b["count"] for b in full])
    assert report["ece"] == pytest.approx(float(np.sum(counts / len(score) * np.abs(frac - mean))), abs=1e-12)
    assert len(report["bins"]) == report["n_bins"] == 10


# -- the report in /metrics -----------------------------------------------------------------------------
def test_post_metrics_has_the_calibration_report(served):
    data = served.data["bc"]
    out = served.client.post("/metrics", json={"model": "bc", "features": data.X.tolist(),
                                               "labels": data.y.tolist()}).json()
    cal = out["calibration"]
    assert set(cal) == CAL_KEYS and cal["kind"] == "positive_class" and cal["n_samples"] == len(data.y)
    p = served.load("bc").model.predict_proba(data.X)[:, 1]
    check_bins(cal, data.y == "malignant", p)
    assert cal["brier"] == pytest.approx(brier_score_loss(data.y, p, pos_label="malignant"), abs=1e-12)
    assert cal["brier"] == out["brier"]


def test_post_metrics_of_a_multiclass_model_is_top_label(served):
    data = served.data["iris"]
    out = served.client.post("/metrics", json={"model": "iris", "features": data.X.tolist(),
                                               "labels": data.y.tolist()}).json()
    model = served.load("iris").model
    P = model.predict_proba(data.X)
    cal = out["calibration"]
    assert cal["kind"] == "top_label"
    check_bins(cal, model.classes_[P.argmax(axis=1)] == data.y, P.max(axis=1))
    assert cal["brier"] == pytest.approx(out["brier"], abs=1e-12)


def test_get_metrics_reports_the_stored_validation_split(served):
    out = served.client.get("/metrics", params={"model": "bc"}).json()
    sample = served.client.get("/models/bc/versions/1/validation").json()
    p = np.asarray(sample["probabilities"])[:, 1]
    cal = out["calibration"]
    assert cal["source"] == "validation_sample" and cal["n_samples"] == len(p) == out["n_validation"]
    check_bins(cal, np.asarray(sample["labels"]) == "malignant", p)
    assert out["calibration_step"] is None
    assert served.client.get("/metrics", params={"model": "toy"}).json()["calibration"] is None  # no split


# -- calibration at training ----------------------------------------------------------------------------
def validation_rows(served: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and base-model logits of a version's validation rows (positions from /validation)."""
    sample = served.client.get(f"/models/{name}/versions/1/validation").json()
    rows = np.asarray(sample["rows"])
    data = served.data["bc"]
    model = served.load(name).model
    return data.X[rows], data.y[rows], model.decision_function(data.X[rows])


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_the_training_report_shows_the_effect(calibrated, method):
    report = calibrated.reports[f"bc-{method}"]
    step = report["calibration"]
    assert set(step) == STEP_KEYS
    assert step["method"] == method and step["fitted_on"] == "validation split"
    assert step["n_rows"] == report["n_validation"] == calibrated.reports["bc"]["n_validation"] > 100
    for key in ("before", "after", "after_cross_fitted"):
        assert set(step[key]) == CAL_KEYS | {"log_loss"}
        assert step[key]["n_samples"] == step["n_rows"]
    # "before" is the uncalibrated model on the split: the same as an uncalibrated training on the same seed
    plain = calibrated.client.get("/metrics", params={"model": "bc"}).json()["calibration"]
    assert step["before"]["ece"] == pytest.approx(plain["ece"], abs=1e-9)
    assert step["before"]["brier"] == pytest.approx(plain["brier"], abs=1e-9)
    if method == "isotonic":
        assert step["after"]["ece"] == pytest.approx(0.0, abs=1e-12)  # in-sample isotonic: calibrated by construction
        assert step["after_cross_fitted"]["ece"] > step["after"]["ece"]  # hence the cross-fitted estimate
    # the version's card, GET /metrics and the stored validation sample all reflect the calibrated model
    card = calibrated.client.get(f"/models/bc-{method}/versions/1").json()
    assert card["calibration"] == step
    stored = calibrated.client.get("/metrics", params={"model": f"bc-{method}"}).json()
    assert stored["calibration_step"] == step
    assert stored["calibration"]["ece"] == pytest.approx(step["after"]["ece"], abs=1e-12)


def test_platt_step_equals_sklearn(calibrated):
    _, y, logits = validation_rows(calibrated, "bc-platt")
    A, B = _sigmoid_calibration(logits, y == "malignant")
    params = calibrated.reports["bc-platt"]["calibration"]["parameters"]
    assert params["a"] == pytest.approx(-A, rel=1e-4) and params["b"] == pytest.approx(-B, rel=1e-4, abs=1e-5)
    data = calibrated.data["bc"]
    out = calibrated.client.post("/predict_proba", json={"model": "bc-platt", "features": data.X.tolist()}).json()
    z = calibrated.load("bc-platt").model.decision_function(data.X)
    np.testing.assert_allclose(np.asarray(out["probabilities"])[:, 1],
                               1 / (1 + np.exp(-(params["a"] * z + params["b"]))), atol=1e-12)
    np.testing.assert_allclose(np.asarray(out["probabilities"])[:, 1], 1 / (1 + np.exp(A * z + B)), atol=1e-5)


def test_isotonic_step_equals_sklearn(calibrated):
    _, y, logits = validation_rows(calibrated, "bc-isotonic")
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(logits, y == "malignant")
    data = calibrated.data["bc"]
    out = calibrated.client.post("/predict_proba", json={"model": "bc-isotonic", "features": data.X.tolist()}).json()
    z = calibrated.load("bc-isotonic").model.decision_function(data.X)
    np.testing.assert_allclose(np.asarray(out["probabilities"])[:, 1], ref.predict(z), atol=1e-12)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_a_calibrated_version_serves_like_any_other(calibrated, method):
    name = f"bc-{method}"
    data = calibrated.data["bc"]
    client = calibrated.client
    P = np.asarray(client.post("/predict_proba", json={"model": name, "features": data.X.tolist()}).json()
                   ["probabilities"])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    pred = client.post("/predict?threshold=0.4", json={"model": name, "features": data.X.tolist()}).json()
    assert pred["predictions"] == np.where(P[:, 1] >= 0.4, "malignant", "benign").tolist()
    report = client.post("/metrics", json={"model": name, "features": data.X.tolist(),
                                           "labels": data.y.tolist()}).json()
    assert report["brier"] == pytest.approx(brier_score_loss(data.y, P[:, 1], pos_label="malignant"), abs=1e-12)
    card = client.get(f"/models/{name}/versions/1").json()
    base = calibrated.load(name).model.base_
    assert card["coefficients"]["malignant"] == dict(zip(data.feature_names, base.coef_[0].tolist(), strict=True))
    tuned = client.post(f"/models/{name}/versions/1/threshold:optimize", json={"objective": "youden"})
    assert tuned.status_code == 200, tuned.text


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"calibration": "platt", "validation_fraction": 0}, "validation_fraction"),
        ({"calibration": "beta"}, "calibration"),
    ],
)
def test_calibration_needs_a_split_and_a_known_method(make_client, trainer, breast_cancer, api_error, fields,
                                                      mentions):
    client = make_client()
    body = {"model": "bc", "features": breast_cancer.X.tolist(), "labels": breast_cancer.y.tolist(), **fields}
    api_error(client.post("/train", json=body), 422, mentions=() if fields["calibration"] == "beta" else mentions)
    assert client.get("/models").json()["models"] == []


def test_calibration_of_a_multiclass_model_is_422(make_client, iris, api_error):
    client = make_client()
    body = {"model": "iris", "features": iris.X.tolist(), "labels": iris.y.tolist(), "calibration": "isotonic"}
    api_error(client.post("/train", json=body), 422, mentions="binary")


def test_csv_form_field_is_validated(make_client, breast_cancer_csv, api_error):
    client = make_client()
    resp = client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")},
                       data={"model": "bc", "target": "diagnosis", "calibration": "sigmoid"})
    api_error(resp, 422)


def test_without_calibration_the_report_has_no_step(served):
    assert "calibration" not in served.reports["bc"]
    assert "calibration" not in served.client.get("/models/bc/versions/1").json()


def test_background_training_calibrates_too(make_client, breast_cancer):
    client = make_client()
    body = {"model": "bc", "features": breast_cancer.X.tolist(), "labels": breast_cancer.y.tolist(),
            "calibration": "platt"}
    resp = client.post("/train?background=true", json=body)
    assert resp.status_code == 202, resp.text
    for _ in range(200):
        job = client.get(resp.headers["location"]).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    assert job["state"] == "succeeded", job
    assert job["result"]["calibration"]["method"] == "platt"


def test_the_cli_trains_a_calibrated_version(tmp_path, capsys):
    csv_path = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"
    code = cli.main(["train", str(csv_path), "--target", "diagnosis", "--model", "bc",
                     "--calibration", "isotonic", "--store", str(tmp_path / "store")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration"]["method"] == "isotonic"
    assert set(summary["calibration"]["before"]) == {"brier", "ece"}


def test_the_report_is_documented(served):
    spec = served.client.get("/openapi.json").json()
    prop = spec["components"]["schemas"]["TrainRequest"]["properties"]["calibration"]
    assert prop["enum"] == ["none", "platt", "isotonic"] and prop["default"] == "none"
    assert evaluation.calibration_report.__doc__
