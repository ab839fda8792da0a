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

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..data.encoding import EncodedModel, raw_coefficients
from ..domain import MAX_EXPLAIN_ROWS, MAX_EXPLAIN_VALUES, label_key, preview
from ..engine.calibration import raw_threshold
from ..errors import InvalidInputError, LimitExceededError
from ..store.cache import LoadedModel

#: Reasons listed per row.
TOP_K = 3
#: How an explanation shows a category training never saw.
UNKNOWN_TEXT = "(unknown)"


def _rows(values: NDArray[np.float64]) -> list[Any]:
    """``values.tolist()`` with non-finite numbers (overflowing contributions) as None; fast when all are finite."""
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def check_explain_size(rows: int, features: int, classes: int) -> None:
    """The limits on one request's explanations, before any work: rows (``MAX_EXPLAIN_ROWS``) and values
    (``MAX_EXPLAIN_VALUES``: rows x features x logits, three per feature for a binary model); a 413 naming
    the limit and what the request asked for."""
    if rows > MAX_EXPLAIN_ROWS:
        raise LimitExceededError(
            f"explanations are limited to {MAX_EXPLAIN_ROWS} rows per request (MAX_EXPLAIN_ROWS), got {rows}; split "
            "the batch or ask without explain=true", {"rows": rows, "limit": MAX_EXPLAIN_ROWS})
    values = rows * features * (3 if classes == 2 else classes)
    if values > MAX_EXPLAIN_VALUES:
        raise LimitExceededError(
            f"explanations are limited to {MAX_EXPLAIN_VALUES} values per request (MAX_EXPLAIN_VALUES: rows x "
            f"features x {'3 for a binary model' if classes == 2 else 'classes'}); {rows} rows of this model's "
            f"{features} features and {classes} classes make {values}: send at most "
            f"{max(1, MAX_EXPLAIN_VALUES // max(1, values // rows))} rows, or ask without explain=true",
            {"rows": rows, "values": values, "limit": MAX_EXPLAIN_VALUES})


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
    check_explain_size(X.shape[0], len(feature_names), len(model.classes_))
    names = list(feature_names)
    classes = model.classes_
    with np.errstate(over="ignore", invalid="ignore"):
        terms = _encoded_terms(model, X) if isinstance(model, EncodedModel) else _plain_terms(model, X)
    finite = np.isfinite(terms.logits).all(axis=1) & np.isfinite(terms.contrib).all(axis=(1, 2))
    if not finite.all():
        rows = np.flatnonzero(~finite).tolist()
        raise InvalidInputError(
            f"rows {preview(rows)} hold values too large to explain (their logit or a contribution overflows); "
            "ask without explain=true, or send values in the range the model was trained on", {"rows": rows[:100]})
    with np.errstate(over="ignore", invalid="ignore"):
        if terms.contrib.shape[1] == 1:
            return _binary(model, terms, names, classes, predicted, threshold, top_k)
        return _multinomial(terms, names, classes, predicted, top_k)


@dataclass
class _Terms:
    """A batch's explanation in the caller's columns: contributions ``(n, k, d)``, baselines ``(k,)``, the
    logits the model computes ``(n, k)``, the values to show ``(n, d)``, and each column's flip finder."""

    contrib: NDArray[np.float64]
    baseline: NDArray[np.float64]
    logits: NDArray[np.float64]
    shown: NDArray[Any]
    flip: Callable[[NDArray[np.float64]], list[dict[str, Any] | None]]


def _plain_terms(model: Any, X: NDArray[np.float64]) -> _Terms:
    coef = np.asarray(model.coef_, dtype=np.float64)
    mean = np.asarray(model.mean_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    logits = model.decision_function(X)  # baseline + contributions, exactly
    logits = logits[:, None] if logits.ndim == 1 else logits

    def flip(gap: NDArray[np.float64]) -> list[dict[str, Any] | None]:
        """Per cell, the change of that feature alone that moves the logit by ``gap`` (one per row)."""
        nonzero = coef[0] != 0
        delta = np.divide(gap[:, None], coef[0], out=np.full(X.shape, np.nan), where=nonzero)
        value = X + delta
        ok = np.isfinite(delta) & np.isfinite(value)
        cells: list[dict[str, Any] | None] = [
            {"delta": dv, "value": vv} for dv, vv in zip(delta.ravel().tolist(), value.ravel().tolist(), strict=True)
        ]
        for k in np.flatnonzero(~ok.ravel()).tolist():
            cells[k] = None
        return cells

    return _Terms((X - mean)[:, None, :] * coef[None, :, :], intercept + coef @ mean, logits, X, flip)


def _encoded_terms(model: EncodedModel, X: NDArray[np.float64]) -> _Terms:
    """Contributions of a mixed-type model's columns: a number's (and its missing flag's) from its output
    columns; a category's is its level's coefficient less the group's share at the training means, so that
    the contributions of all columns still add up to the logit."""
    encoder, estimator = model.encoder, model.estimator
    coef = np.asarray(estimator.coef_, dtype=np.float64)  # (k, width), the encoder's output space
    means = np.asarray(encoder.output_means)
    n, d, k = X.shape[0], len(encoder.names), coef.shape[0]
    contrib = np.zeros((n, k, d))
    block = encoder.numeric_block(X)
    p = block.shape[1]
    groups = encoder.groups()
    for e in range(p):
        contrib[:, :, groups[e]] += (block[:, e, None] - means[e]) * coef[None, :, e]
    levels = encoder.levels(X)
    for j, (cat, offset) in enumerate(zip(encoder.categorical, encoder.offsets(), strict=True)):
        span = slice(offset, offset + len(cat.levels))
        share = coef[:, span] @ means[span]  # (k,)
        hit = levels[:, j]
        active = np.where(hit[:, None] >= 0, coef[:, np.maximum(hit, 0)].T, 0.0)  # (n, k)
        contrib[:, :, cat.index] = active - share
    baseline = np.asarray(estimator.intercept_, dtype=np.float64) + coef @ means
    logits = contrib.sum(axis=2) + baseline
    shown = _shown(encoder, X)

    raw_coef, _ = raw_coefficients(encoder, coef, np.zeros(k))

    def flip(gap: NDArray[np.float64]) -> list[dict[str, Any] | None]:
        """Per cell: for a number, the change that moves the logit by ``gap``; for a category, the known one
        whose level moves it past the threshold by the least."""
        filled = encoder.drift_view(X)
        cells: list[dict[str, Any] | None] = [None] * (n * d)
        for c, e in zip(encoder.numeric, range(len(encoder.numeric)), strict=True):
            if raw_coef[0, e] == 0:
                continue
            delta = gap / raw_coef[0, e]
            value = filled[:, c.index] + delta
            for i in np.flatnonzero(np.isfinite(delta) & np.isfinite(value)).tolist():
                cells[i * d + c.index] = {"delta": float(delta[i]), "value": float(value[i])}
        for j, (cat, offset) in enumerate(zip(encoder.categorical, encoder.offsets(), strict=True)):
            level_coef = coef[0, offset: offset + len(cat.levels)]
            now = np.where(levels[:, j] >= 0, coef[0, np.maximum(levels[:, j], 0)], 0.0)
            change = level_coef[None, :] - now[:, None]  # (n, levels): the logit's move to each level
            crosses = np.where(gap[:, None] >= 0, change >= gap[:, None], change < gap[:, None])
            crosses &= np.arange(len(cat.levels))[None, :] != levels[:, j, None] - offset
            cost = np.where(crosses, np.abs(change), np.inf)
            best = cost.argmin(axis=1)
            for i in np.flatnonzero(np.isfinite(cost[np.arange(n), best])).tolist():
                cells[i * d + cat.index] = {"delta": None, "value": cat.levels[best[i]]}
        return cells

    return _Terms(contrib, baseline, logits, shown, flip)


def _shown(encoder: Any, X: NDArray[np.float64]) -> NDArray[Any]:
    """The caller's values: numbers as sent (None where missing), categories as their text (None where missing,
    "(unknown)" for one training never saw)."""
    shown = np.where(np.isnan(X), None, X).astype(object)
    for cat in encoder.categorical:
        codes = X[:, cat.index]
        text = np.array([*cat.categories, UNKNOWN_TEXT], dtype=object)
        valid = ~np.isnan(codes)
        column = np.full(codes.shape, None, dtype=object)
        column[valid] = text[codes[valid].astype(np.intp)]  # -1: the last entry, the unknown text
        shown[:, cat.index] = column
    return shown


def _top(signed: NDArray[np.float64], contrib: NDArray[np.float64], X: NDArray[Any],
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


def _binary(model: Any, terms: _Terms, names: list[str], classes: NDArray[Any], predicted: NDArray[np.intp],
            threshold: float | None, top_k: int) -> list[dict[str, Any]]:
    contrib = terms.contrib[:, 0, :]  # (n, d)
    logit = terms.logits[:, 0]
    direction = np.where(predicted == 1, 1.0, -1.0)
    reasons = _top(contrib * direction[:, None], contrib, terms.shown, names, top_k)
    cut = raw_threshold(model, threshold) if threshold is not None else None
    labels = classes[predicted].tolist()
    logits = _rows(logit)
    contribs = _rows(contrib)
    n, d = contrib.shape
    if cut is None:
        flips: list[dict[str, Any]] = [dict.fromkeys(names) for _ in range(n)]
    else:
        cells = terms.flip(cut - logit)
        flips = [dict(zip(names, cells[i * d : (i + 1) * d], strict=True)) for i in range(n)]
    baseline = float(terms.baseline[0])
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


def _multinomial(terms: _Terms, names: list[str], classes: NDArray[Any], predicted: NDArray[np.intp],
                 top_k: int) -> list[dict[str, Any]]:
    keys = [label_key(c) for c in classes]
    contrib = terms.contrib  # (n, k, d)
    rows = np.arange(contrib.shape[0])
    chosen = contrib[rows, predicted]  # (n, d): contributions to the predicted class's logit
    reasons = _top(chosen, chosen, terms.shown, names, top_k)
    base = dict(zip(keys, terms.baseline.tolist(), strict=True))
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
        for label, lrow, cls, why in zip(labels, _rows(terms.logits), _rows(contrib), reasons, strict=True)
    ]


def explain_loaded(loaded: LoadedModel, X: NDArray[np.float64], predicted: NDArray[np.intp],
                   threshold: float | None) -> list[dict[str, Any]]:
    """:func:`explain_rows` for a registry ``LoadedModel`` (its model and stored feature names)."""
    names = loaded.metadata.feature_names
    return explain_rows(loaded.model, X, names, predicted, threshold)


async def explain_off_loop(loaded: LoadedModel, X: NDArray[np.float64], predicted: NDArray[np.intp],
                           threshold: float | None) -> list[dict[str, Any]]:
    """:func:`explain_loaded` in a worker thread, after checking its size: explanations of large batches take
    seconds, and the event loop keeps serving meanwhile."""
    check_explain_size(X.shape[0], len(loaded.metadata.feature_names), len(loaded.model.classes_))
    async with _one_at_a_time():
        return await asyncio.to_thread(explain_loaded, loaded, X, predicted, threshold)


#: One semaphore per event loop (a worker has one; tests start several).
_EXPLAINING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _one_at_a_time() -> asyncio.Semaphore:
    """Explanations run one at a time per worker (each may hold MAX_EXPLAIN_VALUES values and their answer):
    a flood of them queues instead of multiplying the worker's memory."""
    loop = asyncio.get_running_loop()
    semaphore = _EXPLAINING.get(loop)
    if semaphore is None:
        semaphore = _EXPLAINING[loop] = asyncio.Semaphore(1)
    return semaphore
