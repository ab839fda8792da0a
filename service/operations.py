"""Use cases of the service: turn inputs into matrices, train and store a version, predict, evaluate.

Shared by the HTTP routes and the CLI; nothing here knows about HTTP. Errors are domain errors.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import drift
from .engine import LogisticRegression, evaluation, stratified_split
from .engine.calibration import calibrate
from .errors import InvalidInputError, LimitExceededError, NotFoundError
from .registry import LoadedModel, ModelRegistry

MAX_HISTORY_POINTS = 200
#: Validation labels and scores kept per version (for the threshold explorer); a seeded sample beyond it.
MAX_VALIDATION_SAMPLE = 5000
_SHOW = 5


def _first(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


# -- inputs -------------------------------------------------------------------------------------------
def rows_to_matrix(features: Any, max_rows: int | None = None, field: str = "features") -> NDArray[np.float64]:
    """A finite 2-D float64 matrix from JSON rows of numbers, with errors that name the bad row."""
    if not isinstance(features, list):
        raise InvalidInputError(f"`{field}` must be a list of rows (lists of numbers)", {"field": field})
    if len(features) == 0:
        raise InvalidInputError(f"`{field}` is empty: send at least one row", {"field": field})
    if max_rows is not None and len(features) > max_rows:
        raise LimitExceededError(
            f"{len(features)} rows exceed the limit of {max_rows} rows per request; split the batch",
            {"field": field, "rows": len(features), "limit": max_rows},
        )
    try:
        X = np.array(features)  # no dtype: strings, nulls and huge ints show up as a non-numeric dtype
    except (ValueError, TypeError, OverflowError):
        X = None
    if X is None or X.ndim != 2 or X.dtype.kind not in "fiu":
        problem = _describe_bad_rows(features, field)
        if problem is not None:
            raise InvalidInputError(problem, {"field": field})
        X = np.array(features, dtype=np.float64)  # numbers only, some ints beyond 64 bits
    X = X.astype(np.float64, copy=False)
    if X.shape[1] == 0:
        raise InvalidInputError(f"`{field}` rows are empty: each row needs at least one number", {"field": field})
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1)).tolist()
        raise InvalidInputError(f"`{field}` has non-finite numbers in rows {_first(bad)}", {"rows": bad[:100]})
    return X


def _describe_bad_rows(rows: list[Any], field: str) -> str | None:
    """What makes ``rows`` not a rectangular table of numbers, or None when they are one."""
    if not isinstance(rows[0], list):
        return f"`{field}` must be a list of rows; row 0 is {type(rows[0]).__name__}, not a list"
    width = len(rows[0])
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            return f"`{field}` row {i} is {type(row).__name__}, not a list of numbers"
        if len(row) != width:
            return f"`{field}` rows must all have the same length: row 0 has {width}, row {i} has {len(row)}"
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"`{field}` row {i}, column {j} is {v!r}: every value must be a number"
    return None


def records_to_matrix(
    records: Any, feature_names: Sequence[str], max_rows: int | None = None
) -> NDArray[np.float64]:
    """Rows from ``{feature_name: number}`` objects, ordered by ``feature_names``; names must match exactly."""
    if not isinstance(records, list) or not records:
        raise InvalidInputError("`records` must be a non-empty list of objects", {"field": "records"})
    if max_rows is not None and len(records) > max_rows:
        raise LimitExceededError(
            f"{len(records)} rows exceed the limit of {max_rows} rows per request; split the batch",
            {"field": "records", "rows": len(records), "limit": max_rows},
        )
    expected = set(feature_names)
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInputError(f"`records` item {i} is {type(rec).__name__}, not an object")
        if rec.keys() != expected:
            missing, unknown, problem = _name_mismatch(rec.keys(), expected)
            raise InvalidInputError(
                f"`records` item {i}: {problem}",
                {"row": i, "missing": missing, "unknown": unknown},
            )
        rows.append([rec[name] for name in feature_names])
    return rows_to_matrix(rows, field="records")


def _name_mismatch(given: Any, expected: set[str]) -> tuple[list[str], list[str], str]:
    """The missing and unknown names of ``given`` against ``expected``, and a sentence naming them."""
    missing = sorted(expected - set(given))
    unknown = sorted(set(given) - expected, key=str)
    parts = []
    if missing:
        parts.append(f"missing feature(s) {_first(missing)}")
    if unknown:
        parts.append(f"unknown feature(s) {_first(unknown)}")
    return missing, unknown, "; ".join(parts)


def order_columns(
    X: NDArray[np.float64], columns: Sequence[str], feature_names: Sequence[str], source: str
) -> NDArray[np.float64]:
    """The columns of ``X`` (named ``columns``) in the model's ``feature_names`` order; names must match exactly.

    ``source`` says where the names came from in the error (e.g. "the CSV header").
    """
    order = column_order(columns, feature_names, source)
    return X if order is None else np.ascontiguousarray(X[:, order])  # C order: same scores as rows sent in order


def column_order(columns: Sequence[str], feature_names: Sequence[str], source: str) -> list[int] | None:
    """Positions in ``columns`` of each of ``feature_names`` (None when already in order), or a 422 naming the
    missing, unknown or repeated names."""
    columns = list(columns)
    if columns == list(feature_names):
        return None
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1}, key=str)
        raise InvalidInputError(f"{source} repeats column(s) {_first(dupes)}", {"repeated": dupes})
    missing, unknown, problem = _name_mismatch(columns, set(feature_names))
    if missing or unknown:
        raise InvalidInputError(
            f"{source} must name exactly the model's features: {problem}",
            {"missing": missing, "unknown": unknown, "expected": list(feature_names)},
        )
    position = {c: j for j, c in enumerate(columns)}
    return [position[n] for n in feature_names]


def input_matrix(
    features: Any, records: Any, feature_names: Sequence[str] | None, max_rows: int | None = None
) -> NDArray[np.float64]:
    """The matrix from exactly one of ``features`` and ``records``."""
    if (features is None) == (records is None):
        raise InvalidInputError("give exactly one of `features` (rows) and `records` (objects)")
    if features is not None:
        return rows_to_matrix(features, max_rows)
    if feature_names is None:
        raise InvalidInputError("`records` need feature names: give `feature_names` or send `features`")
    return records_to_matrix(records, feature_names, max_rows)


def labels_array(labels: Any, n_rows: int) -> NDArray[Any]:
    """Labels of one type (ints, bools or strings), one per row."""
    if not isinstance(labels, list):
        raise InvalidInputError("`labels` must be a list", {"field": "labels"})
    if len(labels) != n_rows:
        raise InvalidInputError(
            f"{n_rows} rows but {len(labels)} labels: give one label per row",
            {"rows": n_rows, "labels": len(labels)},
        )
    kinds = {bool if isinstance(v, bool) else int if isinstance(v, int) else type(v) for v in labels}
    if not kinds <= {bool, int, str} or len(kinds) > 1:
        names = sorted(k.__name__ for k in kinds)
        raise InvalidInputError(f"`labels` must all be ints, all bools or all strings; got {names}")
    if kinds == {int}:
        huge = [v for v in labels if not -(2**63) <= v < 2**63]
        if huge:
            raise InvalidInputError(f"integer labels must fit in 64 bits; got {_first(huge)}")
        return np.asarray(labels, dtype=np.int64)
    return np.asarray(labels)


def parse_csv(data: bytes | str, target: str) -> tuple[NDArray[np.float64], NDArray[Any], list[str]]:
    """Features, labels and feature names from a CSV with a header row and a ``target`` column."""
    X, raw_labels, names = _read_csv(data, target)
    return X, _csv_labels(raw_labels), names


def csv_matrix(data: bytes | str, feature_names: Sequence[str], max_rows: int | None = None) -> NDArray[np.float64]:
    """Rows to score from a CSV whose header names exactly the model's features (in any order)."""
    X, _, names = _read_csv(data, None, max_rows, lambda names: column_order(names, feature_names, "the CSV header"))
    return order_columns(X, names, feature_names, "the CSV header")


def _read_csv(
    data: bytes | str, target: str | None, max_rows: int | None = None,
    check_header: Callable[[list[str]], object] | None = None,
) -> tuple[NDArray[np.float64], list[str], list[str]]:
    """The one CSV reader, for training (with a ``target`` column) and scoring (``target=None``);
    ``check_header`` sees the feature columns' names before any row is read."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the CSV is not UTF-8 text: {exc}") from None
    try:
        return _parse_csv_text(text, target, max_rows, check_header)
    except csv.Error as exc:
        raise InvalidInputError(f"the CSV cannot be parsed: {exc}") from None


def _parse_csv_text(
    text: str, target: str | None, max_rows: int | None, check_header: Callable[[list[str]], object] | None
) -> tuple[NDArray[np.float64], list[str], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInputError("the CSV is empty: it needs a header row and data rows") from None
    header = [h.strip() for h in header]
    if target is not None and target not in header:
        raise InvalidInputError(f"target column {target!r} is not in the CSV header {_first(header)}")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InvalidInputError(f"the CSV header repeats column(s) {_first(dupes)}")
    t = header.index(target) if target is not None else -1
    names = [h for i, h in enumerate(header) if i != t]
    if check_header is not None:
        check_header(names)
    rows: list[list[float]] = []
    raw_labels: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if max_rows is not None and len(rows) >= max_rows:
            raise LimitExceededError(
                f"the CSV has more than {max_rows} rows, the limit per request; split the batch",
                {"limit": max_rows},
            )
        if len(row) != len(header):
            raise InvalidInputError(f"CSV line {line_no} has {len(row)} fields, the header has {len(header)}")
        values = []
        for i, cell in enumerate(row):
            if i == t:
                continue
            try:
                v = float(cell)
            except ValueError:
                raise InvalidInputError(
                    f"CSV line {line_no}, column {header[i]!r}: {cell!r} is not a number"
                ) from None
            if not math.isfinite(v):
                raise InvalidInputError(f"CSV line {line_no}, column {header[i]!r}: {cell!r} is not finite")
            values.append(v)
        rows.append(values)
        if t >= 0:
            raw_labels.append(row[t].strip())
    if not rows:
        raise InvalidInputError("the CSV has a header but no data rows")
    if not names:
        raise InvalidInputError(
            "the CSV has no feature columns besides the target" if target is not None else "the CSV has no columns"
        )
    return np.asarray(rows, dtype=np.float64), raw_labels, names


def _csv_labels(raw: list[str]) -> NDArray[Any]:
    """Integer labels when every cell is an integer (``1``, ``0.0``), else the strings as given."""
    try:
        as_float = [float(v) for v in raw]
        if all(f.is_integer() and abs(f) < 2**63 for f in as_float):
            return np.asarray([int(f) for f in as_float], dtype=np.int64)
    except ValueError:
        pass
    return np.asarray(raw)


# -- training -----------------------------------------------------------------------------------------
def downsample(values: Sequence[float], limit: int = MAX_HISTORY_POINTS) -> list[float]:
    """At most ``limit`` evenly spaced points, always keeping the first and the last."""
    if len(values) <= limit:
        return [float(v) for v in values]
    idx = np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))
    return [float(values[i]) for i in idx]


def _label_key(label: Any) -> str:
    return str(label.item() if isinstance(label, np.generic) else label)


def engine_params(params: dict[str, Any], classes: NDArray[Any]) -> dict[str, Any]:
    """Engine keyword arguments from API params: class_weight keys (strings in JSON) mapped to labels."""
    out = dict(params)
    cw = out.get("class_weight")
    if isinstance(cw, dict):
        by_key = {_label_key(c): c.item() if isinstance(c, np.generic) else c for c in classes}
        unknown = sorted(set(cw) - set(by_key))
        if unknown:
            raise InvalidInputError(
                f"class_weight names unknown label(s) {_first(unknown)}; classes are {_first(list(by_key))}"
            )
        out["class_weight"] = {by_key[k]: w for k, w in cw.items()}
    return out


def coefficient_table(model: LogisticRegression, names: Sequence[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Coefficients by class and feature name, and intercepts by class (binary: the positive class)."""
    rows = model.classes_[1:] if model.coef_.shape[0] == 1 else model.classes_
    coefs = {
        _label_key(c): dict(zip(names, map(float, row), strict=True))
        for c, row in zip(rows, model.coef_, strict=True)
    }
    intercepts = {_label_key(c): float(b) for c, b in zip(rows, model.intercept_, strict=True)}
    return coefs, intercepts


def check_training_limits(
    X: NDArray[np.float64], params: dict[str, Any], max_train_cells: int | None, max_iter_limit: int | None
) -> None:
    """Refuse a training set or budget over the configured limits before any work starts."""
    n, d = X.shape
    if max_train_cells is not None and n * d > max_train_cells:
        raise LimitExceededError(
            f"the training set has {n} x {d} = {n * d} values, over the limit of {max_train_cells}",
            {"rows": n, "features": d, "limit": max_train_cells},
        )
    if max_iter_limit is not None and (params.get("max_iter") or 0) > max_iter_limit:
        raise InvalidInputError(
            f"max_iter {params['max_iter']} is over the limit of {max_iter_limit}", {"limit": max_iter_limit}
        )


def train_and_store(
    registry: ModelRegistry,
    name: str,
    X: NDArray[np.float64],
    y: NDArray[Any],
    *,
    feature_names: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    validation_fraction: float = 0.2,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    max_train_cells: int | None = None,
    max_iter_limit: int | None = None,
    callback: Callable[[int, float], bool | None] | None = None,
    calibration: str = "none",
) -> dict[str, Any]:
    """Fit a model on ``X, y``, evaluate it on a held-out split, store it as a new version, and return
    the training report (also kept in the version's metadata)."""
    start = time.perf_counter()
    params = dict(params or {})
    n, d = X.shape
    check_training_limits(X, params, max_train_cells, max_iter_limit)
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(d)]
    if len(names) != d:
        raise InvalidInputError(f"{len(names)} feature names for {d} columns; give one name per column")
    if len(set(names)) != d:
        raise InvalidInputError(f"feature names repeat: {_first(sorted({v for v in names if names.count(v) > 1}))}")
    if y.shape[0] != n:
        raise InvalidInputError(f"{n} rows but {y.shape[0]} labels: give one label per row")
    with np.errstate(over="ignore", invalid="ignore"):
        spread = X.std(axis=0)
    if not np.isfinite(spread).all():
        cols = [names[j] for j in np.flatnonzero(~np.isfinite(spread))]
        raise InvalidInputError(f"column(s) {_first(cols)} hold values too large to train on (they overflow)")
    classes, y_enc = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise InvalidInputError(
            f"the labels hold a single class ({_first(classes.tolist())}); training needs at least 2 classes"
        )
    if calibration != "none" and (classes.size != 2 or validation_fraction <= 0):
        raise InvalidInputError(
            f"calibration {calibration!r} needs a binary model (this one has {classes.size} classes) and a "
            f"validation split to fit on (validation_fraction > 0, got {validation_fraction})",
            {"field": "calibration"},
        )
    seed = params.get("random_state")
    if validation_fraction > 0:
        train_idx, val_idx = stratified_split(y_enc, validation_fraction, np.random.default_rng(seed))
    else:
        train_idx, val_idx = np.arange(n), np.arange(0)
    train_classes = np.unique(y_enc[train_idx])
    if train_classes.size < 2:
        raise InvalidInputError("the training split holds a single class; send more rows of each class")
    model = LogisticRegression(**engine_params(params, classes))
    try:
        model.fit(X[train_idx], y[train_idx], callback=callback)
    except (ValueError, FloatingPointError) as exc:
        raise InvalidInputError(f"training failed: {exc}") from None
    messages = list(model.fit_warnings_)
    calibration_report = None
    if calibration != "none":  # Platt or isotonic on the validation split; the served model is the wrapper
        model, calibration_report = calibrate(model, X[val_idx], y[val_idx], calibration, seed)
        messages += calibration_report["warnings"]
    train_metrics = evaluation.classification_summary(y[train_idx], model.predict_proba(X[train_idx]), model.classes_)
    validation_metrics = None
    validation_sample = None
    if val_idx.size:
        proba_val = model.predict_proba(X[val_idx])
        validation_metrics = evaluation.classification_summary(y[val_idx], proba_val, model.classes_)
        keep = np.arange(val_idx.size)
        if keep.size > MAX_VALIDATION_SAMPLE:
            keep = np.sort(np.random.default_rng(seed).choice(keep.size, MAX_VALIDATION_SAMPLE, replace=False))
        validation_sample = {
            "rows": val_idx[keep].tolist(),  # positions in the training set as sent
            "labels": y[val_idx][keep].tolist(),
            "probabilities": proba_val[keep].tolist(),
        }
    coefficients, intercepts = coefficient_table(model, names)
    report = {
        "model": name,
        "classes": model.classes_.tolist(),
        "feature_names": names,
        "n_samples": int(n),
        "n_train": int(train_idx.size),
        "n_validation": int(val_idx.size),
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "warnings": messages,
        "train_metrics": train_metrics,
        "validation_metrics": validation_metrics,
        "loss_history": downsample(model.loss_history_),
    }
    if calibration_report is not None:
        report["calibration"] = calibration_report
    metadata = {
        **report,
        "params": params,
        "validation_fraction": validation_fraction,
        "description": description,
        "tags": tags or {},
        "coefficients": coefficients,
        "intercepts": intercepts,
        "feature_means": X[train_idx].mean(axis=0).tolist(),
        "feature_stds": X[train_idx].std(axis=0).tolist(),  # finite: checked above
        "feature_statistics": drift.feature_statistics(X[train_idx], names),  # drift monitoring
        "alpha": float(model.alpha_),
        "standardization": {"mean": model.mean_.tolist(), "scale": model.scale_.tolist()},
        "validation_sample": validation_sample,
    }
    metadata["duration_seconds"] = round(time.perf_counter() - start, 6)
    stored = registry.save(name, model, metadata)
    return {**report, "version": stored["version"], "duration_seconds": metadata["duration_seconds"]}


# -- serving ------------------------------------------------------------------------------------------
def predict_proba(loaded: LoadedModel, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Class probabilities from a loaded version, after checking the feature count."""
    _check_width(loaded, X)
    with np.errstate(over="ignore", invalid="ignore"):
        proba = loaded.model.predict_proba(X)
    if not np.isfinite(proba).all():
        rows = np.flatnonzero(~np.isfinite(proba).all(axis=1)).tolist()
        raise InvalidInputError(
            f"rows {_first(rows)} hold values too large for this model (the scores overflow)", {"rows": rows[:100]}
        )
    return proba


def _check_width(loaded: LoadedModel, X: NDArray[np.float64]) -> None:
    d = loaded.model.n_features_in_
    if X.shape[1] != d:
        raise InvalidInputError(
            f"rows have {X.shape[1]} values but model {loaded.name!r} version {loaded.version} expects {d} "
            f"features ({_first(loaded.metadata.get('feature_names', []))})",
            {"expected": d, "got": X.shape[1]},
        )


def decision_threshold(loaded: LoadedModel, threshold: float | None) -> float | None:
    """The threshold to apply: the given one, else the version's stored one, else 0.5; None for multiclass."""
    n_classes = len(loaded.model.classes_)
    if n_classes > 2:
        if threshold is not None:
            raise InvalidInputError(
                f"threshold applies to binary models only; model {loaded.name!r} has {n_classes} classes "
                "and predicts the most probable one",
                {"field": "threshold"},
            )
        return None
    if threshold is None:
        threshold = loaded.threshold if loaded.threshold is not None else 0.5
    return float(threshold)


def predict(
    loaded: LoadedModel, X: NDArray[np.float64], threshold: float | None
) -> tuple[list[Any], float | None, NDArray[np.intp]]:
    """Class labels at the decision threshold in use, that threshold, and the labels' class indices."""
    t = decision_threshold(loaded, threshold)
    proba = predict_proba(loaded, X)
    classes = loaded.model.classes_
    idx = (proba[:, 1] >= t).astype(np.intp) if t is not None else np.argmax(proba, axis=1)
    return classes[idx].tolist(), t, idx


def evaluate(loaded: LoadedModel, X: NDArray[np.float64], labels: Any, threshold: float | None) -> dict[str, Any]:
    """Metrics of a version on labelled rows; labels must be among the version's classes."""
    y = labels_array(labels, X.shape[0])
    classes = loaded.model.classes_
    if y.dtype.kind != classes.dtype.kind and not (y.dtype.kind in "iub" and classes.dtype.kind in "iub"):
        raise InvalidInputError(
            f"labels are {y.dtype.kind!r}-typed but the model's classes are {classes.tolist()}",
            {"classes": classes.tolist()},
        )
    unknown = sorted(set(y.tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise InvalidInputError(
            f"label(s) {_first(unknown)} are not among the model's classes {_first(classes.tolist())}",
            {"unknown": unknown, "classes": classes.tolist()},
        )
    t = decision_threshold(loaded, threshold)
    proba = predict_proba(loaded, X)
    summary = evaluation.classification_summary(y, proba, classes, threshold=0.5 if t is None else t)
    calibration = evaluation.calibration_report(y, proba, classes)
    return {"model": loaded.name, "version": loaded.version, **summary, "calibration": calibration}


def metadata_problems(meta: dict[str, Any]) -> list[str]:
    """What in a version's metadata does not have the shape this service writes (for the registry's check)."""
    problems = []
    names, classes = meta.get("feature_names"), meta.get("classes")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        problems.append("feature_names is not a list of strings")
    if not isinstance(classes, list) or len(classes) < 2:
        problems.append("classes is not a list of at least 2 labels")
    sample = meta.get("validation_sample")
    if sample is not None and not (
        isinstance(sample, dict) and all(isinstance(sample.get(k), list) for k in ("rows", "labels", "probabilities"))
    ):
        problems.append("validation_sample is malformed")
    return problems


def validation_sample(meta: dict[str, Any]) -> dict[str, Any]:
    """The validation labels and probabilities stored with a version, for threshold exploration."""
    sample = meta.get("validation_sample")
    if not sample:
        raise NotFoundError(
            f"model {meta.get('name')!r} version {meta.get('version')} has no validation split "
            "(trained with validation_fraction=0)",
            {"name": meta.get("name"), "version": meta.get("version")},
        )
    classes = meta.get("classes", [])
    return {
        "model": meta.get("name"),
        "version": meta.get("version"),
        "classes": classes,
        "positive_class": classes[1] if len(classes) == 2 else None,
        "threshold": meta.get("threshold"),
        "n_validation": meta.get("n_validation"),
        "sampled": len(sample["labels"]) < (meta.get("n_validation") or 0),
        **sample,
    }


def model_card(meta: dict[str, Any]) -> dict[str, Any]:
    """The public view of a version's metadata (without the bulky validation sample)."""
    return {k: v for k, v in meta.items() if k != "validation_sample"}
