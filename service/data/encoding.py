"""The preprocessing stored with a version: missing numbers imputed (and flagged), numbers standardized,
categories one-hot encoded with rare ones grouped; fitted state as plain arrays and lists, never code.

It reproduces scikit-learn's ``ColumnTransformer`` of ``SimpleImputer`` (+ ``add_indicator``) and
``StandardScaler`` for numbers and booleans, and ``OneHotEncoder(handle_unknown=..., min_frequency=...,
max_categories=...)`` for categories (missing categories as their own level, or ``SimpleImputer``'s
``most_frequent`` first): the same columns, the same values, so a logistic regression on the output minimizes
the same objective. One-hot columns are not rescaled.

Input is the caller's columns as numbers (:mod:`.columns`); output is the model's matrix, dense or
``scipy.sparse`` CSR, whichever is smaller. Layout: the numeric columns, their missing indicators, then each
categorical column's levels (sorted; the missing level last; then the infrequent group).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..domain import EncodingParams, preview
from ..errors import InvalidInputError
from .columns import UNKNOWN, Columns

Matrix = NDArray[np.float64] | sp.csr_array
#: The name of the level that holds missing categories, and of the group of infrequent ones.
MISSING_LEVEL = "(missing)"
INFREQUENT_LEVEL = "(infrequent)"


@dataclass
class NumericColumn:
    """A numeric or boolean column: its fill for missing cells, its scaling and whether it is flagged."""

    name: str
    index: int  # position among the caller's columns
    kind: str
    fill: float
    mean: float = 0.0
    scale: float = 1.0
    indicator: bool = False
    indicator_mean: float = 0.0
    indicator_scale: float = 1.0


@dataclass
class CategoricalColumn:
    """A categorical column: its known categories (sorted) and the output column of each code."""

    name: str
    index: int
    categories: list[str]
    counts: list[int]
    has_missing_level: bool
    missing_count: int
    infrequent: list[str]
    levels: list[str]  # output column labels: frequent categories, then the missing level, then the group
    # output column (relative to the block) of each code; the entry after the categories is the missing cell's
    code_to_level: list[int] = field(default_factory=list)
    unknown_level: int = -1  # -1: an unknown category sets no column

    def level_of(self, codes: NDArray[np.float64]) -> NDArray[np.intp]:
        """The output column (in the block) of each cell; -1 for none."""
        lookup = np.asarray([*self.code_to_level, self.unknown_level], dtype=np.intp)
        idx = np.where(np.isnan(codes), len(self.categories), codes)
        idx = np.where(idx == UNKNOWN, len(self.categories) + 1, idx).astype(np.intp)
        return lookup[idx]


@dataclass
class TableEncoder:
    """Fitted preprocessing of a table (see the module docstring)."""

    names: list[str]
    kinds: dict[str, str]
    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]
    params: dict[str, Any]
    standardize: bool
    sparse: bool = False
    output_means: list[float] = field(default_factory=list)  # training mean of each output column

    # -- shape of the output -------------------------------------------------------------------------------
    @property
    def n_indicators(self) -> int:
        return sum(c.indicator for c in self.numeric)

    @property
    def width(self) -> int:
        return len(self.numeric) + self.n_indicators + sum(len(c.levels) for c in self.categorical)

    def output_names(self) -> list[str]:
        """A name per output column: ``age``, ``age (missing)``, ``plan=basic``, ``plan (infrequent)``."""
        names = [c.name for c in self.numeric]
        names += [f"{c.name} {MISSING_LEVEL}" for c in self.numeric if c.indicator]
        for c in self.categorical:
            names += [f"{c.name} {level}" if level in (MISSING_LEVEL, INFREQUENT_LEVEL) else f"{c.name}={level}"
                      for level in c.levels]
        return names

    def groups(self) -> NDArray[np.intp]:
        """The caller's column (its position in :attr:`names`) of each output column."""
        out = [c.index for c in self.numeric] + [c.index for c in self.numeric if c.indicator]
        for c in self.categorical:
            out += [c.index] * len(c.levels)
        return np.asarray(out, dtype=np.intp)

    def offsets(self) -> list[int]:
        """The first output column of each categorical column's block."""
        start = len(self.numeric) + self.n_indicators
        out = []
        for c in self.categorical:
            out.append(start)
            start += len(c.levels)
        return out

    # -- transform --------------------------------------------------------------------------------------------
    def numeric_block(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The numeric columns and their indicators, imputed and scaled: ``(n, numeric + indicators)``."""
        n = X.shape[0]
        out = np.empty((n, len(self.numeric) + self.n_indicators))
        k = len(self.numeric)
        for j, c in enumerate(self.numeric):
            values = X[:, c.index]
            missing = np.isnan(values)
            column = np.where(missing, c.fill, values) if missing.any() else values
            out[:, j] = (column - c.mean) / c.scale
            if c.indicator:
                out[:, k] = (missing - c.indicator_mean) / c.indicator_scale
                k += 1
        return out

    def levels(self, X: NDArray[np.float64]) -> NDArray[np.intp]:
        """The output column of each categorical cell (absolute; -1 for none): ``(n, categorical columns)``."""
        out = np.empty((X.shape[0], len(self.categorical)), dtype=np.intp)
        for j, (c, offset) in enumerate(zip(self.categorical, self.offsets(), strict=True)):
            level = c.level_of(X[:, c.index])
            out[:, j] = np.where(level >= 0, level + offset, -1)
        return out

    def transform(self, X: NDArray[np.float64], sparse: bool | None = None) -> Matrix:
        """The model's matrix for the caller's columns ``X`` (as :mod:`.columns` gives them)."""
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise InvalidInputError(f"{X.shape[1] if X.ndim == 2 else 0} columns for an encoding of "
                                    f"{len(self.names)} ({preview(self.names)})")
        sparse = self.sparse if sparse is None else sparse
        dense_part = self.numeric_block(X)
        levels = self.levels(X)
        n, p = dense_part.shape
        if not sparse:
            out = np.zeros((n, self.width))
            out[:, :p] = dense_part
            rows, cats = np.nonzero(levels >= 0)
            out[rows, levels[rows, cats]] = 1.0
            return out
        cols = np.empty((n, p + levels.shape[1]), dtype=np.intp)
        cols[:, :p] = np.arange(p)
        cols[:, p:] = levels
        values = np.ones(cols.shape)
        values[:, :p] = dense_part
        keep = cols >= 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(keep.sum(axis=1), out=indptr[1:])
        return sp.csr_array((values[keep], cols[keep].astype(np.int32), indptr), shape=(n, self.width))

    def drift_view(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The caller's columns as drift statistics see them: missing numbers as their fill, a missing category
        as the code after the known ones (unknown categories stay -1, below every training value)."""
        out = X.copy()
        for c in self.numeric:
            column = out[:, c.index]
            column[np.isnan(column)] = c.fill
        for cat in self.categorical:
            column = out[:, cat.index]
            column[np.isnan(column)] = len(cat.categories)
        return out

    def unknown_counts(self, X: NDArray[np.float64]) -> dict[str, int]:
        """Cells per categorical column that hold a category training never saw (only columns with some)."""
        out = {}
        for c in self.categorical:
            count = int(np.count_nonzero(X[:, c.index] == UNKNOWN))
            if count:
                out[c.name] = count
        return out

    # -- what the card shows ----------------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """Each caller column's kind and encoding, in the caller's column order."""
        by_index: dict[int, dict[str, Any]] = {}
        for c in self.numeric:
            by_index[c.index] = {
                "name": c.name, "kind": c.kind, "encoding": "standardized" if self.standardize else "as is",
                "missing": f"{self.params['impute']} ({c.fill:g})", "fill": c.fill, "missing_indicator": c.indicator,
                "mean": c.mean, "scale": c.scale,
            }
        for cat in self.categorical:
            by_index[cat.index] = {
                "name": cat.name, "kind": "categorical", "encoding": "one-hot",
                "categories": len(cat.categories), "levels": cat.levels, "infrequent": cat.infrequent[:100],
                "n_infrequent": len(cat.infrequent),
                "missing": ("a level of its own" if cat.has_missing_level else
                            "most frequent" if self.params["missing_category"] == "most_frequent" else
                            "unknown (none in training)"),
                "unknown": "infrequent column" if cat.unknown_level >= 0 else "all zeros",
            }
        return [by_index[j] for j in range(len(self.names))]


def _infrequent(counts: NDArray[np.int64], n_rows: int, min_frequency: float | None,
                max_categories: int | None) -> NDArray[np.bool_]:
    """Which levels are infrequent, as scikit-learn's ``OneHotEncoder`` decides it."""
    mask = np.zeros(counts.size, dtype=bool)
    if min_frequency is not None:
        limit = min_frequency if min_frequency >= 1 else min_frequency * n_rows
        mask = counts < limit
    kept = counts.size - int(mask.sum()) + 1
    if max_categories is not None and max_categories < kept:
        frequent = max_categories - 1
        if frequent == 0:
            mask[:] = True
        else:
            mask[np.argsort(counts, kind="mergesort")[:-frequent]] = True
    return mask


def fit_encoder(
    X: NDArray[np.float64], columns: Columns, params: EncodingParams, standardize: bool,
    train_rows: NDArray[np.intp] | None = None,
) -> TableEncoder:
    """Fit on the rows ``train_rows`` of ``X`` (all rows when None), whose categorical codes index
    ``columns.categories`` in the order they were first seen. Recodes ``X`` in place (every row) to the encoder's
    sorted categories; a category seen only outside the training rows becomes unknown."""
    train = X if train_rows is None else X[train_rows]
    n = train.shape[0]
    numeric, categorical = [], []
    for j, name in enumerate(columns.names):
        kind = columns.kind(name)
        values = train[:, j]
        missing = np.isnan(values)
        if missing.all():
            raise InvalidInputError(f"column {name!r} has no values in the training rows (every cell is missing); "
                                    "leave it out", {"column": name})
        if kind != "categorical":
            present = values[~missing]
            fill = float(np.median(present) if params.impute == "median" else present.mean())
            col = NumericColumn(name, j, kind, fill, indicator=bool(params.missing_indicator and missing.any()))
            if standardize:
                filled = np.where(missing, fill, values)
                col.mean, col.scale = _mean_scale(filled)
                if col.indicator:
                    col.indicator_mean, col.indicator_scale = _mean_scale(missing.astype(np.float64))
            numeric.append(col)
            continue
        seen = columns.categories[name]
        codes = values[~missing].astype(np.intp)
        counts_by_code = np.bincount(codes, minlength=len(seen))
        present_codes = np.flatnonzero(counts_by_code)
        order = sorted(present_codes.tolist(), key=lambda c: seen[c])
        cats = [seen[c] for c in order]
        counts = counts_by_code[order].astype(np.int64)
        recode = np.full(len(seen), UNKNOWN)
        recode[order] = np.arange(len(order))
        column = X[:, j]
        known = ~np.isnan(column)
        column[known] = recode[column[known].astype(np.intp)]
        n_missing = int(missing.sum())
        most_frequent = params.missing_category == "most_frequent"
        level_counts = counts.copy()
        has_missing_level = n_missing > 0 and not most_frequent
        if most_frequent and n_missing:
            level_counts[int(np.argmax(counts))] += n_missing  # the imputer runs before the counts
        if has_missing_level:
            level_counts = np.append(level_counts, n_missing)
        infrequent = _infrequent(level_counts, n, params.min_frequency, params.max_categories)
        labels = [*cats, *([MISSING_LEVEL] if has_missing_level else [])]
        frequent_idx = np.flatnonzero(~infrequent)
        levels = [labels[i] for i in frequent_idx]
        position = np.full(len(labels), -1)
        position[frequent_idx] = np.arange(frequent_idx.size)
        group = -1
        if infrequent.any():
            group = len(levels)
            levels.append(INFREQUENT_LEVEL)
            position[infrequent] = group
        code_to_level = position[: len(cats)].tolist()
        if has_missing_level:
            code_to_level.append(int(position[len(cats)]))
        elif most_frequent:
            code_to_level.append(int(position[int(np.argmax(counts))]))
        else:
            code_to_level.append(group if params.unknown == "infrequent" else -1)  # missing, never seen: unknown
        categorical.append(CategoricalColumn(
            name, j, cats, counts.tolist(), has_missing_level, n_missing,
            [labels[i] for i in np.flatnonzero(infrequent)], levels, code_to_level,
            group if params.unknown == "infrequent" else -1,
        ))
    encoder = TableEncoder(list(columns.names), dict(columns.kinds), numeric, categorical,
                           params.model_dump(), standardize)
    nnz = len(numeric) + encoder.n_indicators + len(categorical)
    encoder.sparse = encoder.width * 8 > nnz * 12 + 8  # CSR takes 12 bytes a value and 8 a row
    encoder.output_means = _output_means(encoder, X if train_rows is None else X[train_rows])
    return encoder


def _mean_scale(values: NDArray[np.float64]) -> tuple[float, float]:
    mean = float(values.mean())
    scale = float(np.sqrt(np.mean((values - mean) ** 2)))
    return mean, scale if scale > 0 else 1.0


def _output_means(encoder: TableEncoder, X: NDArray[np.float64]) -> list[float]:
    """The training mean of each output column: the explanations' baseline."""
    means = np.zeros(encoder.width)
    p = len(encoder.numeric) + encoder.n_indicators
    means[:p] = encoder.numeric_block(X).mean(axis=0)
    levels = encoder.levels(X)
    hit = levels[levels >= 0]
    means[p:] = np.bincount(hit, minlength=encoder.width)[p:] / max(1, X.shape[0])
    return means.tolist()


class EncodedModel:
    """A model on a mixed-type table: the encoding, then the estimator (the engine's, or a calibrated one).

    It takes the caller's columns as :mod:`.columns` gives them and answers like the estimator; what the
    explanations need (coefficients, baseline) is in the encoder's output space.
    """

    def __init__(self, encoder: TableEncoder, estimator: Any) -> None:
        self.encoder = encoder
        self.estimator = estimator

    def __getstate__(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "estimator": self.estimator}  # not the columns cache: it is rebuilt

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.encoder = state["encoder"]
        self.estimator = state["estimator"]

    @property
    def classes_(self) -> NDArray[Any]:
        return self.estimator.classes_

    @property
    def n_features_in_(self) -> int:
        return len(self.encoder.names)

    def columns(self) -> Columns:
        """How requests' cells become values for this model: its kinds and its (fixed) categories (built once
        per loaded model, then shared: it is read-only)."""
        cached = self.__dict__.get("_columns")
        if cached is None:
            cached = self.__dict__["_columns"] = Columns(
                self.encoder.names, self.encoder.kinds, {c.name: c.categories for c in self.encoder.categorical})
        return cached

    def predict_proba(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.estimator.predict_proba(self.encoder.transform(X))

    def decision_function(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.estimator.decision_function(self.encoder.transform(X))

    def predict(self, X: NDArray[np.float64], threshold: float | None = None) -> NDArray[Any]:
        return self.estimator.predict(self.encoder.transform(X), threshold)


def raw_coefficients(encoder: TableEncoder, coef: NDArray[np.float64], intercept: NDArray[np.float64]
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Coefficients per output column in the caller's units (numbers per unit, not per standard deviation;
    indicators and levels as they are) and the intercepts that go with them."""
    coef = np.array(coef, dtype=np.float64)
    intercept = np.array(intercept, dtype=np.float64)
    k = len(encoder.numeric)
    scales = np.array([c.scale for c in encoder.numeric] + [c.indicator_scale for c in encoder.numeric
                                                            if c.indicator])
    means = np.array([c.mean for c in encoder.numeric] + [c.indicator_mean for c in encoder.numeric
                                                          if c.indicator])
    p = k + encoder.n_indicators
    if p:
        coef[:, :p] /= scales
        intercept -= coef[:, :p] @ means
    return coef, intercept
