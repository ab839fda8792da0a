"""Evaluation of a fitted classifier's probabilities: the reports the service returns and stores.

Four entry points, each used by the service: :func:`classification_summary` (the report of ``POST /metrics``
and of every training run: accuracy, precision/recall/F1, log-loss, Brier, ROC AUC, confusion matrix and,
for a binary model, the threshold sweep), :func:`calibration_report` (Brier, ECE/MCE and reliability bins),
:func:`log_loss` (the calibration step's report) and :func:`curve_counts` (the confusion counts at every
distinct score, from which the threshold tuner works). Pure numpy. The numbers follow ``sklearn.metrics``
(scikit-learn 1.9), which the test-suite checks them against, except that a ratio with a zero denominator
(precision with no predicted positive, ...) is 0.0 without a warning; bad input raises ``ValueError``
quoting the offending values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import preview as _preview

__all__ = ["calibration_report", "classification_summary", "curve_counts", "log_loss"]

_EPS = float(np.finfo(np.float64).eps)
_ROW_SUM_ATOL = 1e-6
_SWEEP_POINTS = 101


# ----------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------


def _kind(arr: np.ndarray) -> str:
    """Classify labels as 'str', 'num' or 'obj', so string and numeric labels are never silently mixed."""
    if arr.dtype.kind in "US":
        return "str"
    if arr.dtype.kind in "biuf":
        return "num"
    if arr.dtype.kind == "O" and arr.size and all(isinstance(v, str) for v in arr.tolist()):
        return "str"
    return "obj"


def _as_labels(y: ArrayLike, name: str) -> np.ndarray:
    """Return ``y`` as a non-empty 1-D label array; reject other shapes, NaN and complex values."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one sample is required")
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} must not contain complex values, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)]
        raise ValueError(f"{name} contains non-finite labels: {_preview(bad)}")
    if arr.dtype.kind == "O" and any(v is None for v in arr.tolist()):
        raise ValueError(f"{name} contains None labels: {_preview(arr)}")
    return arr


def _check_same_kind(**arrays: np.ndarray) -> None:
    """Reject a mix of string and numeric labels, which numpy would otherwise coerce to strings."""
    kinds = {name: _kind(arr) for name, arr in arrays.items() if arr.size}
    if "str" in kinds.values() and "num" in kinds.values():
        desc = ", ".join(
            f"{name} has {kind} labels ({_preview(arrays[name], 3)})" for name, kind in kinds.items()
        )
        raise ValueError(f"cannot mix string and numeric labels: {desc}")


def _unique(arr: np.ndarray, name: str) -> np.ndarray:
    """Sorted unique values, turning numpy's TypeError on incomparable objects into a ValueError."""
    try:
        return np.unique(arr)
    except TypeError as exc:
        raise ValueError(f"{name} mixes label types that cannot be ordered: {_preview(arr)}") from exc


def _check_lengths(**arrays: np.ndarray) -> None:
    """Raise when the given arrays do not all have the same number of samples."""
    lengths = {name: int(arr.shape[0]) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"inconsistent numbers of samples: {desc}")


def _check_weights(sample_weight: ArrayLike | None, n: int) -> NDArray[np.float64] | None:
    """Validate ``sample_weight``: 1-D, one finite non-negative value per sample, positive total."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numeric, got {_preview(sample_weight)}") from exc
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D, got shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} values but there are {n} samples")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"sample_weight contains non-finite values: {_preview(w[~np.isfinite(w)])}")
    if np.any(w < 0):
        raise ValueError(f"sample_weight must be non-negative, got {_preview(w[w < 0])}")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight")
    return w


def _check_label_list(labels: ArrayLike, name: str) -> np.ndarray:
    """Validate an explicit label list: 1-D, non-empty, no duplicates."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of labels, got {_preview(arr)}")
    try:
        uniq, counts = np.unique(arr, return_counts=True)
    except TypeError as exc:
        raise ValueError(f"{name} mixes label types that cannot be ordered: {_preview(arr)}") from exc
    if np.any(counts > 1):
        raise ValueError(f"{name} contains duplicates: {_preview(uniq[counts > 1])}")
    return arr


def _missing(values: np.ndarray, allowed: np.ndarray) -> list[Any]:
    """The distinct entries of ``values`` that are not in ``allowed``, as plain Python values."""
    uniq = _unique(values, "y_true")
    return uniq[~np.isin(uniq, allowed)].tolist()


def _as_proba(proba: ArrayLike, name: str) -> NDArray[np.float64]:
    """Return ``proba`` as a float array with every entry finite and inside [0, 1]."""
    try:
        arr = np.asarray(proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric probabilities, got {_preview(proba)}") from exc
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one sample is required")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: {_preview(arr[~np.isfinite(arr)])}")
    if arr.min() < 0 or arr.max() > 1:
        bad = arr[(arr < 0) | (arr > 1)]
        raise ValueError(f"{name} must lie in [0, 1], got {_preview(bad)}")
    return arr


def _check_row_sums(P: NDArray[np.float64]) -> None:
    """Raise unless every row of the probability matrix ``P`` sums to 1 (within a small tolerance)."""
    sums = P.sum(axis=1)
    bad = np.abs(sums - 1.0) > _ROW_SUM_ATOL
    if np.any(bad):
        raise ValueError(f"proba rows must sum to 1, got row sums {_preview(sums[bad])}")


def _class_index(y: np.ndarray, classes: np.ndarray) -> NDArray[np.intp]:
    """Position in ``classes`` (which need not be sorted) of each label of ``y``; all must occur there."""
    order = np.argsort(classes, kind="stable")
    return order[np.searchsorted(classes[order], y)]


def _model_inputs(
    y_true: ArrayLike, proba: ArrayLike, classes: ArrayLike
) -> tuple[NDArray[np.intp], NDArray[np.float64], np.ndarray]:
    """Validate labels, an (n, k) probability matrix and the model's k classes (its column order).

    Returns (column index of each true label, the matrix, the classes). Every label must be a class.
    """
    yt = _as_labels(y_true, "y_true")
    cls = _check_label_list(classes, "classes")
    _check_same_kind(y_true=yt, classes=cls)
    if cls.shape[0] < 2:
        raise ValueError(f"classes must hold at least 2 labels, got {cls.tolist()}")
    P = _as_proba(proba, "proba")
    if P.ndim != 2 or P.shape[1] != cls.shape[0]:
        raise ValueError(
            f"proba must have shape (n_samples, {cls.shape[0]}) to match classes {_preview(cls)}, "
            f"got {P.shape}"
        )
    _check_lengths(y_true=yt, proba=P)
    missing = _missing(yt, cls)
    if missing:
        raise ValueError(f"y_true contains labels {missing} that are not in the model's classes {cls.tolist()}")
    return _class_index(yt, cls), P, cls


def _safe_divide(num: ArrayLike, den: ArrayLike) -> NDArray[np.float64]:
    """Element-wise ``num / den`` with 0.0 where ``den == 0``, silently (the zero-division convention)."""
    num_arr = np.asarray(num, dtype=np.float64)
    den_arr = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num_arr, den_arr).shape, dtype=np.float64)
    np.divide(num_arr, den_arr, out=out, where=den_arr != 0)
    return out


def _weighted_mean(values: NDArray[np.float64], w: NDArray[np.float64] | None) -> float:
    """Mean of ``values``, weighted by ``w`` when given (same reduction order as sklearn's ``_average``)."""
    if w is None:
        return float(np.mean(values))
    return float(np.sum(values * w) / np.sum(w))


def _to_python(value: Any) -> Any:
    """Convert numpy scalars/arrays to plain Python values and NaN/inf to None, for JSON."""
    if isinstance(value, np.ndarray):
        return [_to_python(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_to_python(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------------------------------
# Probabilistic losses
# ----------------------------------------------------------------------------------------------------


def _log_loss_from_index(
    idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None
) -> float:
    """Mean negative log-probability of the true column, clipped to [eps, 1 - eps] as sklearn does."""
    clipped = np.clip(P, _EPS, 1.0 - _EPS)
    return _weighted_mean(-np.log(clipped[np.arange(idx.shape[0]), idx]), w)


def _brier_from_index(idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None) -> float:
    """Mean over samples of the summed squared error against the one-hot truth, halved for two classes
    (sklearn 1.9's ``brier_score_loss`` with ``scale_by_half="auto"``)."""
    onehot = np.zeros_like(P)
    onehot[np.arange(idx.shape[0]), idx] = 1.0
    score = _weighted_mean(np.sum((onehot - P) ** 2, axis=1), w)
    return score * 0.5 if P.shape[1] == 2 else score


def log_loss(
    y_true: ArrayLike,
    proba: ArrayLike,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Cross-entropy (natural log) of the predicted probabilities, the loss logistic regression minimises.

    ``proba`` is (n,) positive-class probabilities for two classes or an (n, k) matrix whose columns follow
    the sorted ``labels`` (default: the sorted labels of ``y_true``, which must then hold at least two);
    probabilities are clipped to [eps, 1 - eps] (float64 eps), as in sklearn 1.9.
    """
    yt = _as_labels(y_true, "y_true")
    P = _as_proba(proba, "proba")
    if P.ndim == 2 and P.shape[1] == 1:
        P = P[:, 0]
    if P.ndim not in (1, 2):
        raise ValueError(f"proba must have shape (n_samples,) or (n_samples, n_classes), got {P.shape}")
    _check_lengths(y_true=yt, proba=P)
    if labels is None:
        classes = _unique(yt, "y_true")
    else:
        classes = _check_label_list(labels, "labels")
        _check_same_kind(y_true=yt, labels=classes)
        if np.any(classes[1:] < classes[:-1]):
            raise ValueError(
                f"labels must be sorted (proba columns follow sorted labels), got {classes.tolist()}"
            )
        missing = _missing(yt, classes)
        if missing:
            raise ValueError(f"y_true contains labels {missing} that are not in labels {classes.tolist()}")
    if classes.shape[0] < 2:
        raise ValueError(
            f"y_true contains only one label ({classes.tolist()[0]!r}); pass labels= with all the classes"
        )
    if P.ndim == 1:
        if classes.shape[0] != 2:
            raise ValueError(
                f"a 1-D proba (positive-class probabilities) needs 2 classes, got {classes.shape[0]}: "
                f"{_preview(classes)}; pass an (n_samples, n_classes) matrix instead"
            )
        P = np.stack([1.0 - P, P], axis=1)
    else:
        if P.shape[1] != classes.shape[0]:
            raise ValueError(
                f"proba has {P.shape[1]} columns but there are {classes.shape[0]} classes "
                f"{_preview(classes)}; pass labels= with one label per column"
            )
        _check_row_sums(P)
    w = _check_weights(sample_weight, yt.shape[0])
    return _log_loss_from_index(np.searchsorted(classes, yt), P, w)


# ----------------------------------------------------------------------------------------------------
# Score-based counts: ROC AUC, the threshold sweep and the best F1 threshold
# ----------------------------------------------------------------------------------------------------


def curve_counts(
    y_pos: NDArray[np.bool_], scores: NDArray[np.float64], w: NDArray[np.float64] | None
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.float64]]:
    """(fps, tps, thresholds) at each distinct score, thresholds decreasing: the core of every curve.

    ``y_pos`` marks the positive samples and ``scores`` are finite; neither is validated here.
    ``tps[i]``/``fps[i]`` are the (weighted) positives/negatives with ``score >= thresholds[i]``; ties are
    grouped, exactly as sklearn's ``confusion_matrix_at_thresholds``. int64 counts without weights.
    """
    if w is not None:
        keep = w != 0
        y_pos, scores, w = y_pos[keep], scores[keep], w[keep]
    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    y_sorted = y_pos[order]
    idx = np.r_[np.nonzero(np.diff(s_sorted))[0], y_sorted.shape[0] - 1]
    if w is None:
        tps = np.cumsum(y_sorted, dtype=np.int64)[idx]
        fps = 1 + idx.astype(np.int64) - tps
    else:
        w_sorted = w[order]
        y_float = y_sorted.astype(np.float64)
        tps = np.cumsum(y_float * w_sorted)[idx]
        fps = np.cumsum((1.0 - y_float) * w_sorted)[idx]
    return fps, tps, s_sorted[idx]


def _binary_auc(
    y_pos: NDArray[np.bool_], scores: NDArray[np.float64], w: NDArray[np.float64] | None
) -> float:
    """ROC AUC by the trapezoid over distinct thresholds (ties count 1/2); NaN when a class is absent."""
    fps, tps, _ = curve_counts(y_pos, scores, w)
    if fps[-1] <= 0 or tps[-1] <= 0:
        return math.nan
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _ovr_auc(idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None) -> float:
    """One-vs-rest macro ROC AUC of an (n, k) matrix; binary AUC of column 1 when k == 2; NaN if undefined."""
    if P.shape[1] == 2:
        return _binary_auc(idx == 1, P[:, 1], w)
    return float(np.mean([_binary_auc(idx == c, P[:, c], w) for c in range(P.shape[1])]))


def _threshold_sweep(
    y_pos: NDArray[np.bool_], proba_pos: NDArray[np.float64], w: NDArray[np.float64] | None
) -> dict[str, list[Any]]:
    """Confusion counts and scores at 101 thresholds 0, 0.01, ..., 1 (positive when ``proba_pos >= t``).

    Lists keyed "thresholds", "precision", "recall", "f1", "accuracy", "tp", "fp", "fn", "tn"; counts are
    ints without weights; undefined ratios are 0.0.
    """
    thr = np.linspace(0.0, 1.0, _SWEEP_POINTS)
    fps, tps, distinct = curve_counts(y_pos, proba_pos, w)
    n_pos, n_neg = tps[-1], fps[-1]
    # number of distinct scores >= t; the counts at t are those of the smallest such score
    above = distinct.shape[0] - np.searchsorted(distinct[::-1], thr, side="left")
    zero = np.zeros(1, dtype=tps.dtype)
    tp = np.r_[zero, tps][above]
    fp = np.r_[zero, fps][above]
    fn = n_pos - tp
    tn = n_neg - fp
    return {
        "thresholds": thr.tolist(),
        "precision": _safe_divide(tp, tp + fp).tolist(),
        "recall": _safe_divide(tp, n_pos).tolist(),
        "f1": _safe_divide(2 * tp, n_pos + tp + fp).tolist(),
        "accuracy": _safe_divide(tp + tn, n_pos + n_neg).tolist(),
        "tp": tp.tolist(),
        "fp": fp.tolist(),
        "fn": fn.tolist(),
        "tn": tn.tolist(),
    }


def _best_f1_threshold(
    y_pos: NDArray[np.bool_], proba_pos: NDArray[np.float64], w: NDArray[np.float64] | None
) -> dict[str, float]:
    """The F1-maximising threshold (positive when ``proba_pos >= threshold``), exact over the distinct scores.

    Every distinct score is a candidate (no other cut-off gives a different prediction); among equal F1 the
    largest threshold wins.  Returns {"threshold", "f1", "precision", "recall"}; F1 is 0.0 everywhere, and the
    threshold the highest score, when there is no positive.
    """
    fps, tps, distinct = curve_counts(y_pos, proba_pos, w)
    n_pos = tps[-1]
    f1 = _safe_divide(2 * tps, n_pos + tps + fps)
    best = int(np.argmax(f1))
    return {
        "threshold": float(distinct[best]),
        "f1": float(f1[best]),
        "precision": float(_safe_divide(tps[best], tps[best] + fps[best])),
        "recall": float(_safe_divide(tps[best], n_pos)),
    }


# ----------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------


def calibration_report(
    y_true: ArrayLike,
    proba: ArrayLike,
    classes: ArrayLike,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Brier score, expected and maximum calibration error, and reliability bins of a probabilistic classifier.

    ``proba`` is (n, k) with columns in ``classes`` order. Binary: the bins hold the positive class's
    probability (``classes[1]``) against the share of positives, as sklearn's ``calibration_curve`` with
    ``strategy="uniform"``: ``n_bins`` equal-width bins of [0, 1], right-closed (the first also holds 0).
    Multiclass: *top-label* calibration, the highest probability of each row against whether that class is
    the true one. ``ece`` = sum over bins of count / n * |mean_predicted - fraction_positive|; ``mce`` is the
    largest such gap over non-empty bins. ``brier`` is the one of :func:`classification_summary`. Empty bins
    have ``count`` 0 and null means.
    """
    idx, P, cls = _model_inputs(y_true, proba, classes)
    if not isinstance(n_bins, int | np.integer) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    binary = cls.shape[0] == 2
    if binary:
        score, hit = P[:, 1], (idx == 1).astype(np.float64)
    else:
        top = np.argmax(P, axis=1)
        score, hit = P[np.arange(P.shape[0]), top], (top == idx).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_ids = np.searchsorted(edges[1:-1], score)  # sklearn's binning: value == edge goes to the lower bin
    count = np.bincount(bin_ids, minlength=n_bins)
    sum_score = np.bincount(bin_ids, weights=score, minlength=n_bins)
    sum_hit = np.bincount(bin_ids, weights=hit, minlength=n_bins)
    full = count > 0
    mean_pred = np.divide(sum_score, count, out=np.zeros(n_bins), where=full)
    frac = np.divide(sum_hit, count, out=np.zeros(n_bins), where=full)
    gap = np.abs(mean_pred - frac)
    n = idx.shape[0]
    bins = [
        {
            "lower": round(float(edges[b]), 12),  # 0.3, not linspace's 0.30000000000000004
            "upper": round(float(edges[b + 1]), 12),
            "count": int(count[b]),
            "mean_predicted": float(mean_pred[b]) if full[b] else None,
            "fraction_positive": float(frac[b]) if full[b] else None,
        }
        for b in range(n_bins)
    ]
    return {
        "kind": "positive_class" if binary else "top_label",
        "n_samples": int(n),
        "brier": _brier_from_index(idx, P, None),
        "ece": float(np.sum(count * gap) / n),
        "mce": float(gap[full].max()),
        "n_bins": int(n_bins),
        "bins": bins,
    }


# ----------------------------------------------------------------------------------------------------
# Summary report
# ----------------------------------------------------------------------------------------------------


def classification_summary(
    y_true: ArrayLike,
    proba: ArrayLike,
    classes: ArrayLike,
    threshold: float = 0.5,
    sample_weight: ArrayLike | None = None,
) -> dict[str, Any]:
    """JSON-able evaluation report of a probabilistic classifier, served by the API and stored at training.

    ``proba`` is (n, k) with columns in ``classes`` order (the model's class array).  Binary: the positive
    class is ``classes[1]``, predicted when ``proba[:, 1] >= threshold``, and precision/recall/f1 are its own;
    the report adds "positive_class", "threshold_sweep" and "best_threshold".  Multiclass: argmax prediction,
    macro precision/recall/f1 over all ``classes``, "threshold" null.  Per-class "support" is weighted when
    ``sample_weight`` is given (as sklearn); "roc_auc" is null when undefined (a class absent from y_true).
    Each number equals its ``sklearn.metrics`` namesake (``zero_division=0``) on the predicted labels.
    """
    idx, P, cls = _model_inputs(y_true, proba, classes)
    _check_row_sums(P)
    w = _check_weights(sample_weight, idx.shape[0])
    k = cls.shape[0]
    binary = k == 2
    if binary:
        if not (isinstance(threshold, int | float | np.number) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        pred = (P[:, 1] >= threshold).astype(np.intp)
    else:
        pred = np.argmax(P, axis=1)

    # (weighted) counts per class, in `classes` order: confusion[i, j] = true classes[i] predicted classes[j]
    hit = idx == pred
    confusion = np.bincount(idx * k + pred, weights=w, minlength=k * k).reshape(k, k)
    support = np.bincount(idx, weights=w, minlength=k)
    predicted = np.bincount(pred, weights=w, minlength=k)
    tp = np.bincount(idx[hit], weights=None if w is None else w[hit], minlength=k)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f_score = _safe_divide(2.0 * tp, support + predicted)
    scores = np.stack([precision, recall, f_score])
    macro = np.mean(scores, axis=1)
    weighted = np.sum(scores * support, axis=1) / np.sum(support)  # support sums to n (or to sum(w)) > 0
    headline = scores[:, 1] if binary else macro
    auc = _ovr_auc(idx, P, w)
    keys = [str(_to_python(c)) for c in cls]

    report: dict[str, Any] = {
        "n_samples": int(idx.shape[0]),
        "accuracy": _weighted_mean(hit.astype(np.float64), w),
        "precision": float(headline[0]),
        "recall": float(headline[1]),
        "f1": float(headline[2]),
        "log_loss": _log_loss_from_index(idx, P, w),
        "brier": _brier_from_index(idx, P, w),
        "roc_auc": None if math.isnan(auc) else auc,
        "confusion_matrix": {"labels": _to_python(cls), "matrix": _to_python(confusion)},
        "support": {key: _to_python(s) for key, s in zip(keys, support, strict=True)},
        "per_class": {
            key: {"precision": float(p), "recall": float(r), "f1": float(f), "support": _to_python(s)}
            for key, p, r, f, s in zip(keys, precision, recall, f_score, support, strict=True)
        },
        "macro": dict(zip(("precision", "recall", "f1"), map(float, macro), strict=True)),
        "weighted": dict(zip(("precision", "recall", "f1"), map(float, weighted), strict=True)),
        "threshold": float(threshold) if binary else None,
    }
    if binary:
        y_pos = idx == 1
        report["positive_class"] = _to_python(cls[1])
        report["threshold_sweep"] = _threshold_sweep(y_pos, P[:, 1], w)
        report["best_threshold"] = _best_f1_threshold(y_pos, P[:, 1], w)
    return report
