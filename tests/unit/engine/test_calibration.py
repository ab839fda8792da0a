"""Calibration: Platt scaling and isotonic regression against scikit-learn, their inverses, the wrapper model,
and the calibration report (Brier, ECE, reliability bins) against a hand computation and ``calibration_curve``."""

from __future__ import annotations

import io
import math
import pickle

import joblib
import numpy as np
import pytest
from sklearn.calibration import _sigmoid_calibration, calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss

from service.engine import LogisticRegression, evaluation
from service.engine.calibration import (
    CalibratedModel,
    IsotonicCalibrator,
    PlattCalibrator,
    calibrate,
    make_calibrator,
    pool_adjacent_violators,
    raw_threshold,
)


def scores_and_labels(n: int = 600, seed: int = 0, scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=2.0, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(scale * s + 0.3)))).astype(int)
    return s, y


def miscalibrated_data(n: int = 3000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two features whose true logit is 3x what a strongly regularized model learns: an underconfident model."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * X[:, 0] - 1.5 * X[:, 1])))).astype(int)
    return X, y


# -- Platt ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_platt_equals_sklearn_sigmoid_calibration(seed):
    s, y = scores_and_labels(seed=seed)
    platt = PlattCalibrator().fit(s, y)
    A, B = _sigmoid_calibration(s, y)  # sklearn: P = 1 / (1 + exp(A * s + B))
    assert platt.a_ == pytest.approx(-A, rel=1e-5, abs=1e-6)
    assert platt.b_ == pytest.approx(-B, rel=1e-5, abs=1e-6)
    grid = np.linspace(-6, 6, 25)
    np.testing.assert_allclose(platt.predict(grid), 1 / (1 + np.exp(A * grid + B)), atol=1e-6)


def test_platt_is_finite_on_separable_scores():
    s = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    platt = PlattCalibrator().fit(s, [0, 0, 0, 1, 1, 1])
    assert math.isfinite(platt.a_) and platt.a_ > 0  # Platt's smoothed targets keep it from diverging
    assert 0 < platt.predict(np.array([-100.0]))[0] < platt.predict(np.array([100.0]))[0] <= 1


@pytest.mark.parametrize("t", [1e-6, 0.1, 0.37, 0.5, 0.9, 1 - 1e-9])
def test_platt_inverse_is_exact(t):
    platt = PlattCalibrator().fit(*scores_and_labels())
    s = platt.raw_threshold(t)
    assert platt.predict(np.array([s]))[0] == pytest.approx(t, rel=1e-12)


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_platt_inverse_at_the_ends_is_none(t):
    assert PlattCalibrator().fit(*scores_and_labels()).raw_threshold(t) is None


def test_platt_flat_map_has_no_inverse():
    platt = PlattCalibrator().fit(np.zeros(10), [0, 1] * 5)
    assert platt.a_ == pytest.approx(0.0, abs=1e-6)
    platt.a_ = 0.0
    assert platt.raw_threshold(0.5) is None


# -- isotonic -------------------------------------------------------------------------------------------
def test_pool_adjacent_violators_by_hand():
    out = pool_adjacent_violators(np.array([1.0, 3.0, 2.0, 2.0, 0.0, 5.0]), np.ones(6))
    # 3, 2, 2, 0 violate: pooled to their mean 1.75; the leading 1 is below it and stays
    np.testing.assert_allclose(out, [1.0, 1.75, 1.75, 1.75, 1.75, 5.0])
    weighted = pool_adjacent_violators(np.array([2.0, 0.0]), np.array([3.0, 1.0]))
    np.testing.assert_allclose(weighted, [1.5, 1.5])
    assert np.all(np.diff(pool_adjacent_violators(np.random.default_rng(0).random(50), np.ones(50))) >= 0)


@pytest.mark.parametrize("decimals", [None, 1, 0])  # None: distinct scores; 1 and 0: many ties
def test_isotonic_equals_sklearn(decimals):
    s, y = scores_and_labels(seed=3)
    if decimals is not None:
        s = np.round(s, decimals)
    ours = IsotonicCalibrator().fit(s, y)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    grid = np.r_[np.linspace(-9, 9, 2001), s]
    np.testing.assert_allclose(ours.predict(grid), ref.predict(grid), atol=1e-12)
    assert np.all(np.diff(ours.y_) >= 0) and np.all(np.diff(ours.x_) > 0)


def test_isotonic_single_distinct_score_is_constant():
    iso = IsotonicCalibrator().fit(np.full(4, 2.0), [0, 1, 1, 1])
    np.testing.assert_allclose(iso.predict(np.array([-5.0, 2.0, 9.0])), 0.75)
    assert iso.raw_threshold(0.5) is None and iso.raw_threshold(0.9) is None


@pytest.mark.parametrize("t", [0.05, 0.2, 0.5, 0.61, 0.8, 0.95])
def test_isotonic_inverse_is_the_smallest_score_reaching_t(t):
    iso = IsotonicCalibrator().fit(*scores_and_labels(seed=4))
    s = iso.raw_threshold(t)
    if s is None:
        assert iso.y_[0] >= t or iso.y_[-1] < t
        return
    assert iso.predict(np.array([s]))[0] >= t
    assert iso.predict(np.array([np.nextafter(s, -np.inf)]))[0] < t
    dense = np.linspace(iso.x_[0] - 1, iso.x_[-1] + 1, 20001)
    reach = dense[iso.predict(dense) >= t]
    assert reach.min() >= s


def test_isotonic_inverse_outside_the_range_is_none():
    iso = IsotonicCalibrator().fit(np.array([0.0, 1.0, 2.0, 3.0]), [0, 0, 1, 1])  # y_ goes 0 .. 1
    assert iso.raw_threshold(0.0) is None  # every score reaches 0
    iso.y_ = np.array([0.2, 0.7])
    iso.x_ = np.array([0.0, 1.0])
    assert iso.raw_threshold(0.8) is None  # none reaches 0.8
    assert iso.raw_threshold(0.45) == pytest.approx(0.5, abs=1e-12)


def test_make_calibrator_rejects_unknown_methods():
    with pytest.raises(ValueError, match="platt"):
        make_calibrator("beta")


# -- the wrapper ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    X, y = miscalibrated_data()
    base = LogisticRegression(C=0.002).fit(X[:1500], y[:1500])
    return base, X, y


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_model_has_the_estimator_api(fitted, method):
    base, X, y = fitted
    model, _ = calibrate(base, X[1500:2200], y[1500:2200], method, seed=0)
    assert isinstance(model, CalibratedModel) and model.calibration_ == method
    for attr in ("classes_", "coef_", "intercept_", "n_features_in_", "mean_", "scale_", "standardized_coef_",
                 "n_iter_", "converged_", "loss_history_", "alpha_", "fit_warnings_"):
        assert getattr(model, attr) is getattr(base, attr), attr
    Xt = X[2200:]
    np.testing.assert_array_equal(model.decision_function(Xt), base.decision_function(Xt))
    P = model.predict_proba(Xt)
    assert P.shape == (Xt.shape[0], 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P[:, 1], model.calibrator_.predict(base.decision_function(Xt)))
    for t in (None, 0.3, 0.8):
        expected = model.classes_[(P[:, 1] >= (0.5 if t is None else t)).astype(int)]
        np.testing.assert_array_equal(model.predict(Xt, threshold=t), expected)
    with pytest.raises(ValueError, match="threshold"):
        model.predict(Xt, threshold=1.5)
    with pytest.raises(AttributeError):
        _ = model.no_such_thing_
    with pytest.raises(AttributeError):
        _ = model.no_underscore


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibrated_model_survives_pickle_and_joblib(fitted, method):
    base, X, y = fitted
    model, _ = calibrate(base, X[1500:2200], y[1500:2200], method)
    buf = io.BytesIO()
    joblib.dump(model, buf)
    again = joblib.load(io.BytesIO(buf.getvalue()))
    twice = pickle.loads(pickle.dumps(model))
    for copy in (again, twice):
        np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
        assert copy.raw_threshold(0.4) == model.raw_threshold(0.4)


def test_raw_threshold_of_a_plain_model_is_the_logit():
    base = LogisticRegression().fit(*miscalibrated_data(200))
    assert raw_threshold(base, 0.5) == 0.0
    assert raw_threshold(base, 0.8) == pytest.approx(math.log(4))
    assert raw_threshold(base, 0.0) is None and raw_threshold(base, 1.0) is None


def test_calibration_needs_a_binary_model():
    from sklearn.datasets import load_iris

    iris = load_iris()
    base = LogisticRegression().fit(iris.data, iris.target)
    with pytest.raises(ValueError, match="binary"):
        calibrate(base, iris.data, iris.target, "platt")
    with pytest.raises(ValueError, match="binary"):
        CalibratedModel(base, PlattCalibrator())


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_calibration_fixes_an_underconfident_model_out_of_sample(fitted, method):
    base, X, y = fitted
    model, report = calibrate(base, X[1500:2200], y[1500:2200], method, seed=0)
    test_X, test_y = X[2200:], y[2200:]
    before = evaluation.calibration_report(test_y, base.predict_proba(test_X), base.classes_)
    after = evaluation.calibration_report(test_y, model.predict_proba(test_X), base.classes_)
    assert after["brier"] < before["brier"]
    assert after["ece"] < 0.5 * before["ece"]
    # the report on the calibration rows says the same, in-sample and cross-fitted
    assert report["method"] == method and report["n_rows"] == 700
    assert report["after"]["ece"] < report["before"]["ece"]
    assert report["after_cross_fitted"]["brier"] < report["before"]["brier"]
    assert report["after_cross_fitted"]["brier"] >= report["after"]["brier"] - 1e-3  # in-sample is optimistic
    assert set(report["parameters"]) == ({"a", "b"} if method == "platt" else {"knots"})


def test_isotonic_is_perfectly_calibrated_in_sample(fitted):
    base, X, y = fitted
    _, report = calibrate(base, X[1500:2200], y[1500:2200], "isotonic")
    assert report["after"]["ece"] == pytest.approx(0.0, abs=1e-12)


def test_few_rows_warn_and_skip_the_cross_fit(fitted):
    base, X, y = fitted
    _, report = calibrate(base, X[1500:1508], y[1500:1508], "platt")
    assert report["after_cross_fitted"] is None
    assert report["warnings"] and "8 validation rows" in report["warnings"][0]


# -- the calibration report -----------------------------------------------------------------------------
def test_calibration_report_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.1, 0.35, 0.4, 0.95, 1.0])  # 0.1 sits on an edge: it belongs to the first bin
    rep = evaluation.calibration_report(y, np.column_stack([1 - p, p]), np.array([0, 1]), n_bins=4)
    # bins [0, .25]: .05 .1 (0 0); (.25, .5]: .35 .4 (1 1); (.5, .75]: none; (.75, 1]: .95 1.0 (1 0)
    assert [b["count"] for b in rep["bins"]] == [2, 2, 0, 2]
    assert [(b["lower"], b["upper"]) for b in rep["bins"]] == [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]
    assert rep["bins"][0]["mean_predicted"] == pytest.approx(0.075)
    assert rep["bins"][1]["fraction_positive"] == 1.0
    assert rep["bins"][2]["mean_predicted"] is None and rep["bins"][2]["fraction_positive"] is None
    gaps = [0.075, 1 - 0.375, 0.975 - 0.5]
    assert rep["ece"] == pytest.approx(sum(2 / 6 * g for g in gaps))
    assert rep["mce"] == pytest.approx(max(gaps))
    assert rep["brier"] == pytest.approx(np.mean((y - p) ** 2))
    assert rep["kind"] == "positive_class" and rep["n_bins"] == 4 and rep["n_samples"] == 6


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_calibration_report_equals_sklearn_calibration_curve(n_bins):
    rng = np.random.default_rng(n_bins)
    p = rng.beta(0.7, 0.9, size=500)
    p[:20] = np.round(p[:20], 1)  # values on the edges
    y = np.where(rng.random(500) < p**1.3, "yes", "no")
    rep = evaluation.calibration_report(y, np.column_stack([1 - p, p]), np.array(["no", "yes"]), n_bins=n_bins)
    frac, mean = calibration_curve(y == "yes", p, n_bins=n_bins, strategy="uniform")
    full = [b for b in rep["bins"] if b["count"]]
    np.testing.assert_allclose([b["fraction_positive"] for b in full], frac, atol=1e-12)
    np.testing.assert_allclose([b["mean_predicted"] for b in full], mean, atol=1e-12)
    counts = np.array([b["count"] for b in full])
    assert counts.sum() == 500
    assert rep["ece"] == pytest.approx(float(np.sum(counts / 500 * np.abs(frac - mean))), abs=1e-12)
    assert rep["brier"] == pytest.approx(brier_score_loss(y, p, pos_label="yes"), abs=1e-12)


def test_calibration_report_of_a_multiclass_model_is_top_label():
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.35, 0.45, 0.2], [0.2, 0.2, 0.6]])
    y = np.array(["a", "c", "a", "b"])
    rep = evaluation.calibration_report(y, P, np.array(["a", "b", "c"]), n_bins=2)
    # top probabilities .7 .6 .45 .6, correct: yes yes no no -> bins [0, .5]: (.45, 0); (.5, 1]: (.6333, 2/3)
    assert rep["kind"] == "top_label"
    assert [b["count"] for b in rep["bins"]] == [1, 3]
    assert rep["ece"] == pytest.approx(0.25 * 0.45 + 0.75 * abs(1.9 / 3 - 2 / 3))
    assert rep["brier"] == pytest.approx(brier_score_loss(y, P, labels=["a", "b", "c"]))


def test_calibration_report_rejects_bad_input():
    P = np.array([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="not in the model's classes"):
        evaluation.calibration_report([0, 2], P, [0, 1])
    with pytest.raises(ValueError, match="n_bins"):
        evaluation.calibration_report([0, 1], P, [0, 1], n_bins=0)
    with pytest.raises(ValueError, match="shape"):
        evaluation.calibration_report([0, 1], P[:, 1], [0, 1])
