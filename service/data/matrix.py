"""JSON rows, records and columns into a finite float64 matrix in the model's feature order."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError, LimitExceededError
from .columns import Columns, json_kind

#: Label text that names no class (an empty cell, ``nan``, ``null``...), refused wherever labels come from.
MISSING_LABELS = ("", "nan", "na", "n/a", "null", "none")


def check_row_limit(rows: int, limit: int | None, field: str | None = None) -> None:
    """The one limit on rows per request: a 413 that says how many and what to do."""
    if limit is not None and rows > limit:
        raise LimitExceededError(
            f"{rows} rows exceed the limit of {limit} rows per request; split the batch",
            {"field": field, "rows": rows, "limit": limit},
        )


def check_matrix_size(
    rows: int, features: int, max_bytes: int | None, setting: str = "LOGREG_MAX_TRAIN_BYTES", label_bytes: int = 0
) -> None:
    """The one limit on a training set's size, in bytes: the float64 matrix, plus what long labels take beyond
    a number's 8 bytes each (text labels of a few characters cost no more than numbers): a 413 naming the
    setting."""
    size = rows * features * 8
    excess = max(0, label_bytes - rows * 8)
    if max_bytes is not None and size + excess > max_bytes:
        labels = f" and {label_bytes} bytes of labels" if excess else ""
        raise LimitExceededError(
            f"the training set has {rows} x {features} values = {size} bytes as float64{labels}, over the limit "
            f"of {max_bytes} bytes ({setting}); raise it or train on a sample",
            {"rows": rows, "features": features, "bytes": size, "limit": max_bytes},
        )


def rows_to_matrix(features: Any, max_rows: int | None = None, field: str = "features",
                   columns: Columns | None = None) -> NDArray[np.float64]:
    """A finite 2-D float64 matrix from JSON rows of numbers, with errors that name the bad row; with a mixed-type
    model's ``columns``, rows of the caller's values (text, booleans, nulls) in the model's column order."""
    if columns is not None:
        return columns.json_matrix(_row_columns(features, field, max_rows, len(columns.names)), f"`{field}`")
    if not isinstance(features, list):
        raise InvalidInputError(f"`{field}` must be a list of rows (lists of numbers)", {"field": field})
    if len(features) == 0:
        raise InvalidInputError(f"`{field}` is empty: send at least one row", {"field": field})
    check_row_limit(len(features), max_rows, field)
    try:
        X = np.array(features)  # no dtype: strings, nulls and huge ints show up as a non-numeric dtype
    except (ValueError, TypeError, OverflowError):
        X = None
    if X is None or X.ndim != 2 or X.dtype.kind not in "fiu":
        problem = _describe_bad_rows(features, field)
        if problem is not None:
            raise InvalidInputError(problem, {"field": field})
        X = np.array(features, dtype=np.float64)  # numbers only, some ints beyond 64 bits
    else:
        refuse_booleans(features, X, field)
    X = X.astype(np.float64, copy=False)
    if X.shape[1] == 0:
        raise InvalidInputError(f"`{field}` rows are empty: each row needs at least one number", {"field": field})
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1)).tolist()
        raise InvalidInputError(f"`{field}` has non-finite numbers in rows {preview(bad)}", {"rows": bad[:100]})
    return X


#: Cells up to which a batch is looked at whole for booleans.
_SMALL = 256


def refuse_booleans(rows: list[Any], X: NDArray[Any], field: str) -> None:
    """numpy reads ``true`` among numbers as 1 and ``false`` as 0; refuse them as rows of booleans are.

    Only the cells that hold exactly 0 or 1 can be booleans, so only those are looked at; a small batch is
    looked at whole, which costs less than finding them.
    """
    if X.size <= _SMALL:
        if any(v.__class__ is bool for row in rows for v in row):
            candidates = np.ones(X.shape, dtype=bool)
        else:
            return
    else:
        candidates = X == 0
        candidates |= X == 1
    for i, j in zip(*(a.tolist() for a in np.nonzero(candidates)), strict=True):
        if rows[i][j].__class__ is bool:
            raise InvalidInputError(
                f"{_named(field)} row {i}, column {j} is {rows[i][j]!r}: every value must be a number "
                "(booleans are not numbers here)", {"field": field, "row": i, "column": j},
            )


def _named(field: str) -> str:
    """A field in backquotes (``features``); a phrase such as "input 'x'" as it is."""
    return field if " " in field else f"`{field}`"


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


def _row_columns(rows: Any, field: str, max_rows: int | None, width: int | None) -> list[list[Any]]:
    """JSON rows (lists of values of any kind) as columns, after checking they form a table."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError(f"`{field}` must be a non-empty list of rows", {"field": field})
    check_row_limit(len(rows), max_rows, field)
    first = len(rows[0]) if isinstance(rows[0], list) else -1
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInputError(f"`{field}` row {i} is {type(row).__name__}, not a list", {"field": field})
        if len(row) != first:
            raise InvalidInputError(f"`{field}` rows must all have the same length: row 0 has {first}, row {i} "
                                    f"has {len(row)}", {"field": field})
    if first == 0:
        raise InvalidInputError(f"`{field}` rows are empty: each row needs at least one value", {"field": field})
    if width is not None and first != width:
        raise InvalidInputError(f"rows have {first} values but the model expects {width} columns",
                                {"expected": width, "got": first})
    return [list(c) for c in zip(*rows, strict=True)]


def _record_columns(records: Any, feature_names: Sequence[str], field: str, max_rows: int | None
                    ) -> list[list[Any]]:
    """JSON records as columns in ``feature_names`` order; every record names exactly those columns."""
    if not isinstance(records, list) or not records:
        raise InvalidInputError(f"`{field}` must be a non-empty list of objects", {"field": field})
    check_row_limit(len(records), max_rows, field)
    expected = set(feature_names)
    width = len(expected)
    pick = operator.itemgetter(*feature_names)
    try:  # the common case in one pass: every record an object of exactly these names
        if set(map(type, records)) == {dict} and set(map(len, records)) == {width}:
            rows = list(map(pick, records)) if width > 1 else [(pick(rec),) for rec in records]
            return [list(column) for column in zip(*rows, strict=True)]
    except KeyError:
        pass  # a name is missing: the loop below says which, in which record
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInputError(f"`{field}` item {i} is {type(rec).__name__}, not an object")
        if rec.keys() != expected:
            missing, unknown, problem = _name_mismatch(rec.keys(), expected)
            raise InvalidInputError(f"`{field}` item {i}: {problem}", {"row": i, "missing": missing,
                                                                      "unknown": unknown})
    return [[rec[name] for rec in records] for name in feature_names]


def has_mixed_cells(rows: Any) -> bool:
    """Whether JSON rows or records hold a cell of a mixed-type table: text, a boolean or null."""
    if not isinstance(rows, list):
        return False
    for row in rows:
        cells = row.values() if isinstance(row, dict) else row if isinstance(row, list) else ()
        if any(v is None or v.__class__ in (str, bool) for v in cells):
            return True
    return False


def training_columns(
    features: Any, records: Any, feature_names: Sequence[str] | None, declared: Mapping[str, str]
) -> tuple[NDArray[np.float64], list[str], Columns]:
    """A mixed-type training table from JSON rows or records: the values, the column names and how each column
    became values (kinds declared, or inferred from the JSON types)."""
    if (features is None) == (records is None):
        raise InvalidInputError("give exactly one of `features` (rows) and `records` (objects)")
    if features is not None:
        cols = _row_columns(features, "features", None, None)
        names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(len(cols))]
        if len(names) != len(cols):
            raise InvalidInputError(f"{len(names)} feature names for {len(cols)} columns; give one name per column")
        field = "`features`"
    else:
        if feature_names is None:
            raise InvalidInputError("`records` need feature names: give `feature_names` or send `features`")
        names = list(feature_names)
        cols = _record_columns(records, names, "records", None)
        field = "`records`"
    columns = Columns.settle(names, declared, {n: json_kind(c, n, field) if n not in declared else declared[n]
                                               for n, c in zip(names, cols, strict=True)})
    return columns.json_matrix(cols, field), names, columns


def records_to_matrix(
    records: Any, feature_names: Sequence[str], max_rows: int | None = None, field: str = "records",
    columns: Columns | None = None,
) -> NDArray[np.float64]:
    """Rows from ``{feature_name: number}`` objects, ordered by ``feature_names``; names must match exactly.
    With a mixed-type model's ``columns``, values of any kind (text, booleans, nulls)."""
    if columns is not None:
        return columns.json_matrix(_record_columns(records, feature_names, field, max_rows), f"`{field}`")
    if not isinstance(records, list) or not records:
        raise InvalidInputError(f"`{field}` must be a non-empty list of objects", {"field": field})
    check_row_limit(len(records), max_rows, field)
    expected = set(feature_names)
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInputError(f"`{field}` item {i} is {type(rec).__name__}, not an object")
        if rec.keys() != expected:
            missing, unknown, problem = _name_mismatch(rec.keys(), expected)
            raise InvalidInputError(
                f"`{field}` item {i}: {problem}",
                {"row": i, "missing": missing, "unknown": unknown},
            )
        rows.append([rec[name] for name in feature_names])
    return rows_to_matrix(rows, field=field)


def columns_to_matrix(
    columns: Mapping[str, Any], feature_names: Sequence[str], max_rows: int | None = None, field: str = "inputs",
    kinds: Columns | None = None,
) -> NDArray[np.float64]:
    """Rows from ``{feature: [values]}`` columns of equal length, in the model's feature order (with a
    mixed-type model's ``kinds``, values of any kind)."""
    if not columns:
        raise InvalidInputError(f"`{field}` has no columns", {"field": field})
    if kinds is not None:
        column_order(list(columns), feature_names, f"the columns of `{field}`")
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise InvalidInputError(f"the columns of `{field}` must be lists of equal length", {"field": field})
        check_row_limit(lengths.pop(), max_rows, field)
        return kinds.json_matrix([columns[n] for n in feature_names], f"`{field}`")
    names = list(columns)
    X = rows_to_matrix([columns[n] for n in names], field=field).T  # columns must be equally long
    check_row_limit(X.shape[0], max_rows, field)
    return order_columns(np.ascontiguousarray(X), names, feature_names, f"the columns of `{field}`")


def _name_mismatch(given: Any, expected: set[str]) -> tuple[list[str], list[str], str]:
    """The missing and unknown names of ``given`` against ``expected``, and a sentence naming them."""
    missing = sorted(expected - set(given))
    unknown = sorted(set(given) - expected, key=str)
    parts = []
    if missing:
        parts.append(f"missing feature(s) {preview(missing)}")
    if unknown:
        parts.append(f"unknown feature(s) {preview(unknown)}")
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
        raise InvalidInputError(f"{source} repeats column(s) {preview(dupes)}", {"repeated": dupes})
    missing, unknown, problem = _name_mismatch(columns, set(feature_names))
    if missing or unknown:
        raise InvalidInputError(
            f"{source} must name exactly the model's features: {problem}",
            {"missing": missing, "unknown": unknown, "expected": list(feature_names)},
        )
    position = {c: j for j, c in enumerate(columns)}
    return [position[n] for n in feature_names]


def input_matrix(
    features: Any, records: Any, feature_names: Sequence[str] | None, max_rows: int | None = None,
    columns: Columns | None = None,
) -> NDArray[np.float64]:
    """The matrix from exactly one of ``features`` and ``records`` (``columns``: a mixed-type model's)."""
    if (features is None) == (records is None):
        raise InvalidInputError("give exactly one of `features` (rows) and `records` (objects)")
    if features is not None:
        return rows_to_matrix(features, max_rows, columns=columns)
    if feature_names is None:
        raise InvalidInputError("`records` need feature names: give `feature_names` or send `features`")
    return records_to_matrix(records, feature_names, max_rows, columns=columns)


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
    if kinds == {str}:
        missing = [i for i, v in enumerate(labels) if v.strip().lower() in MISSING_LABELS]
        if missing:
            raise InvalidInputError(f"`labels` {missing[0]} is {labels[missing[0]]!r}: every row needs a class",
                                    {"rows": missing[:100]})
    if kinds == {int}:
        huge = [v for v in labels if not -(2**63) <= v < 2**63]
        if huge:
            raise InvalidInputError(f"integer labels must fit in 64 bits; got {preview(huge)}")
        return np.asarray(labels, dtype=np.int64)
    return np.asarray(labels)
