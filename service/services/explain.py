"""Exact explanations of logistic-regression predictions, from the coefficients (pure numpy, no HTTP).

For each row and each logit the model computes (the positive class's for a binary model, every class's for
a multinomial one):

* ``contributions[j] = coef_j * (x_j - mean_j)``: the standardized coefficient times the standardized value,
  where ``mean_`` is the model's standardization mean (the training mean; 0 when ``standardize=False``);
* ``baseline = intercept + sum_j coef_j * mean_j``: the logit of a row at the mean;

so that ``baseline + sum(contributions) == logit`` exactly (up to float rounding). For a linear model these
are also its exact SHAP values under feature independence, with the training mean as the background.

``top_reasons`` are the (at most ``top_k``) features that push hardest toward the predicted class, largest
first: for a binary model the positive contributions when the prediction is the positive class and the
negative ones otherwise; for a multinomial model the positive contributions to the predicted class's logit.

``flips`` (binary models) give, per feature, the change ``delta`` of that feature alone that moves the
positive-class probability exactly onto the decision threshold, and the resulting ``value``: a row predicted
negative becomes positive there; a row predicted positive becomes negative just beyond it. With a
calibrated model the threshold applies to calibrated probabilities, so it is first mapped back to the raw
logit where the calibrated probability crosses it (exact inverse for Platt scaling; the smallest raw logit
whose isotonic value reaches the threshold); the flip is then ``(logit_threshold - logit) / coef_j``. A
flip is null when the feature's coefficient is 0, or when no finite logit crosses the threshold (a
threshold of 0 or 1, or an isotonic map that never reaches it, or always does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..domain import MAX_EXPLAIN_ROWS, label_key
from ..engine.calibration import raw_threshold
from ..errors import LimitExceededError
from ..store.cache import LoadedModel

#: Reasons listed per row.
TOP_K = 3


def _rows(values: NDArray[np.float64]) -> list[Any]:
    """``values.tolist()`` with non-finite numbers (overflowing contributions) as None; fast when all are finite."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def explain_rows(
    model: Any,
    X: NDArray[np.float64],
    feature_names: Sequence[str],
    predicted: NDArray[np.intp],
    threshold: float | None,
    top_k: int = TOP_K,
) -> list[dict[str, Any]]:
    """One explanation object per row of ``X`` (see the module docstring); ``predicted`` holds the class
    index each row was predicted as, ``threshold`` the binary decision threshold in use (None: multiclass)."""
    if X.shape[0] > MAX_EXPLAIN_ROWS:
        raise LimitExceededError(
            f"explanations are limited to {MAX_EXPLAIN_ROWS} rows per request, got {X.shape[0]}; split the batch "
            "or ask without explain=true",
            {"rows": int(X.shape[0]), "limit": MAX_EXPLAIN_ROWS},
        )
    names = list(feature_names)
    classes = model.classes_
    coef = np.asarray(model.coef_, dtype=np.float64)
    mean = np.asarray(model.mean_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    centred = X - mean
    baseline = intercept + coef @ mean  # (k,)
    with np.errstate(over="ignore", invalid="ignore"):
        if coef.shape[0] == 1:
            return _binary(model, X, names, classes, coef[0], centred, float(baseline[0]), predicted, threshold,
                           top_k)
        return _multinomial(model, X, names, classes, coef, centred, baseline, predicted, top_k)


def _top(signed: NDArray[np.float64], contrib: NDArray[np.float64], X: NDArray[np.float64],
         names: list[str], top_k: int) -> list[list[dict[str, Any]]]:
    """Per row, the features with the largest positive ``signed`` contribution (at most ``top_k``)."""
    k = min(top_k, signed.shape[1])
    if k <= 0:
        return [[] for _ in range(signed.shape[0])]
    order = np.argsort(-signed, axis=1, kind="stable")[:, :k]
    rows = np.arange(signed.shape[0])[:, None]
    keep = (signed[rows, order] > 0).tolist()
    values = X[rows, order].tolist()
    contributions = contrib[rows, order].tolist()
    return [
        [{"feature": names[j], "value": v, "contribution": c}
         for j, v, c, ok in zip(idx, vals, cons, oks, strict=True) if ok]
        for idx, vals, cons, oks in zip(order.tolist(), values, contributions, keep, strict=True)
    ]


def _binary(model: Any, X: NDArray[np.float64], names: list[str], classes: NDArray[Any], coef: NDArray[np.float64],
            centred: NDArray[np.float64], baseline: float, predicted: NDArray[np.intp], threshold: float | None,
            top_k: int) -> list[dict[str, Any]]:
    contrib = centred * coef  # (n, d)
    logit = model.decision_function(X)  # the logit the model computes: baseline + contributions, exactly
    direction = np.where(predicted == 1, 1.0, -1.0)
    reasons = _top(contrib * direction[:, None], contrib, X, names, top_k)
    cut = raw_threshold(model, threshold) if threshold is not None else None
    labels = classes[predicted].tolist()
    logits = _rows(logit)
    contribs = _rows(contrib)
    if cut is None:
        flips: list[dict[str, Any]] = [dict.fromkeys(names) for _ in range(X.shape[0])]
    else:
        nonzero = coef != 0
        delta = np.divide(cut - logit[:, None], coef, out=np.full(contrib.shape, np.nan), where=nonzero)
        value = X + delta
        ok = np.isfinite(delta) & np.isfinite(value)
        # one flat pass builds every {"delta", "value"} object, then each row zips its slice with the names
        cells: list[dict[str, float] | None] = [
            {"delta": dv, "value": vv} for dv, vv in zip(delta.ravel().tolist(), value.ravel().tolist(), strict=True)
        ]
        for k in np.flatnonzero(~ok.ravel()).tolist():
            cells[k] = None
        d = len(names)
        flips = [dict(zip(names, cells[i * d : (i + 1) * d], strict=True)) for i in range(X.shape[0])]
    return [
        {
            "predicted_class": label,
            "logit": lg,
            "baseline": baseline,
            "contributions": dict(zip(names, crow, strict=True)),
            "top_reasons": why,
            "threshold": threshold,
            "logit_threshold": cut,
            "flips": flip,
        }
        for label, lg, crow, why, flip in zip(labels, logits, contribs, reasons, flips, strict=True)
    ]


def _multinomial(model: Any, X: NDArray[np.float64], names: list[str], classes: NDArray[Any], coef: NDArray[np.float64],
                 centred: NDArray[np.float64], baseline: NDArray[np.float64], predicted: NDArray[np.intp],
                 top_k: int) -> list[dict[str, Any]]:
    keys = [label_key(c) for c in classes]
    contrib = centred[:, None, :] * coef[None, :, :]  # (n, k, d)
    logits = model.decision_function(X)  # (n, k): baseline + contributions per class, exactly
    rows = np.arange(X.shape[0])
    chosen = contrib[rows, predicted]  # (n, d): contributions to the predicted class's logit
    reasons = _top(chosen, chosen, X, names, top_k)
    base = dict(zip(keys, baseline.tolist(), strict=True))
    labels = classes[predicted].tolist()
    return [
        {
            "predicted_class": label,
            "logit": dict(zip(keys, lrow, strict=True)),
            "baseline": base,
            "contributions": {
                key: dict(zip(names, crow, strict=True)) for key, crow in zip(keys, cls, strict=True)
            },
            "top_reasons": why,
        }
        for label, lrow, cls, why in zip(labels, _rows(logits), _rows(contrib), reasons, strict=True)
    ]


def explain_loaded(loaded: LoadedModel, X: NDArray[np.float64], predicted: NDArray[np.intp],
                   threshold: float | None) -> list[dict[str, Any]]:
    """:func:`explain_rows` for a registry ``LoadedModel`` (its model and stored feature names)."""
    names = loaded.metadata.feature_names
    return explain_rows(loaded.model, X, names, predicted, threshold)
