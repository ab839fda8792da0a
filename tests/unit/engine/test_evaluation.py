"""Tests of ``service.engine.evaluation`` against ``sklearn.metrics`` (a test-only dependency).

Accuracy, precision/recall/F1, the confusion matrix, ROC AUC, the Brier score, the threshold sweep and the
best-F1 threshold are reachable only through ``classification_summary``, so they are checked in its report.
Random inputs come from hypothesis, derandomized and bounded so the file runs in seconds.  Every call into the
engine runs with warnings turned into errors: zero-division cases must be silent.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import evaluation as ev

SETTINGS = settings(
    derandomize=True,
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOL = {"rtol": 1e-10, "atol": 1e-10}

INT_LABELS = [0, 1, 2, 3]
STR_LABELS = ["ant", "bee", "cat", "dog"]
GRID = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
SWEEP_THRESHOLDS = np.linspace(0, 1, 101)


def ours(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an engine function with every warning raised as an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def theirs(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a sklearn function, silencing its UndefinedMetric/User warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def assert_close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), **TOL)


def summary(y: Any, P: Any, classes: Any, **kwargs: Any) -> dict[str, Any]:
    """``classification_summary`` with warnings as errors."""
    return ours(ev.classification_summary, y, P, np.asarray(classes), **kwargs)


def binary_summary(y: Any, s: Any, classes: Any = (0, 1), **kwargs: Any) -> dict[str, Any]:
    """The summary of a binary model whose positive-class (``classes[1]``) probabilities are ``s``."""
    s = np.asarray(s, dtype=float)
    return summary(y, np.column_stack([1 - s, s]), classes, **kwargs)


def proba_predicting(y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """An (n, k) probability matrix whose prediction (argmax; binary: P[:, 1] >= 0.5) is ``y_pred``."""
    k = len(classes)
    P = np.full((len(y_pred), k), 0.3 / (k - 1))
    P[np.arange(len(y_pred)), [list(classes).index(v) for v in y_pred.tolist()]] = 0.7
    return P


# ----------------------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------------------


@st.composite
def weights(draw: st.DrawFn, n: int) -> np.ndarray | None:
    """None, or n non-negative weights (some exactly 0) with a positive sum."""
    if draw(st.booleans()):
        return None
    w = np.array(
        draw(
            st.lists(
                st.sampled_from([0.0, 0.5, 1.0, 3.0]) | st.floats(0.01, 10.0),
                min_size=n,
                max_size=n,
            )
        )
    )
    if w.sum() == 0:
        w[0] = 1.0
    return w


@st.composite
def label_pairs(draw: st.DrawFn, max_classes: int = 4) -> dict[str, Any]:
    """y_true, y_pred over int or str labels (2..max_classes of them), optional weights."""
    alphabet = draw(st.sampled_from([INT_LABELS, STR_LABELS]))[: draw(st.integers(2, max_classes))]
    n = draw(st.integers(1, 40))
    label = st.sampled_from(alphabet)
    y_true = np.array(draw(st.lists(label, min_size=n, max_size=n)))
    y_pred = np.array(draw(st.lists(label, min_size=n, max_size=n)))
    return {"y_true": y_true, "y_pred": y_pred, "alphabet": alphabet, "w": draw(weights(n))}


def proba_rows(n: int, k: int) -> st.SearchStrategy[np.ndarray]:
    """(n, k) row-stochastic matrices with ties, exact zeros/ones and generic values."""
    entry = st.sampled_from(GRID) | st.floats(0.001, 1.0)
    flat = st.lists(entry, min_size=n * k, max_size=n * k)

    def normalise(values: list[float]) -> np.ndarray:
        P = np.array(values, dtype=float).reshape(n, k)
        P[P.sum(axis=1) == 0] = 1.0
        return P / P.sum(axis=1, keepdims=True)

    return flat.map(normalise)


@st.composite
def proba_case(draw: st.DrawFn, min_classes: int = 2, max_classes: int = 4) -> dict[str, Any]:
    """y_true covering every class (so sklearn can infer them) with an (n, k) probability matrix."""
    k = draw(st.integers(min_classes, max_classes))
    alphabet = draw(st.sampled_from([INT_LABELS, STR_LABELS]))[:k]
    n = draw(st.integers(k, 40))
    idx = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    idx[:k] = list(range(k))
    y = np.array(alphabet)[draw(st.permutations(idx))]
    return {"y": y, "P": draw(proba_rows(n, k)), "classes": np.array(alphabet), "w": draw(weights(n))}


@st.composite
def binary_scores(draw: st.DrawFn, both_classes: bool = True) -> dict[str, Any]:
    """Binary 0/1 y_true and scores in [0, 1] with frequent ties; optional weights."""
    n = draw(st.integers(2 if both_classes else 1, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if both_classes:
        y[0], y[1] = 0, 1
    s = np.array(draw(st.lists(st.sampled_from(GRID) | st.floats(0.0, 1.0), min_size=n, max_size=n)))
    return {"y": y, "s": s, "w": draw(weights(n))}


# ----------------------------------------------------------------------------------------------------
# Label-based metrics, through the summary
# ----------------------------------------------------------------------------------------------------


def headline_average(classes: list[Any]) -> dict[str, Any]:
    """sklearn's arguments for the summary's headline P/R/F1: classes[1] if binary, else the macro average."""
    if len(classes) == 2:
        return {"average": "binary", "pos_label": classes[1]}
    return {"average": "macro", "labels": classes}


def check_label_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[Any], w: np.ndarray | None) -> None:
    """The summary of a model predicting ``y_pred`` against sklearn's label-based metrics on (y_true, y_pred)."""
    report = summary(y_true, proba_predicting(y_pred, np.array(classes)), classes, sample_weight=w)
    kw = {"sample_weight": w, "zero_division": 0}
    assert isinstance(report["accuracy"], float)
    assert_close(report["accuracy"], skm.accuracy_score(y_true, y_pred, sample_weight=w))

    matrix = report["confusion_matrix"]["matrix"]
    assert report["confusion_matrix"]["labels"] == classes
    np.testing.assert_allclose(matrix, theirs(skm.confusion_matrix, y_true, y_pred, labels=classes, sample_weight=w),
                               **TOL)
    assert all(type(v) is (int if w is None else float) for row in matrix for v in row)

    p, r, f, sup = theirs(skm.precision_recall_fscore_support, y_true, y_pred, labels=classes, average=None, **kw)
    for i, label in enumerate(classes):
        entry = report["per_class"][str(label)]
        assert_close([entry["precision"], entry["recall"], entry["f1"]], [p[i], r[i], f[i]])
        assert_close([entry["support"], report["support"][str(label)]], [sup[i], sup[i]])
    for average in ("macro", "weighted"):
        want = theirs(skm.precision_recall_fscore_support, y_true, y_pred, labels=classes, average=average, **kw)
        assert_close([report[average][key] for key in ("precision", "recall", "f1")], want[:3])

    for key, sk_fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert_close(report[key], theirs(sk_fn, y_true, y_pred, **headline_average(classes), **kw))


@SETTINGS
@given(label_pairs(), st.randoms(use_true_random=False))
def test_summary_label_metrics_match_sklearn(case: dict[str, Any], rnd: Any) -> None:
    """Accuracy, confusion matrix, per-class, macro, weighted and headline P/R/F1, classes in any order."""
    classes = list(case["alphabet"])
    rnd.shuffle(classes)
    check_label_metrics(case["y_true"], case["y_pred"], classes, case["w"])


@SETTINGS
@given(label_pairs(max_classes=2), st.booleans())
def test_summary_binary_label_metrics_match_sklearn(case: dict[str, Any], other_pos: bool) -> None:
    """Either label as the positive class (``classes[1]``)."""
    classes = list(case["alphabet"])
    check_label_metrics(case["y_true"], case["y_pred"], classes[::-1] if other_pos else classes, case["w"])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "classes", "expected"),
    [
        # no predicted positive: precision 0/0
        ([0, 1, 1, 0], [0, 0, 0, 0], [0, 1], (0.0, 0.0, 0.0)),
        # no true positive: recall 0/0
        ([0, 0, 0, 0], [0, 1, 0, 0], [0, 1], (0.0, 0.0, 0.0)),
        # neither: everything 0/0
        ([0, 0, 0], [0, 0, 0], [0, 1], (0.0, 0.0, 0.0)),
        # a class that never occurs nor is predicted, in the macro average
        ([0, 1, 1], [0, 1, 0], [0, 1, 2], None),
        (["a", "a"], ["b", "b"], ["a", "b"], (0.0, 0.0, 0.0)),
    ],
)
def test_zero_division_is_silent_zero(
    y_true: list[Any], y_pred: list[Any], classes: list[Any], expected: tuple[float, ...] | None
) -> None:
    report = summary(y_true, proba_predicting(np.array(y_pred), np.array(classes)), classes)
    got = (report["precision"], report["recall"], report["f1"])
    want = theirs(
        skm.precision_recall_fscore_support, y_true, y_pred, zero_division=0, **headline_average(classes)
    )[:3]
    assert_close(got, want)
    if expected is not None:
        assert got == expected
    assert_plain_json(report)  # no NaN anywhere


# ----------------------------------------------------------------------------------------------------
# Probabilistic losses
# ----------------------------------------------------------------------------------------------------


@SETTINGS
@given(proba_case())
def test_log_loss_matches_sklearn(case: dict[str, Any]) -> None:
    y, P, w = case["y"], case["P"], case["w"]
    assert_close(ours(ev.log_loss, y, P, sample_weight=w), skm.log_loss(y, P, sample_weight=w))
    if P.shape[1] == 2:  # positive-class vector form
        assert_close(ours(ev.log_loss, y, P[:, 1], sample_weight=w), skm.log_loss(y, P[:, 1], sample_weight=w))


@SETTINGS
@given(proba_case(min_classes=3))
def test_losses_with_labels_for_absent_class(case: dict[str, Any]) -> None:
    """labels= (the summary: classes) lets y_true miss a class; the column still counts through the probabilities."""
    y, P, classes, w = case["y"], case["P"], case["classes"], case["w"]
    keep = y != classes[-1]
    if not keep.any():
        return
    y, P = y[keep], P[keep]
    w = None if w is None or w[keep].sum() == 0 else w[keep]
    want = skm.log_loss(y, P, labels=classes, sample_weight=w)
    assert_close(ours(ev.log_loss, y, P, labels=classes, sample_weight=w), want)
    report = summary(y, P, classes, sample_weight=w)
    assert_close(report["log_loss"], want)
    assert_close(report["brier"], skm.brier_score_loss(y, P, labels=classes, sample_weight=w))
    assert report["roc_auc"] is None


def test_log_loss_clips_to_float_eps_like_sklearn() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.0, 1.0, 0.0, 1e-300, 1 - 1e-17])  # exact 0/1 and beyond-eps values
    got = ours(ev.log_loss, y, p)
    assert math.isfinite(got)
    assert got == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    eps = np.finfo(float).eps
    assert got == pytest.approx(-math.log(eps) / 5, rel=1e-12)  # one confidently wrong sample


@SETTINGS
@given(proba_case())
def test_summary_brier_matches_sklearn(case: dict[str, Any]) -> None:
    y, P, classes, w = case["y"], case["P"], case["classes"], case["w"]
    got = summary(y, P, classes, sample_weight=w)["brier"]
    assert_close(got, skm.brier_score_loss(y, P, sample_weight=w))
    onehot = (np.asarray(y)[:, None] == classes[None, :]).astype(float)
    per_sample = np.sum((onehot - P) ** 2, axis=1)
    scale = 0.5 if P.shape[1] == 2 else 1.0  # sklearn 1.9 scale_by_half="auto"
    assert_close(got, scale * np.average(per_sample, weights=w))
    if P.shape[1] == 2:
        pos = classes[1]
        assert_close(got, skm.brier_score_loss(y, P[:, 1], pos_label=pos, sample_weight=w))
    # the calibration report's Brier score is the unweighted one
    assert_close(ours(ev.calibration_report, y, P, classes)["brier"], skm.brier_score_loss(y, P))


@pytest.mark.parametrize(
    ("y", "classes"),
    [
        ([0, 1, 1, 0], [0, 1]),
        ([-1, 1, 1, -1], [-1, 1]),
        ([0, 0, 0, 0], [0, 1]),
        ([2, 5, 5, 2], [2, 5]),
        ([2, 5, 5, 2], [5, 2]),
        (["no", "yes", "yes", "no"], ["no", "yes"]),
        (["no", "yes", "yes", "no"], ["yes", "no"]),
    ],
)
def test_summary_brier_of_any_two_labels_matches_sklearn(y: list[Any], classes: list[Any]) -> None:
    p = np.array([0.1, 0.8, 0.4, 0.35])
    got = binary_summary(y, p, classes)["brier"]
    assert_close(got, skm.brier_score_loss(y, p, pos_label=classes[1]))


# ----------------------------------------------------------------------------------------------------
# Curve counts and ROC AUC
# ----------------------------------------------------------------------------------------------------


@SETTINGS
@given(binary_scores(both_classes=False))
def test_curve_counts_match_sklearn(case: dict[str, Any]) -> None:
    y, s, w = case["y"], case["s"], case["w"]
    fps, tps, thresholds = ours(ev.curve_counts, y == 1, s, w)
    _, want_fps, _, want_tps, want_thresholds = theirs(
        skm.confusion_matrix_at_thresholds, y, s, pos_label=1, sample_weight=w
    )
    for g, e in ((fps, want_fps), (tps, want_tps), (thresholds, want_thresholds)):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, **TOL)
    if w is None:
        assert fps.dtype == tps.dtype == np.int64


def mann_whitney_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
    """Brute force: P(score_pos > score_neg) + 1/2 P(tie), over weighted pairs."""
    w = np.ones(len(y)) if w is None else w
    pos, neg = y == 1, y == 0
    diff = s[pos][:, None] - s[neg][None, :]
    pair_w = w[pos][:, None] * w[neg][None, :]
    return float(np.sum(pair_w * ((diff > 0) + 0.5 * (diff == 0))) / np.sum(pair_w))


@SETTINGS
@given(binary_scores())
def test_roc_auc_binary_matches_sklearn_and_mann_whitney(case: dict[str, Any]) -> None:
    y, s, w = case["y"], case["s"], case["w"]
    got = binary_summary(y, s, sample_weight=w)["roc_auc"]
    if w is not None and (w[y == 1].sum() == 0 or w[y == 0].sum() == 0):
        assert got is None
        return
    assert_close(got, skm.roc_auc_score(y, s, sample_weight=w))
    assert_close(got, mann_whitney_auc(y, s, w))


@SETTINGS
@given(proba_case(min_classes=3))
def test_roc_auc_multiclass_ovr_macro_matches_sklearn(case: dict[str, Any]) -> None:
    y, P, classes, w = case["y"], case["P"], case["classes"], case["w"]
    got = summary(y, P, classes, sample_weight=w)["roc_auc"]
    want = theirs(skm.roc_auc_score, y, P, multi_class="ovr", average="macro", sample_weight=w)
    np.testing.assert_allclose(math.nan if got is None else got, want, equal_nan=True, **TOL)


def test_roc_auc_undefined_is_null_without_warning() -> None:
    assert binary_summary([1, 1, 1], [0.2, 0.5, 0.9])["roc_auc"] is None
    assert binary_summary(["a", "a"], [0.2, 0.5], ["a", "b"])["roc_auc"] is None
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    assert summary([0, 1, 1], P, [0, 1, 2])["roc_auc"] is None


def test_roc_auc_ties_count_half() -> None:
    assert binary_summary([0, 1], [0.5, 0.5])["roc_auc"] == 0.5
    assert binary_summary([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9])["roc_auc"] == 0.875


# ----------------------------------------------------------------------------------------------------
# Threshold sweep and best F1 threshold, through the summary
# ----------------------------------------------------------------------------------------------------


SWEEP_KEYS = {"thresholds", "precision", "recall", "f1", "accuracy", "tp", "fp", "fn", "tn"}


def brute_force_counts(y_pos: np.ndarray, s: np.ndarray, w: np.ndarray | None, thr: np.ndarray) -> np.ndarray:
    """(len(thr), 4) weighted tp, fp, fn, tn of the rule ``s >= t``, one threshold at a time."""
    w = np.ones(len(y_pos)) if w is None else w
    pred = s[None, :] >= thr[:, None]
    pos = np.asarray(y_pos)[None, :]
    return np.stack(
        [
            (w * (pred & pos)).sum(1),
            (w * (pred & ~pos)).sum(1),
            (w * (~pred & pos)).sum(1),
            (w * (~pred & ~pos)).sum(1),
        ],
        axis=1,
    )


@SETTINGS
@given(binary_scores(both_classes=False), st.randoms(use_true_random=False))
def test_threshold_sweep_matches_sklearn(case: dict[str, Any], rnd: Any) -> None:
    y, s, w = case["y"], case["s"], case["w"]
    sweep = binary_summary(y, s, sample_weight=w)["threshold_sweep"]
    assert set(sweep) == SWEEP_KEYS
    thr = SWEEP_THRESHOLDS
    assert sweep["thresholds"] == thr.tolist()
    assert all(len(v) == len(thr) for v in sweep.values())
    json.dumps(sweep, allow_nan=False)
    counts = np.column_stack([sweep[key] for key in ("tp", "fp", "fn", "tn")])
    np.testing.assert_allclose(counts, brute_force_counts(y == 1, s, w, thr), **TOL)
    if w is None:
        assert all(type(v) is int for key in ("tp", "fp", "fn", "tn") for v in sweep[key])
    # scores against sklearn at a few of the thresholds (sklearn calls are slow)
    for i in rnd.sample(range(len(thr)), 4):
        pred = (s >= thr[i]).astype(int)
        p, r, f, _ = theirs(
            skm.precision_recall_fscore_support, y, pred, average="binary", sample_weight=w, zero_division=0
        )
        assert_close([sweep["precision"][i], sweep["recall"][i], sweep["f1"][i]], [p, r, f])
        assert_close(sweep["accuracy"][i], skm.accuracy_score(y, pred, sample_weight=w))
        (tn, fp), (fn, tp) = skm.confusion_matrix(y, pred, labels=[0, 1], sample_weight=w)
        assert_close(counts[i], [tp, fp, fn, tn])


def test_threshold_sweep_string_labels() -> None:
    y = ["spam", "ham", "spam", "ham"]
    s = [0.9, 0.4, 0.4, 0.1]
    sweep = binary_summary(y, s, ["ham", "spam"])["threshold_sweep"]
    at = [0, 40, 50, 100]  # thresholds 0.0, 0.4, 0.5, 1.0
    assert [sweep["thresholds"][i] for i in at] == [0.0, 0.4, 0.5, 1.0]
    assert [sweep["tp"][i] for i in at] == [2, 2, 1, 0]
    assert [sweep["fp"][i] for i in at] == [2, 1, 0, 0]
    assert [sweep["precision"][i] for i in at] == [0.5, 2 / 3, 1.0, 0.0]
    assert [sweep["accuracy"][i] for i in at] == [0.5, 0.75, 0.75, 0.5]


@SETTINGS
@given(binary_scores(both_classes=False))
def test_best_f1_threshold_matches_brute_force(case: dict[str, Any]) -> None:
    y, s, w = case["y"], case["s"], case["w"]
    best = binary_summary(y, s, sample_weight=w)["best_threshold"]
    assert set(best) == {"threshold", "f1", "precision", "recall"}
    candidates = np.unique(np.r_[s, GRID, -0.5, 1.5])  # every score plus unrelated cut-offs
    tp, fp, fn, _ = brute_force_counts(y == 1, s, w, candidates).T
    with np.errstate(invalid="ignore", divide="ignore"):
        f1s = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
    top = f1s.max()
    assert best["f1"] == pytest.approx(top, abs=1e-12)
    assert best["threshold"] in s
    pred = (s >= best["threshold"]).astype(int)
    assert_close(best["f1"], theirs(skm.f1_score, y, pred, sample_weight=w, zero_division=0))
    assert_close(best["precision"], theirs(skm.precision_score, y, pred, sample_weight=w, zero_division=0))
    assert_close(best["recall"], theirs(skm.recall_score, y, pred, sample_weight=w, zero_division=0))
    if top == 0:  # no positive (weight): every cut-off ties
        return
    # ties go to the largest threshold: no higher score reaches the same F1
    higher = candidates[(candidates > best["threshold"]) & np.isin(candidates, s)]
    assert all(f1s[np.searchsorted(candidates, t)] < top - 1e-12 for t in higher)


def test_best_f1_threshold_known_values() -> None:
    y = [0, 0, 1, 1, 1, 0]
    s = [0.1, 0.4, 0.35, 0.8, 0.6, 0.7]
    best = binary_summary(y, s)["best_threshold"]
    assert best == {"threshold": 0.35, "f1": pytest.approx(0.75), "precision": 0.6, "recall": 1.0}
    none_positive = binary_summary([0, 0], [0.2, 0.7])["best_threshold"]
    assert none_positive == {"threshold": 0.7, "f1": 0.0, "precision": 0.0, "recall": 0.0}


# ----------------------------------------------------------------------------------------------------
# classification_summary
# ----------------------------------------------------------------------------------------------------

SUMMARY_KEYS = {
    "n_samples",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "roc_auc",
    "confusion_matrix",
    "support",
    "per_class",
    "macro",
    "weighted",
    "threshold",
}
BINARY_ONLY_KEYS = {"positive_class", "threshold_sweep", "best_threshold"}


def assert_plain_json(value: Any) -> None:
    """Only dict/list/str/int/float/bool/None, finite floats, str keys: json.dumps round-trips it."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)
        assert not (isinstance(value, float) and not math.isfinite(value))
    assert json.loads(json.dumps(value, allow_nan=False)) == value


BIN_Y = np.array(["no", "yes", "yes", "no", "yes", "no", "no", "yes", "no", "no"])
BIN_P1 = np.array([0.1, 0.9, 0.45, 0.5, 0.7, 0.2, 0.65, 0.3, 0.5, 0.05])
BIN_W = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 1.0, 1.0, 2.0, 1.0])


@pytest.mark.parametrize("w", [None, BIN_W])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_summary_binary_matches_sklearn(w: np.ndarray | None, threshold: float) -> None:
    classes = np.array(["no", "yes"])
    P = np.column_stack([1 - BIN_P1, BIN_P1])
    report = ours(ev.classification_summary, BIN_Y, P, classes, threshold=threshold, sample_weight=w)
    assert set(report) == SUMMARY_KEYS | BINARY_ONLY_KEYS
    assert_plain_json(report)

    pred = np.where(threshold <= BIN_P1, "yes", "no")
    kw = {"sample_weight": w, "zero_division": 0}
    assert report["n_samples"] == 10
    assert report["threshold"] == threshold
    assert report["positive_class"] == "yes"
    assert_close(report["accuracy"], skm.accuracy_score(BIN_Y, pred, sample_weight=w))
    assert_close(report["precision"], skm.precision_score(BIN_Y, pred, pos_label="yes", **kw))
    assert_close(report["recall"], skm.recall_score(BIN_Y, pred, pos_label="yes", **kw))
    assert_close(report["f1"], skm.f1_score(BIN_Y, pred, pos_label="yes", **kw))
    assert_close(report["log_loss"], skm.log_loss(BIN_Y, P, sample_weight=w))
    assert_close(report["brier"], skm.brier_score_loss(BIN_Y, BIN_P1, pos_label="yes", sample_weight=w))
    assert_close(report["roc_auc"], skm.roc_auc_score(BIN_Y, BIN_P1, sample_weight=w))
    assert report["confusion_matrix"]["labels"] == ["no", "yes"]
    cm = skm.confusion_matrix(BIN_Y, pred, labels=classes, sample_weight=w)
    np.testing.assert_allclose(report["confusion_matrix"]["matrix"], cm)
    p, r, f, sup = skm.precision_recall_fscore_support(BIN_Y, pred, labels=classes, **kw)
    for i, label in enumerate(classes):
        entry = report["per_class"][label]
        assert_close([entry["precision"], entry["recall"], entry["f1"]], [p[i], r[i], f[i]])
        assert_close(entry["support"], sup[i])
        assert_close(report["support"][label], sup[i])
    for avg in ("macro", "weighted"):
        want = skm.precision_recall_fscore_support(BIN_Y, pred, labels=classes, average=avg, **kw)[:3]
        assert_close([report[avg][key] for key in ("precision", "recall", "f1")], want)
    sweep = report["threshold_sweep"]
    assert sweep["thresholds"] == SWEEP_THRESHOLDS.tolist()
    counts = np.column_stack([sweep[key] for key in ("tp", "fp", "fn", "tn")])
    np.testing.assert_allclose(counts, brute_force_counts(BIN_Y == "yes", BIN_P1, w, SWEEP_THRESHOLDS), **TOL)
    best = report["best_threshold"]
    best_pred = np.where(best["threshold"] <= BIN_P1, "yes", "no")
    assert_close(best["f1"], skm.f1_score(BIN_Y, best_pred, pos_label="yes", **kw))
    assert best["f1"] >= max(sweep["f1"]) - 1e-12  # exact over every distinct score, so at least the grid's best


MC_Y = np.array(["cat", "dog", "eel", "cat", "dog", "eel", "cat", "cat", "eel", "dog", "dog", "eel"])
MC_P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.4, 0.4, 0.2],
        [0.5, 0.3, 0.2],
        [0.3, 0.3, 0.4],
        [0.6, 0.1, 0.3],
        [0.2, 0.2, 0.6],
        [0.1, 0.1, 0.8],
        [0.3, 0.6, 0.1],
        [0.25, 0.25, 0.5],
        [0.0, 0.0, 1.0],
    ]
)


@pytest.mark.parametrize("w", [None, np.arange(1.0, 13.0)])
def test_summary_multiclass_matches_sklearn(w: np.ndarray | None) -> None:
    classes = np.array(["cat", "dog", "eel"])
    report = ours(ev.classification_summary, MC_Y, MC_P, classes, sample_weight=w)
    assert set(report) == SUMMARY_KEYS
    assert_plain_json(report)
    pred = classes[np.argmax(MC_P, axis=1)]  # ties go to the first column, as predict()
    assert pred[3] == "cat"
    kw = {"sample_weight": w, "zero_division": 0}
    assert report["threshold"] is None
    assert_close(report["accuracy"], skm.accuracy_score(MC_Y, pred, sample_weight=w))
    macro = skm.precision_recall_fscore_support(MC_Y, pred, labels=classes, average="macro", **kw)[:3]
    assert_close([report["precision"], report["recall"], report["f1"]], macro)
    assert_close([report["macro"][k] for k in ("precision", "recall", "f1")], macro)
    weighted = skm.precision_recall_fscore_support(MC_Y, pred, labels=classes, average="weighted", **kw)[:3]
    assert_close([report["weighted"][k] for k in ("precision", "recall", "f1")], weighted)
    assert_close(report["log_loss"], skm.log_loss(MC_Y, MC_P, sample_weight=w))
    assert_close(report["brier"], skm.brier_score_loss(MC_Y, MC_P, sample_weight=w))
    want_auc = skm.roc_auc_score(MC_Y, MC_P, multi_class="ovr", average="macro", sample_weight=w)
    assert_close(report["roc_auc"], want_auc)
    cm = skm.confusion_matrix(MC_Y, pred, labels=classes, sample_weight=w)
    np.testing.assert_allclose(report["confusion_matrix"]["matrix"], cm)
    assert sorted(report["per_class"]) == ["cat", "dog", "eel"]
    weight = np.ones(len(MC_Y)) if w is None else w
    expected_support = {c: float(weight[c == MC_Y].sum()) for c in classes}
    assert report["support"] == expected_support
    assert all(type(v) is (int if w is None else float) for v in report["support"].values())


def test_summary_int_labels_and_single_class() -> None:
    classes = np.array([3, 7])
    P = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    report = ours(ev.classification_summary, [7, 7, 7], P, classes)
    assert report["roc_auc"] is None
    assert set(report["per_class"]) == {"3", "7"}
    assert report["support"] == {"3": 0, "7": 3}
    assert report["positive_class"] == 7
    assert report["confusion_matrix"] == {"labels": [3, 7], "matrix": [[0, 0], [1, 2]]}
    assert_plain_json(report)
    # multiclass with one class present is null too
    P3 = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    report = ours(ev.classification_summary, [1, 1], P3, np.array([0, 1, 2]))
    assert report["roc_auc"] is None
    assert_plain_json(report)


def test_summary_rejects_unknown_labels() -> None:
    P = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"\['maybe'\]"):
        ev.classification_summary(["no", "maybe", "yes"], P, np.array(["no", "yes"]))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        ev.classification_summary(["no", "yes", "yes"], P, np.array(["maybe", "no", "yes"]))


# ----------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------

P2 = np.array([[0.2, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ev.classification_summary([0, 1, 1], P2, [0, 1]), "y_true has 3, proba has 2"),
        (lambda: ev.classification_summary([], np.empty((0, 2)), [0, 1]), "y_true is empty"),
        (lambda: ev.classification_summary([[0, 1]], P2, [0, 1]), r"1-D.*\(1, 2\)"),
        (lambda: ev.classification_summary(["0", "1"], P2, [0, 1]), "cannot mix string and numeric"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 1], sample_weight=[1.0]), "1 values but there are 2"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 1], sample_weight=[1.0, -2.0]), r"non-negative.*-2\.0"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 1], sample_weight=[0.0, 0.0]), "sums to zero"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 1], sample_weight=[1.0, np.nan]), "non-finite"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 0]), r"duplicates: \[0\]"),
        (lambda: ev.classification_summary([0, 1], [[0.5, 0.5], [np.inf, 0.5]], [0, 1]), "non-finite"),
        (lambda: ev.classification_summary([0, 1], [[0.5, 0.5], [-0.5, 1.5]], [0, 1]), r"\[0, 1\], got \[-0\.5, 1"),
        (lambda: ev.classification_summary([0, 1], [[0.5, 0.6], [0.5, 0.5]], [0, 1]), r"sum to 1.*1\.1"),
        (lambda: ev.classification_summary([0, 1], P2, [0, 1], threshold=math.nan), "threshold"),
        (lambda: ev.classification_summary([0, 1], P2, [0]), "at least 2"),
        (lambda: ev.classification_summary([0, 1], P2[:, 1], [0, 1]), r"got \(2,\)"),
        (lambda: ev.log_loss([0, 1], [0.2, 0.8, 0.5]), "y_true has 2, proba has 3"),
        (lambda: ev.log_loss([0, 1], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]), "3 columns but there are 2 classes"),
        (lambda: ev.log_loss([0, 1], np.ones((2, 2, 1)) / 2), r"\(2, 2, 1\)"),
        (lambda: ev.log_loss([0, 1], [1.2, 0.5]), r"\[0, 1\], got \[1\.2\]"),
        (lambda: ev.log_loss([0, 1], [[0.5, 0.6], [0.5, 0.5]]), r"sum to 1.*1\.1"),
        (lambda: ev.log_loss([1, 1], [0.5, 0.5]), r"only one label \(1\)"),
        (lambda: ev.log_loss([0, 2], P2, labels=[0, 1]), r"labels \[2\]"),
        (lambda: ev.log_loss([0, 1], P2, labels=[1, 0]), "must be sorted"),
        (lambda: ev.log_loss([0, 1, 2], [0.1, 0.2, 0.3]), "needs 2 classes, got 3"),
    ],
)
def test_bad_input_raises_value_error(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
