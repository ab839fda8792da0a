"""CSV text with a header row into the feature matrix (and the label vector of a ``target`` column).

The one CSV reader, used for training uploads, ``text/csv`` scoring bodies and the CLI.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError
from .matrix import check_row_limit, column_order


def read_labelled_csv(data: bytes | str, target: str) -> tuple[NDArray[np.float64], NDArray[Any], list[str]]:
    """Features, labels and feature names from a CSV with a header row and a ``target`` column."""
    X, raw_labels, names = _read(data, target)
    return X, _labels(raw_labels), names


def read_feature_csv(
    data: bytes | str, feature_names: Sequence[str], max_rows: int | None = None, *, ignore_extra: bool = False
) -> NDArray[np.float64]:
    """Rows to score, in the model's feature order, from a CSV whose header names the model's features in
    any order. Other columns are refused by name, or skipped with ``ignore_extra`` (the CLI reads files
    that still hold their label column)."""
    if ignore_extra:
        wanted = set(feature_names)
        X, names = _read_selected(data, lambda name: name in wanted, max_rows)
    else:
        X, _, names = _read(data, None, max_rows, lambda names: column_order(names, feature_names, "the CSV header"))
    order = column_order(names, feature_names, "the CSV header")
    return X if order is None else np.ascontiguousarray(X[:, order])


def _text(data: bytes | str) -> str:
    try:
        return data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the CSV is not UTF-8 text: {exc}") from None


def _read(
    data: bytes | str, target: str | None, max_rows: int | None = None,
    check_header: Callable[[list[str]], object] | None = None,
) -> tuple[NDArray[np.float64], list[str], list[str]]:
    """Every column but ``target`` as numbers, the ``target`` cells as text, and the feature names;
    ``check_header`` sees the feature columns' names before any row is read."""
    def keep(name: str) -> bool:
        return name != target

    try:
        return _parse(_text(data), keep, target, max_rows, check_header)
    except csv.Error as exc:
        raise InvalidInputError(f"the CSV cannot be parsed: {exc}") from None


def _read_selected(
    data: bytes | str, keep: Callable[[str], bool], max_rows: int | None
) -> tuple[NDArray[np.float64], list[str]]:
    """The columns whose names ``keep`` accepts, as numbers, and their names."""
    try:
        X, _, names = _parse(_text(data), keep, None, max_rows, None)
    except csv.Error as exc:
        raise InvalidInputError(f"the CSV cannot be parsed: {exc}") from None
    return X, names


def _parse(
    text: str, keep: Callable[[str], bool], target: str | None, max_rows: int | None,
    check_header: Callable[[list[str]], object] | None,
) -> tuple[NDArray[np.float64], list[str], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInputError("the CSV is empty: it needs a header row and data rows") from None
    header = [h.strip() for h in header]
    if target is not None and target not in header:
        raise InvalidInputError(f"target column {target!r} is not in the CSV header {preview(header)}")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise InvalidInputError(f"the CSV header repeats column(s) {preview(dupes)}")
    t = header.index(target) if target is not None else -1
    columns = [i for i, h in enumerate(header) if keep(h)]
    names = [header[i] for i in columns]
    if check_header is not None:
        check_header(names)
    rows: list[list[float]] = []
    raw_labels: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        check_row_limit(len(rows) + 1, max_rows, "csv")  # refused at the first row past the limit
        if len(row) != len(header):
            raise InvalidInputError(f"CSV line {line_no} has {len(row)} fields, the header has {len(header)}")
        values = []
        for i in columns:
            cell = row[i]
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


def _labels(raw: list[str]) -> NDArray[Any]:
    """Integer labels when every cell is an integer (``1``, ``0.0``), else the strings as given."""
    try:
        as_float = [float(v) for v in raw]
        if all(f.is_integer() and abs(f) < 2**63 for f in as_float):
            return np.asarray([int(f) for f in as_float], dtype=np.int64)
    except ValueError:
        pass
    return np.asarray(raw)
