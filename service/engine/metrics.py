"""Classification metrics for the engine, in pure numpy.

Each function follows the semantics of its namesake in ``sklearn.metrics`` (scikit-learn 1.9), so the
test-suite can check them against it, with two deliberate differences: a ratio with a zero denominator
(precision with no predicted positives, recall with no true positives, ...) is 0.0 *without* a warning, and
bad input raises ``ValueError`` quoting the offending values.  ``classification_summary`` bundles them into
the JSON-able report that the HTTP API returns and that is stored next to every trained model.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ClassCounts",
    "accuracy_score",
    "best_f1_threshold",
    "brier_score_loss",
    "calibration_report",
    "classification_summary",
    "confusion_matrix",
    "f1_score",
    "log_loss",
    "per_class_counts",
    "precision_recall_curve",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "roc_auc_score",
    "roc_curve",
    "threshold_sweep",
]

Label: TypeAlias = Any
"""A class label: int, float, bool or str (or the numpy scalar of one)."""

Average: TypeAlias = Literal["binary", "macro", "micro", "weighted"] | None

_AVERAGES = ("binary", "macro", "micro", "weighted", None)
_EPS = float(np.finfo(np.float64).eps)
_ROW_SUM_ATOL = 1e-6
_DEFAULT_SWEEP = 101


# ----------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------


def _preview(values: ArrayLike, limit: int = 10) -> str:
    """Render at most ``limit`` values for an error message, so huge inputs do not flood the log."""
    items = np.asarray(values).ravel().tolist()
    if len(items) <= limit:
        return repr(items)
    return repr(items[:limit])[:-1] + f", ... ({len(items)} values)]"


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


def _check_label_list(labels: ArrayLike, name: str = "labels") -> np.ndarray:
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


def _as_scores(scores: ArrayLike, name: str) -> NDArray[np.float64]:
    """Return ``scores`` as a non-empty finite 1-D float array."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {_preview(scores)}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one sample is required")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values: {_preview(arr[~np.isfinite(arr)])}")
    return arr


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
# Label-based metrics
# ----------------------------------------------------------------------------------------------------


def _prepare_pair(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, NDArray[np.float64] | None]:
    """Validate a (y_true, y_pred[, sample_weight]) triple shared by every label-based metric."""
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_lengths(y_true=yt, y_pred=yp)
    _check_same_kind(y_true=yt, y_pred=yp)
    return yt, yp, _check_weights(sample_weight, yt.shape[0])


def accuracy_score(y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
    """Fraction (or weighted fraction) of samples whose predicted label equals the true one."""
    yt, yp, w = _prepare_pair(y_true, y_pred, sample_weight)
    return _weighted_mean((yt == yp).astype(np.float64), w)


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> NDArray[Any]:
    """Confusion matrix C with C[i, j] = (weighted) count of true ``labels[i]`` predicted as ``labels[j]``.

    Label order is ``labels`` as given, else the sorted union of both inputs; samples whose true or predicted
    label is not in ``labels`` are left out, as in sklearn. int64 without weights, float64 with.
    """
    yt, yp, w = _prepare_pair(y_true, y_pred, sample_weight)
    if labels is None:
        lab = _unique(np.concatenate([yt, yp]), "labels")
    else:
        lab = _check_label_list(labels)
        _check_same_kind(y_true=yt, labels=lab)
    k = lab.shape[0]
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]

    def index_of(y: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(sorted_lab, y), 0, k - 1)
        found = sorted_lab[pos] == y
        return np.where(found, order[pos], -1)

    it, ip = index_of(yt), index_of(yp)
    keep = (it >= 0) & (ip >= 0)
    flat = it[keep] * k + ip[keep]
    if w is None:
        counts = np.bincount(flat, minlength=k * k).astype(np.int64)
    else:
        counts = np.bincount(flat, weights=w[keep], minlength=k * k)
    return counts.reshape(k, k)


class ClassCounts(NamedTuple):
    """Per-class (weighted) counts for one-vs-rest scoring of each label in ``labels``."""

    labels: np.ndarray
    tp: NDArray[Any]
    fp: NDArray[Any]
    fn: NDArray[Any]
    support: NDArray[Any]
    """True count of each label: tp + fn."""
    predicted: NDArray[Any]
    """Predicted count of each label: tp + fp."""


def per_class_counts(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> ClassCounts:
    """Per-label true-positive, false-positive and false-negative counts: the one core of every P/R/F metric.

    Labels default to the sorted union of both inputs; a requested label that never occurs gets zeros, and
    samples of unrequested labels still count as false positives/negatives of the requested ones (as sklearn).
    """
    yt, yp, w = _prepare_pair(y_true, y_pred, sample_weight)
    if labels is None:
        lab = _unique(np.concatenate([yt, yp]), "labels")
    else:
        lab = _check_label_list(labels)
        _check_same_kind(y_true=yt, labels=lab)
    universe = _unique(np.concatenate([yt, yp, lab]), "labels")
    k = universe.shape[0]
    it = np.searchsorted(universe, yt)
    ip = np.searchsorted(universe, yp)
    hit = it == ip
    true_sum = np.bincount(it, weights=w, minlength=k)
    pred_sum = np.bincount(ip, weights=w, minlength=k)
    tp_sum = np.bincount(it[hit], weights=None if w is None else w[hit], minlength=k)
    if w is None:
        true_sum, pred_sum, tp_sum = (a.astype(np.int64) for a in (true_sum, pred_sum, tp_sum))
    sel = np.searchsorted(universe, lab)
    tp, pred, true = tp_sum[sel], pred_sum[sel], true_sum[sel]
    return ClassCounts(labels=lab, tp=tp, fp=pred - tp, fn=true - tp, support=true, predicted=pred)


def _average_prf(
    precision: NDArray[np.float64],
    recall: NDArray[np.float64],
    f_score: NDArray[np.float64],
    support: NDArray[Any],
    average: Literal["macro", "weighted"],
) -> tuple[float, float, float]:
    """Macro (plain mean) or support-weighted mean of per-label scores; weights all zero -> plain mean."""
    scores = np.stack([precision, recall, f_score])
    weights = np.asarray(support, dtype=np.float64)
    if average == "macro" or weights.sum() == 0:
        p, r, f = np.mean(scores, axis=1)
    else:
        p, r, f = np.sum(scores * weights, axis=1) / np.sum(weights)
    return float(p), float(r), float(f)


def precision_recall_fscore_support(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    pos_label: Label = 1,
    average: Average = None,
    sample_weight: ArrayLike | None = None,
) -> tuple[Any, Any, Any, Any]:
    """Precision, recall, F1 and support, as sklearn's namesake with ``beta=1`` and ``zero_division=0``.

    ``average=None`` gives per-label arrays (and the support array); otherwise three floats and ``None``.
    ``"binary"`` scores only ``pos_label`` (``labels`` is then ignored) and needs at most two distinct labels.
    """
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {list(_AVERAGES)}, got {average!r}")
    yt, yp, w = _prepare_pair(y_true, y_pred, sample_weight)
    if average == "binary":
        present = _unique(np.concatenate([yt, yp]), "labels")
        if present.shape[0] > 2:
            raise ValueError(
                f"average='binary' needs at most 2 distinct labels, y_true/y_pred hold {present.shape[0]}: "
                f"{_preview(present)}; use average='macro', 'micro', 'weighted' or None"
            )
        if present.shape[0] == 2 and not np.any(present == pos_label):
            raise ValueError(
                f"pos_label={pos_label!r} is not a valid label; it should be one of {present.tolist()}"
            )
        labels = np.asarray([pos_label])
    counts = per_class_counts(yt, yp, labels=labels, sample_weight=w)
    tp, pred, true = counts.tp, counts.predicted, counts.support
    if average == "micro":
        tp, pred, true = np.sum(tp, keepdims=True), np.sum(pred, keepdims=True), np.sum(true, keepdims=True)
    precision = _safe_divide(tp, pred)
    recall = _safe_divide(tp, true)
    f_score = _safe_divide(2.0 * tp, true + pred)
    if average is None:
        return precision, recall, f_score, true
    if average in ("binary", "micro"):
        return float(precision[0]), float(recall[0]), float(f_score[0]), None
    return (*_average_prf(precision, recall, f_score, true, average), None)


def precision_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    pos_label: Label = 1,
    average: Average = "binary",
    sample_weight: ArrayLike | None = None,
) -> Any:
    """Precision tp / (tp + fp): how many predicted positives are right; 0.0 when nothing is predicted."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, sample_weight=sample_weight
    )[0]


def recall_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    pos_label: Label = 1,
    average: Average = "binary",
    sample_weight: ArrayLike | None = None,
) -> Any:
    """Recall tp / (tp + fn): how many true positives are found; 0.0 when the class never occurs."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, sample_weight=sample_weight
    )[1]


def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    pos_label: Label = 1,
    average: Average = "binary",
    sample_weight: ArrayLike | None = None,
) -> Any:
    """F1 = 2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall; 0.0 when undefined."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, sample_weight=sample_weight
    )[2]


# ----------------------------------------------------------------------------------------------------
# Probabilistic losses
# ----------------------------------------------------------------------------------------------------


def _proba_matrix(
    y_true: ArrayLike, proba: ArrayLike, labels: ArrayLike | None
) -> tuple[NDArray[np.intp], NDArray[np.float64], np.ndarray]:
    """Validate (y_true, proba) of a probabilistic loss; return (true column index, (n, k) matrix, classes).

    Columns follow the sorted ``labels`` (default: the sorted labels of ``y_true``); a 1-D ``proba`` is the
    probability of the greater of exactly two classes.
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
        classes = _check_label_list(labels)
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
                f"{_preview(classes)}; "
                "pass labels= with one label per column"
            )
        sums = P.sum(axis=1)
        bad = np.abs(sums - 1.0) > _ROW_SUM_ATOL
        if np.any(bad):
            raise ValueError(f"proba rows must sum to 1, got row sums {_preview(sums[bad])}")
    return np.searchsorted(classes, yt), P, classes


def _log_loss_from_index(
    idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None
) -> float:
    """Mean negative log-probability of the true column, clipped to [eps, 1 - eps] as sklearn does."""
    clipped = np.clip(P, _EPS, 1.0 - _EPS)
    return _weighted_mean(-np.log(clipped[np.arange(idx.shape[0]), idx]), w)


def _brier_from_index(idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None) -> float:
    """Mean over samples of the summed squared error against the one-hot truth, halved for two classes."""
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
    the sorted ``labels``; probabilities are clipped to [eps, 1 - eps] (float64 eps), as in sklearn 1.9.
    """
    idx, P, _ = _proba_matrix(y_true, proba, labels)
    return _log_loss_from_index(idx, P, _check_weights(sample_weight, idx.shape[0]))


def _resolve_pos_label(y: np.ndarray, pos_label: Label | None, *, greatest_fallback: bool) -> Label:
    """Infer the positive label when not given: 1 for labels in {0, 1} or {-1, 1}, else error or greatest."""
    if pos_label is not None:
        return pos_label
    classes = _unique(y, "y_true")
    if _kind(classes) == "num" and (np.all(np.isin(classes, [0, 1])) or np.all(np.isin(classes, [-1, 1]))):
        return 1
    if greatest_fallback and _kind(classes) == "num":
        return classes[-1]
    raise ValueError(
        f"y_true takes values {_preview(classes)}, not {{0, 1}} or {{-1, 1}}; pass pos_label= explicitly"
    )


def brier_score_loss(
    y_true: ArrayLike,
    proba: ArrayLike,
    pos_label: Label | None = None,
    *,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Brier score: mean squared error of predicted probabilities, a proper score that rewards calibration.

    ``proba`` (n,) is the probability of ``pos_label`` (default 1 for {0,1}/{-1,1} labels, else the greatest
    numeric label; required for strings): mean of (1[y == pos] - p)^2, in [0, 1].  An (n, k) matrix (columns =
    sorted ``labels``) gives the mean of the per-sample sum over classes, in [0, 2] for k >= 3 and halved for
    k == 2 (sklearn 1.9's ``scale_by_half="auto"``); ``pos_label`` is then unused.
    """
    P = np.asarray(proba)
    if P.ndim == 2 and P.shape[1] > 1:
        idx, P2, _ = _proba_matrix(y_true, P, labels)
        return _brier_from_index(idx, P2, _check_weights(sample_weight, idx.shape[0]))
    yt = _as_labels(y_true, "y_true")
    p = _as_proba(proba, "proba").reshape(-1)
    _check_lengths(y_true=yt, proba=p)
    w = _check_weights(sample_weight, yt.shape[0])
    classes = _unique(yt, "y_true")
    if classes.shape[0] > 2:
        raise ValueError(
            f"a 1-D proba needs binary y_true but it holds {classes.shape[0]} labels: {_preview(classes)}; "
            "pass an (n_samples, n_classes) matrix instead"
        )
    pos = _resolve_pos_label(yt, pos_label, greatest_fallback=True)
    target = (yt == pos).astype(np.float64)
    return _weighted_mean((target - p) ** 2, w)


# ----------------------------------------------------------------------------------------------------
# Score-based curves
# ----------------------------------------------------------------------------------------------------


def _curve_counts(
    y_pos: NDArray[np.bool_], scores: NDArray[np.float64], w: NDArray[np.float64] | None
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.float64]]:
    """(fps, tps, thresholds) at each distinct score, thresholds decreasing: the core of every curve.

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


def _binary_inputs(
    y_true: ArrayLike,
    scores: ArrayLike,
    pos_label: Label | None,
    sample_weight: ArrayLike | None,
    *,
    proba: bool,
    strict_pos_label: bool,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64] | None, Label]:
    """Validate inputs of a binary score-based metric; return (is-positive mask, scores, weights, pos_label).

    With ``strict_pos_label`` y_true may hold at most two labels and, if it holds two, ``pos_label`` must be
    one of them (the rule of ``average="binary"``).
    """
    yt = _as_labels(y_true, "y_true")
    name = "proba_pos" if proba else "scores"
    s = _as_scores(scores, name)
    if proba:
        s = _as_proba(s, name)
    _check_lengths(y_true=yt, **{name: s})
    w = _check_weights(sample_weight, yt.shape[0])
    pos = _resolve_pos_label(yt, pos_label, greatest_fallback=False)
    _check_same_kind(y_true=yt, pos_label=np.asarray([pos]))
    if strict_pos_label:
        classes = _unique(yt, "y_true")
        if classes.shape[0] > 2:
            raise ValueError(
                f"y_true must be binary but holds {classes.shape[0]} labels: {_preview(classes)}"
            )
        if classes.shape[0] == 2 and not np.any(classes == pos):
            raise ValueError(
                f"pos_label={pos!r} is not a valid label; it should be one of {classes.tolist()}"
            )
    return yt == pos, s, w, pos


def roc_curve(
    y_true: ArrayLike,
    scores: ArrayLike,
    pos_label: Label | None = None,
    *,
    sample_weight: ArrayLike | None = None,
    drop_intermediate: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC curve (fpr, tpr, thresholds), one point per distinct score plus a leading (0, 0) at threshold inf.

    Equals sklearn's ``roc_curve(..., drop_intermediate=False)`` by default (sklearn defaults to True, which
    drops collinear points; pass ``drop_intermediate=True`` for that). A rate whose class is absent from
    ``y_true`` is NaN (sklearn also warns; this does not).
    """
    y_pos, s, w, _ = _binary_inputs(
        y_true, scores, pos_label, sample_weight, proba=False, strict_pos_label=False
    )
    fps, tps, thresholds = _curve_counts(y_pos, s, w)
    if drop_intermediate and fps.shape[0] > 2:
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.nonzero(np.r_[True, corner, True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.r_[0, fps]
    tps = np.r_[0, tps]
    thresholds = np.r_[np.inf, thresholds]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def precision_recall_curve(
    y_true: ArrayLike,
    scores: ArrayLike,
    pos_label: Label | None = None,
    *,
    sample_weight: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Precision-recall pairs at each distinct score, as sklearn (``drop_intermediate=False``).

    Thresholds increase; precision/recall have one more element, the final (1.0, 0.0) point.  Precision with
    no predicted positive is 0.0; with no positive in ``y_true`` recall is 1.0 everywhere (sklearn's values,
    without its warning).
    """
    y_pos, s, w, _ = _binary_inputs(
        y_true, scores, pos_label, sample_weight, proba=False, strict_pos_label=False
    )
    fps, tps, thresholds = _curve_counts(y_pos, s, w)
    precision = _safe_divide(tps, tps + fps)
    recall = tps / tps[-1] if tps[-1] != 0 else np.ones(tps.shape)
    return (
        np.r_[precision[::-1], 1.0],
        np.r_[recall[::-1].astype(np.float64), 0.0],
        thresholds[::-1].copy(),
    )


def _trapezoid(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Trapezoidal area under y(x), same arithmetic as ``np.trapezoid`` (absent from numpy < 2)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _binary_auc(
    y_pos: NDArray[np.bool_], scores: NDArray[np.float64], w: NDArray[np.float64] | None
) -> float:
    """ROC AUC by the trapezoid over distinct thresholds (ties count 1/2); NaN when a class is absent."""
    fps, tps, _ = _curve_counts(y_pos, scores, w)
    if fps[-1] <= 0 or tps[-1] <= 0:
        return math.nan
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return _trapezoid(fpr, tpr)


def _ovr_auc(idx: NDArray[np.intp], P: NDArray[np.float64], w: NDArray[np.float64] | None) -> float:
    """One-vs-rest macro ROC AUC of an (n, k) matrix; binary AUC of column 1 when k == 2; NaN if undefined."""
    if P.shape[1] == 2:
        return _binary_auc(idx == 1, P[:, 1], w)
    return float(np.mean([_binary_auc(idx == c, P[:, c], w) for c in range(P.shape[1])]))


def roc_auc_score(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random negative.

    Binary: ``scores`` (n,) rank the greater label of y_true (an (n, 2) matrix uses column 1).  Multiclass:
    an (n, k) probability matrix, columns = sorted ``labels`` (default: labels of y_true), scored one-vs-rest
    and macro-averaged like sklearn's ``multi_class="ovr", average="macro"``.  NaN, without a warning, when
    y_true holds a single class (or, multiclass, when a listed class never occurs), as sklearn's value.
    """
    S = np.asarray(scores)
    if S.ndim == 2 and S.shape[1] > 2:
        idx, P, _ = _proba_matrix(y_true, S, labels)
        return _ovr_auc(idx, P, _check_weights(sample_weight, idx.shape[0]))
    yt = _as_labels(y_true, "y_true")
    if S.ndim == 2:
        S = S[:, -1]
    s = _as_scores(S, "scores")
    _check_lengths(y_true=yt, scores=s)
    w = _check_weights(sample_weight, yt.shape[0])
    if labels is None:
        classes = _unique(yt, "y_true")
    else:
        classes = _check_label_list(labels)
        _check_same_kind(y_true=yt, labels=classes)
        missing = _missing(yt, classes)
        if missing:
            raise ValueError(f"y_true contains labels {missing} that are not in labels {classes.tolist()}")
        classes = _unique(classes, "labels")
    if classes.shape[0] > 2:
        raise ValueError(
            f"1-D scores need binary y_true but there are {classes.shape[0]} classes {_preview(classes)}; "
            "pass an (n_samples, n_classes) probability matrix for multiclass ROC AUC"
        )
    return _binary_auc(yt == classes[-1], s, w)


# ----------------------------------------------------------------------------------------------------
# Threshold selection
# ----------------------------------------------------------------------------------------------------


def threshold_sweep(
    y_true: ArrayLike,
    proba_pos: ArrayLike,
    thresholds: ArrayLike | None = None,
    pos_label: Label = 1,
    *,
    sample_weight: ArrayLike | None = None,
) -> dict[str, list[Any]]:
    """Confusion counts and scores at each threshold (positive when ``proba_pos >= t``), to pick a cut-off.

    Returns lists keyed "thresholds", "precision", "recall", "f1", "accuracy", "tp", "fp", "fn", "tn";
    thresholds default to ``linspace(0, 1, 101)``; counts are ints without weights; undefined ratios are 0.0.
    """
    y_pos, s, w, _ = _binary_inputs(
        y_true, proba_pos, pos_label, sample_weight, proba=True, strict_pos_label=True
    )
    thr = np.linspace(0.0, 1.0, _DEFAULT_SWEEP) if thresholds is None else _as_scores(thresholds, "thresholds")
    fps, tps, distinct = _curve_counts(y_pos, s, w)
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


def best_f1_threshold(
    y_true: ArrayLike,
    proba_pos: ArrayLike,
    pos_label: Label = 1,
    *,
    sample_weight: ArrayLike | None = None,
) -> dict[str, float]:
    """The F1-maximising threshold (positive when ``proba_pos >= threshold``), exact over the distinct scores.

    Every distinct score is a candidate (no other cut-off gives a different prediction); among equal F1 the
    largest threshold wins.  Returns {"threshold", "f1", "precision", "recall"}; F1 is 0.0 everywhere, and the
    threshold the highest score, when y_true has no positive.
    """
    y_pos, s, w, _ = _binary_inputs(
        y_true, proba_pos, pos_label, sample_weight, proba=True, strict_pos_label=True
    )
    fps, tps, distinct = _curve_counts(y_pos, s, w)
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
    yt = _as_labels(y_true, "y_true")
    cls = _check_label_list(classes, "classes")
    _check_same_kind(y_true=yt, classes=cls)
    P = _as_proba(proba, "proba")
    if P.ndim != 2 or P.shape[1] != cls.shape[0] or cls.shape[0] < 2:
        raise ValueError(f"proba must have shape (n_samples, {cls.shape[0]}) to match classes, got {P.shape}")
    _check_lengths(y_true=yt, proba=P)
    missing = _missing(yt, cls)
    if missing:
        raise ValueError(f"y_true contains labels {missing} that are not in the model's classes {cls.tolist()}")
    if not isinstance(n_bins, int | np.integer) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    order = np.argsort(cls, kind="stable")
    idx = order[np.searchsorted(cls[order], yt)]
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
    n = yt.shape[0]
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
    sums = P.sum(axis=1)
    bad_rows = np.abs(sums - 1.0) > _ROW_SUM_ATOL
    if np.any(bad_rows):
        raise ValueError(f"proba rows must sum to 1, got row sums {_preview(sums[bad_rows])}")
    missing = _missing(yt, cls)
    if missing:
        raise ValueError(
            f"y_true contains labels {missing} that are not in the model's classes {cls.tolist()}"
        )
    w = _check_weights(sample_weight, yt.shape[0])
    binary = cls.shape[0] == 2
    if binary:
        if not (isinstance(threshold, int | float | np.number) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        y_pred = cls[(P[:, 1] >= threshold).astype(np.intp)]
    else:
        y_pred = cls[np.argmax(P, axis=1)]

    # column index of each true label in `classes` (which need not be sorted)
    order = np.argsort(cls, kind="stable")
    idx = order[np.searchsorted(cls[order], yt)]

    precision, recall, f_score, support = precision_recall_fscore_support(
        yt, y_pred, labels=cls, average=None, sample_weight=w
    )
    macro = _average_prf(precision, recall, f_score, support, "macro")
    weighted = _average_prf(precision, recall, f_score, support, "weighted")
    headline = (precision[1], recall[1], f_score[1]) if binary else macro
    auc = _ovr_auc(idx, P, w)
    keys = [str(_to_python(c)) for c in cls]

    report: dict[str, Any] = {
        "n_samples": int(yt.shape[0]),
        "accuracy": accuracy_score(yt, y_pred, sample_weight=w),
        "precision": float(headline[0]),
        "recall": float(headline[1]),
        "f1": float(headline[2]),
        "log_loss": _log_loss_from_index(idx, P, w),
        "brier": _brier_from_index(idx, P, w),
        "roc_auc": None if math.isnan(auc) else auc,
        "confusion_matrix": {
            "labels": _to_python(cls),
            "matrix": _to_python(confusion_matrix(yt, y_pred, labels=cls, sample_weight=w)),
        },
        "support": {k: _to_python(s) for k, s in zip(keys, support, strict=True)},
        "per_class": {
            k: {"precision": float(p), "recall": float(r), "f1": float(f), "support": _to_python(s)}
            for k, p, r, f, s in zip(keys, precision, recall, f_score, support, strict=True)
        },
        "macro": dict(zip(("precision", "recall", "f1"), macro, strict=True)),
        "weighted": dict(zip(("precision", "recall", "f1"), weighted, strict=True)),
        "threshold": float(threshold) if binary else None,
    }
    if binary:
        pos = cls[1]
        report["positive_class"] = _to_python(pos)
        report["threshold_sweep"] = threshold_sweep(yt, P[:, 1], pos_label=pos, sample_weight=w)
        report["best_threshold"] = best_f1_threshold(yt, P[:, 1], pos_label=pos, sample_weight=w)
    return report
