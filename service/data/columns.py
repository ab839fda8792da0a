"""The caller's columns as numbers: what a mixed-type table (numbers, booleans, text categories, empty cells)
becomes before a model's encoding reads it.

One float64 value per cell, so a table of any kinds is one matrix that readers fill batch by batch, that
drift statistics bin and that explanations read:

- ``numeric``: the number; ``NaN`` where the cell is missing;
- ``boolean``: 1.0 or 0.0; ``NaN`` where missing;
- ``categorical``: the category's code, its position in :attr:`Columns.categories` of the column; ``NaN``
  where missing and :data:`UNKNOWN` for a category the list does not hold (at prediction: one training
  never saw).

While training, categories are collected in the order they are first seen (``grow``); a fitted encoding
holds them sorted and fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ..domain import COLUMN_KINDS, MAX_CATEGORIES_PER_COLUMN, preview
from ..errors import InvalidInputError, LimitExceededError

#: The code of a category the column's list does not hold.
UNKNOWN = -1.0

_ARROW_TYPES = {"numeric": pa.float64(), "boolean": pa.bool_(), "categorical": pa.string()}


def category_text(value: Any) -> str:
    """A JSON category value as text: strings as they are, integral numbers without a decimal point (``7``,
    ``7.0`` -> ``"7"``, as a CSV cell reads), other numbers as Python writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def json_kind(values: Sequence[Any], name: str, where: str) -> str:
    """The kind of a JSON column from its values' types; a 422 when it mixes text with numbers or booleans."""
    cells = (str, int, float, bool)
    seen = {type(v) for v in values if v is not None}
    if not seen <= set(cells):
        row, odd = next((i, v) for i, v in enumerate(values) if v is not None and type(v) not in cells)
        raise InvalidInputError(f"{where}: column {name!r}, row {row} holds {odd!r}: a cell is a number, text, a "
                                "boolean or null", {"column": name, "row": row})
    if not seen:
        raise InvalidInputError(f"{where}: column {name!r} holds no values (every cell is missing)",
                                {"column": name})
    if seen == {bool}:
        return "boolean"
    if seen <= {int, float}:
        return "numeric"
    if seen == {str}:
        return "categorical"
    def label(t: type) -> str:
        return "text" if t is str else "booleans" if t is bool else "numbers" if t in (int, float) else t.__name__

    kinds = sorted({label(t) for t in seen})
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    first = label(type(present[0][1]))
    row, odd = next((i, v) for i, v in present if label(type(v)) != first)
    raise InvalidInputError(
        f"{where}: column {name!r} mixes {' and '.join(kinds)} (row {row} holds {odd!r}, row {present[0][0]} "
        f"{present[0][1]!r}); send one kind per column, or name it in `encoding.categorical` to read every value "
        "as a category", {"column": name, "row": row})


def arrow_kind(kind: pa.DataType, name: str, where: str) -> str:
    """The kind of a column from its Arrow type (a CSV's inferred one, a Parquet file's stored one)."""
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return "numeric"  # null: empty in the rows looked at; numbers are the likelier kind
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return "categorical"
    raise InvalidInputError(f"column {name!r} of {where} holds {kind}: use numbers, booleans or text",
                            {"column": name})


class Columns:
    """How each feature column's cells become float64 values (see the module docstring)."""

    def __init__(self, names: Sequence[str], kinds: Mapping[str, str], categories: Mapping[str, Sequence[str]]
                 | None = None, *, grow: bool = False) -> None:
        self.names = list(names)
        self.kinds = dict(kinds)
        bad = sorted(n for n, k in self.kinds.items() if k not in COLUMN_KINDS)
        if bad:
            raise InvalidInputError(f"unknown column kind for {preview(bad)}; use one of {list(COLUMN_KINDS)}")
        self.grow = grow
        self.categories: dict[str, list[str]] = {n: list((categories or {}).get(n, ())) for n in self.names
                                                 if self.kinds.get(n) == "categorical"}
        self._codes = {n: {c: i for i, c in enumerate(cats)} for n, cats in self.categories.items()}
        self._value_sets = {n: pa.array(cats, pa.string()) for n, cats in self.categories.items()}

    @classmethod
    def settle(cls, names: Sequence[str], declared: Mapping[str, str], inferred: Mapping[str, str]) -> Columns:
        """Columns for a training read: the kinds the caller declared, else the ones inferred from the data."""
        unknown = sorted(set(declared) - set(names))
        if unknown:
            raise InvalidInputError(f"the encoding names column(s) {preview(unknown)}, which the data does not have; "
                                    f"its columns are {preview(list(names))}", {"unknown": unknown})
        return cls(names, {n: declared.get(n) or inferred[n] for n in names}, grow=True)

    def kind(self, name: str) -> str:
        return self.kinds[name]

    def arrow_types(self) -> dict[str, pa.DataType]:
        """The Arrow type each column is read as."""
        return {n: _ARROW_TYPES[self.kinds[n]] for n in self.names}

    # -- Arrow ------------------------------------------------------------------------------------------
    def from_arrow(self, name: str, array: pa.Array | pa.ChunkedArray, where: str, check_finite: bool = True
                   ) -> NDArray[np.float64]:
        """One column of a record batch as values (``check_finite=False``: the caller refuses infinities itself,
        naming the line)."""
        kind = self.kinds[name]
        if kind == "categorical":
            return self._codes_of(name, _as_text(array))
        if kind == "boolean":
            if not pa.types.is_boolean(array.type):
                raise InvalidInputError(f"{where}: column {name!r} is boolean; it holds {array.type}",
                                        {"column": name})
            values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        else:
            if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
                    or pa.types.is_decimal(array.type) or pa.types.is_null(array.type)):
                raise InvalidInputError(f"{where}: column {name!r} is numeric; it holds {array.type}",
                                        {"column": name})
            values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
            if check_finite:
                _check_finite(values, name, where)
        return np.asarray(values, dtype=np.float64)

    def _codes_of(self, name: str, text: pa.Array) -> NDArray[np.float64]:
        if self.grow:
            encoded = pc.dictionary_encode(text)
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.combine_chunks()
            codes = self._codes[name]
            known = self.categories[name]
            mapping = np.empty(len(encoded.dictionary), dtype=np.float64)
            for i, value in enumerate(encoded.dictionary.to_pylist()):
                code = codes.get(value)
                if code is None:
                    code = codes[value] = len(known)
                    known.append(value)
                mapping[i] = code
            if len(known) > MAX_CATEGORIES_PER_COLUMN:
                raise LimitExceededError(
                    f"column {name!r} has more than {MAX_CATEGORIES_PER_COLUMN} distinct categories; group them "
                    "(encoding.max_categories does so only after reading) or leave the column out",
                    {"column": name, "limit": MAX_CATEGORIES_PER_COLUMN})
            indices = encoded.indices.to_numpy(zero_copy_only=False)
            if encoded.null_count:
                valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
                out = np.full(len(encoded), np.nan)
                out[valid] = mapping[indices[valid].astype(np.intp)]
                return out
            return mapping[indices.astype(np.intp)]
        found = pc.index_in(text, value_set=self._value_sets[name])
        out = pc.cast(found, pa.float64()).to_numpy(zero_copy_only=False).copy()
        if found.null_count:
            out[np.isnan(out) & ~np.asarray(text.is_null().to_numpy(zero_copy_only=False))] = UNKNOWN
        return out

    # -- JSON -------------------------------------------------------------------------------------------
    def from_json(self, name: str, values: Sequence[Any], where: str) -> NDArray[np.float64]:
        """One column of JSON values (rows, records or a column) as values; a 422 naming the column and row of a
        value of another kind."""
        kind = self.kinds[name]
        if kind == "categorical":
            return self._json_codes(name, values, where)
        wanted: tuple[type, ...] = (bool,) if kind == "boolean" else (int, float)
        types = set(map(type, values))
        types.discard(type(None))
        bad = not types <= set(wanted)
        for i, v in enumerate(values if bad else ()):
            if v is not None and (v.__class__ not in wanted):
                raise InvalidInputError(
                    f"{where}: column {name!r} is {kind}; row {i} holds {v!r}"
                    + (" (text where numbers were trained: check the column, or retrain it as categorical)"
                       if isinstance(v, str) else ""),
                    {"column": name, "row": i, "expected": kind})
        try:
            out = np.array(values, dtype=np.float64)  # None becomes NaN
        except OverflowError:
            raise InvalidInputError(f"{where}: column {name!r} holds a number too large for float64",
                                    {"column": name}) from None
        if kind == "numeric":
            _check_finite(out, name, where)
        return out

    def _json_codes(self, name: str, values: Sequence[Any], where: str) -> NDArray[np.float64]:
        if not self.grow:
            types = set(map(type, values))
            if types <= {str, type(None)}:  # text and nulls: one lookup in Arrow
                return self._codes_of(name, pa.array(values, pa.string()))
        codes = self._codes[name]
        known = self.categories[name]
        out = np.empty(len(values))
        for i, v in enumerate(values):
            if v is None:
                out[i] = math.nan
                continue
            if v.__class__ is bool or not isinstance(v, (str, int, float)):
                raise InvalidInputError(f"{where}: column {name!r} is categorical; row {i} holds {v!r}: send "
                                        "text (or a number, for categories that are numbers)",
                                        {"column": name, "row": i, "expected": "categorical"})
            text = category_text(v)
            code = codes.get(text)
            if code is None:
                if self.grow:
                    code = codes[text] = len(known)
                    known.append(text)
                else:
                    code = UNKNOWN
            out[i] = code
        if self.grow and len(known) > MAX_CATEGORIES_PER_COLUMN:
            raise LimitExceededError(f"column {name!r} has more than {MAX_CATEGORIES_PER_COLUMN} distinct "
                                     "categories", {"column": name, "limit": MAX_CATEGORIES_PER_COLUMN})
        return out

    def json_matrix(self, columns: Sequence[Sequence[Any]], where: str) -> NDArray[np.float64]:
        """The matrix (rows, columns) from JSON columns in :attr:`names` order."""
        if not columns:
            return np.empty((0, 0))
        X = np.empty((len(columns[0]), len(self.names)))
        for j, (name, values) in enumerate(zip(self.names, columns, strict=True)):
            X[:, j] = self.from_json(name, values, where)
        return X


def _as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column of categories as strings (a category column stored as numbers reads as their text)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.cast(pa.string())
    if pa.types.is_floating(array.type):
        values = array.to_numpy(zero_copy_only=False)
        integral = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
        if integral[~np.isnan(values)].all():  # 7.0 reads as "7", as the JSON path and a CSV cell do
            array = pc.cast(pc.cast(array, pa.int64()), pa.string())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return array


def _check_finite(values: NDArray[np.float64], name: str, where: str) -> None:
    bad = np.isinf(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidInputError(f"{where}: column {name!r}, row {row}: {values[row]!r} is not finite",
                                {"column": name, "row": row})
