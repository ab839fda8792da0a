"""Probability calibration of a fitted binary model: Platt scaling and isotonic regression, in pure numpy.

Both map the model's raw score, the logit ``s = decision_function(X)``, to a calibrated probability of the
positive class, as scikit-learn's ``CalibratedClassifierCV`` does:

* :class:`PlattCalibrator`: ``p = sigmoid(a * s + b)``, fitted by maximum likelihood with Platt's smoothed
  targets (``(N+ + 1) / (N+ + 2)`` for positives, ``1 / (N- + 2)`` for negatives), so it never diverges on
  separable data. The fit reuses this engine's :class:`LogisticRegression` on the single feature ``s``.
* :class:`IsotonicCalibrator`: the non-decreasing step function of least squares (pool adjacent
  violators, ties in ``s`` pooled first), linearly interpolated between its knots and constant beyond the
  first and last (scikit-learn's ``out_of_bounds="clip"``).

:class:`CalibratedModel` wraps a fitted binary :class:`LogisticRegression` and a calibrator behind the
estimator's own API (``predict_proba``, ``predict``, ``decision_function``, ``classes_``, ``coef_``, ...),
so code that serves a model serves a calibrated one unchanged. ``decision_function`` stays the raw logit
(the coefficients explain it); ``predict_proba`` is calibrated; :meth:`CalibratedModel.raw_threshold` maps a
threshold on calibrated probabilities back to the raw logit where the decision changes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import evaluation
from ._loss import sigmoid
from .logistic import LogisticRegression

Array = NDArray[np.float64]

METHODS = ("platt", "isotonic")


def _as_1d(values: ArrayLike, name: str) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values")
    return arr


def _as_targets(y: ArrayLike, n: int) -> Array:
    t = np.asarray(y)
    if t.shape != (n,):
        raise ValueError(f"y must hold one 0/1 target per score: {n} scores, shape {t.shape}")
    if t.dtype.kind == "b":
        return t.astype(np.float64)
    t = t.astype(np.float64)
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 (or boolean) targets, 1 for the positive class")
    return t


def logit(t: float) -> float:
    """``log(t / (1 - t))``; +-inf at 1 and 0."""
    if t <= 0.0:
        return -math.inf
    if t >= 1.0:
        return math.inf
    return math.log(t) - math.log1p(-t)


class PlattCalibrator:
    """``p = sigmoid(a * s + b)`` of the raw logit ``s``; ``a_`` and ``b_`` after :meth:`fit`."""

    method = "platt"

    def fit(self, scores: ArrayLike, y: ArrayLike) -> PlattCalibrator:
        s = _as_1d(scores, "scores")
        t = _as_targets(y, s.size)
        n_pos = float(t.sum())
        n_neg = float(s.size - n_pos)
        hi, lo = (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0)
        target = np.where(t == 1.0, hi, lo)
        # Soft targets as two weighted rows per score: cross-entropy with a target q is q * (loss of class 1)
        # + (1 - q) * (loss of class 0). A vanishing ridge keeps the solution unique if every score is equal.
        X = np.concatenate([s, s])[:, None]
        labels = np.concatenate([np.ones(s.size, dtype=np.int64), np.zeros(s.size, dtype=np.int64)])
        weights = np.concatenate([target, 1.0 - target])
        model = LogisticRegression(penalty="l2", alpha=1e-10, solver="newton", tol=1e-12, max_iter=200)
        model.fit(X, labels, sample_weight=weights)
        self.a_ = float(model.coef_[0, 0])
        self.b_ = float(model.intercept_[0])
        return self

    def predict(self, scores: ArrayLike) -> Array:
        """Calibrated probabilities of the positive class."""
        s = np.asarray(scores, dtype=np.float64)
        return sigmoid(self.a_ * s + self.b_)

    def raw_threshold(self, t: float) -> float | None:
        """The raw logit where the calibrated probability equals ``t`` (exact inverse); None when none does
        (``t`` at 0 or 1, or a flat map)."""
        z = logit(t)
        if not math.isfinite(z) or self.a_ == 0.0:
            return None
        s = (z - self.b_) / self.a_
        return s if math.isfinite(s) else None

    def describe(self) -> dict[str, Any]:
        return {"a": self.a_, "b": self.b_}


class IsotonicCalibrator:
    """Non-decreasing piecewise-linear map of the raw logit, through knots ``x_`` (increasing) and ``y_``."""

    method = "isotonic"

    def fit(self, scores: ArrayLike, y: ArrayLike) -> IsotonicCalibrator:
        s = _as_1d(scores, "scores")
        t = _as_targets(y, s.size)
        order = np.argsort(s, kind="stable")
        s, t = s[order], t[order]
        # pool ties in s first: one point per distinct score, its mean target, weighted by its count
        xs, start, counts = np.unique(s, return_index=True, return_counts=True)
        means = np.add.reduceat(t, start) / counts
        fitted = pool_adjacent_violators(means, counts.astype(np.float64))
        # keep only the ends of each flat run: the interpolation is the same, the knots are fewer
        keep = np.ones(xs.size, dtype=bool)
        if xs.size > 2:
            flat_left = fitted[1:-1] == fitted[:-2]
            flat_right = fitted[1:-1] == fitted[2:]
            keep[1:-1] = ~(flat_left & flat_right)
        self.x_ = xs[keep]
        self.y_ = np.clip(fitted[keep], 0.0, 1.0)
        return self

    def predict(self, scores: ArrayLike) -> Array:
        """Calibrated probabilities of the positive class (constant beyond the outer knots)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.x_.size == 1:
            return np.full(s.shape, self.y_[0])
        return np.interp(s, self.x_, self.y_)

    def raw_threshold(self, t: float) -> float | None:
        """The smallest raw logit whose calibrated probability is at least ``t``; None when every score or
        no score reaches it (the decision does not depend on the score there)."""
        x, y = self.x_, self.y_
        if y[0] >= t or y[-1] < t:
            return None
        k = int(np.argmax(y >= t))  # first knot at or above t; k >= 1 since y[0] < t
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        s = float(x0 + (t - y0) / (y1 - y0) * (x1 - x0))
        s = min(max(s, float(x0)), float(x1))
        # rounding: step to the first float whose interpolated value reaches t, then back while it still does
        for _ in range(64):
            if float(self.predict(np.array([s]))[0]) >= t:
                break
            s = float(np.nextafter(s, math.inf))
        else:
            s = float(x1)
        for _ in range(64):
            below = float(np.nextafter(s, -math.inf))
            if float(self.predict(np.array([below]))[0]) < t:
                break
            s = below
        return s

    def describe(self) -> dict[str, Any]:
        return {"knots": int(self.x_.size)}


def pool_adjacent_violators(values: Array, weights: Array) -> Array:
    """The non-decreasing sequence closest to ``values`` in weighted least squares (PAV, one pass)."""
    n = values.size
    level = np.empty(n)
    weight = np.empty(n)
    size = np.empty(n, dtype=np.intp)
    top = -1
    for i in range(n):
        top += 1
        level[top], weight[top], size[top] = values[i], weights[i], 1
        while top > 0 and level[top - 1] > level[top]:
            w = weight[top - 1] + weight[top]
            level[top - 1] = (level[top - 1] * weight[top - 1] + level[top] * weight[top]) / w
            weight[top - 1] = w
            size[top - 1] += size[top]
            top -= 1
    return np.repeat(level[: top + 1], size[: top + 1])


def make_calibrator(method: str) -> PlattCalibrator | IsotonicCalibrator:
    if method == "platt":
        return PlattCalibrator()
    if method == "isotonic":
        return IsotonicCalibrator()
    raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")


class CalibratedModel:
    """A fitted binary :class:`LogisticRegression` whose probabilities go through a calibrator.

    Fitted attributes (``classes_``, ``coef_``, ``intercept_``, ``n_features_in_``, ``mean_``, ``scale_``,
    ``standardized_coef_``, ``n_iter_``, ...) are the base model's; ``decision_function`` is its raw logit.
    """

    def __init__(self, base: LogisticRegression, calibrator: PlattCalibrator | IsotonicCalibrator) -> None:
        if len(base.classes_) != 2:
            raise ValueError(f"calibration applies to binary models only; this one has {len(base.classes_)} classes")
        self.base_ = base
        self.calibrator_ = calibrator

    @property
    def calibration_(self) -> str:
        return self.calibrator_.method

    def __getattr__(self, name: str) -> Any:
        # only fitted attributes (trailing underscore) are delegated; dunders and base_ itself never are,
        # so pickling and copying see a plain object
        if name.startswith("_") or not name.endswith("_") or name in ("base_", "calibrator_"):
            raise AttributeError(name)
        return getattr(self.base_, name)

    def decision_function(self, X: Any) -> Array:
        """The base model's raw logit of the positive class (before calibration)."""
        return self.base_.decision_function(X)

    def predict_proba(self, X: Any) -> Array:
        p = self.calibrator_.predict(self.base_.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X: Any) -> Array:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any, threshold: float | None = None) -> NDArray[Any]:
        t = 0.5 if threshold is None else float(threshold)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        return self.classes_[(self.predict_proba(X)[:, 1] >= t).astype(np.intp)]

    def raw_threshold(self, t: float) -> float | None:
        """The raw logit at which the calibrated probability crosses ``t`` (see the calibrator's method)."""
        return self.calibrator_.raw_threshold(t)

    def __repr__(self) -> str:
        return f"CalibratedModel({self.base_!r}, method={self.calibration_!r})"


def raw_threshold(model: Any, t: float) -> float | None:
    """The raw logit at which ``model``'s positive-class probability crosses ``t``: ``logit(t)`` for a plain
    model, the calibration's inverse for a :class:`CalibratedModel`; None when no finite logit does."""
    if isinstance(model, CalibratedModel):
        return model.raw_threshold(t)
    z = logit(t)
    return z if math.isfinite(z) else None


CROSS_FIT_FOLDS = 5


def _quality(y: NDArray[Any], proba: Array, classes: NDArray[Any]) -> dict[str, Any]:
    report = evaluation.calibration_report(y, proba, classes)
    report["log_loss"] = evaluation.log_loss(y, proba, labels=classes)
    return report


def calibrate(
    model: LogisticRegression,
    X_val: Array,
    y_val: NDArray[Any],
    method: str,
    seed: int | None = None,
) -> tuple[CalibratedModel, dict[str, Any]]:
    """Fit ``method`` on the held-out rows ``X_val, y_val`` and wrap ``model``; also return the report of its
    effect on those rows: calibration before, after (in-sample: the calibrator saw these rows, so it is
    optimistic) and cross-fitted (each of 5 stratified folds scored by a calibrator fitted on the other 4;
    null with fewer than 2 rows per fold)."""
    classes = model.classes_
    if len(classes) != 2:
        raise ValueError(f"calibration applies to binary models only; this one has {len(classes)} classes")
    if X_val.shape[0] == 0:
        raise ValueError("calibration needs held-out rows to fit on")
    scores = model.decision_function(X_val)
    target = np.asarray(y_val == classes[1])
    wrapped = CalibratedModel(model, make_calibrator(method).fit(scores, target))
    cross = None
    n = scores.size
    if n >= 2 * CROSS_FIT_FOLDS:
        rng = np.random.default_rng(seed)
        fold = np.empty(n, dtype=np.intp)
        for value in (False, True):
            idx = rng.permutation(np.flatnonzero(target == value))
            fold[idx] = np.arange(idx.size) % CROSS_FIT_FOLDS
        oof = np.empty(n)
        for k in range(CROSS_FIT_FOLDS):
            held = fold == k
            oof[held] = make_calibrator(method).fit(scores[~held], target[~held]).predict(scores[held])
        cross = _quality(y_val, np.column_stack([1.0 - oof, oof]), classes)
    warnings = []
    if n < 100:
        warnings.append(
            f"calibration was fitted on {n} validation rows; with so few it is unreliable (send more rows or "
            "raise validation_fraction)"
        )
    report = {
        "method": method,
        "fitted_on": "validation split",
        "n_rows": int(n),
        "parameters": wrapped.calibrator_.describe(),
        "before": _quality(y_val, model.predict_proba(X_val), classes),
        "after": _quality(y_val, wrapped.predict_proba(X_val), classes),
        "after_cross_fitted": cross,
        "note": "`after` is measured on the rows the calibrator was fitted on, so it is optimistic; "
        f"`after_cross_fitted` scores each of {CROSS_FIT_FOLDS} folds with a calibrator fitted on the others.",
        "warnings": warnings,
    }
    return wrapped, report
