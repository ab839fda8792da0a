"""A table's partitions as the engine's blocks, where they are: what the workers of a cluster run on their
partitions of a data frame (:mod:`service.services.distributed` sends them these functions by name).

Each step keeps the rules of the one-process reader (:mod:`.tables`): features are numbers, every cell
present and finite (a mixed-type table, with text, booleans or empty cells in feature columns, is refused:
its encoding is fitted in one process); labels are ints, bools or strings, integers written as text become
ints, and a missing label is refused. Errors name the partition (and the column), since a worker sees no
other part of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..engine._partitioned import Block
from ..engine.logistic import stratified_split
from ..errors import InvalidInputError
from .matrix import MISSING_LABELS

#: What a table with such a column is called in errors, and what to do instead.
MIXED_HINT = ("a mixed-type table (text, booleans or empty cells in feature columns) is encoded in one process, "
              "not on Dask: train it with \"compute\": \"local\"")


@dataclass
class RawPart:
    """One partition read: features as float64 ``(n, d)`` and the labels as read (ints, bools or strings)."""

    X: NDArray[np.float64]
    labels: NDArray[Any]


@dataclass
class HeldOut:
    """A partition's validation rows: features, class codes and their positions in the table."""

    X: NDArray[np.float64]
    y: NDArray[np.intp]
    positions: NDArray[np.int64]


@dataclass
class SplitPart:
    """A partition cut into its training rows (a block of the engine) and its validation rows."""

    train: Block
    held_out: HeldOut


def read_part(frame: Any, features: list[str], target: str, where: str) -> RawPart:
    """The features and labels of a data-frame partition, checked (see the module docstring)."""
    try:
        X = np.ascontiguousarray(frame[features].to_numpy(dtype=np.float64, na_value=np.nan))
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{where}: a feature column does not hold numbers ({exc}); {MIXED_HINT}") from None
    finite = np.isfinite(X)
    if not finite.all():
        j = int(np.flatnonzero(~finite.all(axis=0))[0])
        bad = X[~finite[:, j], j][0]
        what = "an empty (missing) cell" if np.isnan(bad) else f"the value {bad}"
        hint = MIXED_HINT if np.isnan(bad) else "use finite numbers"
        raise InvalidInputError(f"{where}: column {features[j]!r} holds {what}; {hint}", {"column": features[j]})
    return RawPart(X, _labels(frame[target], target, where))


def _labels(column: Any, target: str, where: str) -> NDArray[Any]:
    import pandas as pd  # on the workers, which read with dask.dataframe (pandas); never in the service's path

    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) and not column.isna().any():
        return column.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype) and not column.isna().any():
        return column.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(values).any():
            raise _missing_label(target, where)
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise InvalidInputError(f"the labels ({target!r}) of {where} are fractional numbers: use ints, bools "
                                    "or strings", {"column": target})
        return values.astype(np.int64)
    if column.isna().any():
        raise _missing_label(target, where)
    text = np.char.strip(column.astype(str).to_numpy(dtype=str))
    if np.isin(np.char.lower(text), MISSING_LABELS).any():
        raise _missing_label(target, where)
    return text


def _missing_label(target: str, where: str) -> InvalidInputError:
    return InvalidInputError(f"{where}: a label ({target!r}) is missing: every row needs a class", {"column": target})


def label_counts(part: RawPart) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """The distinct labels of a partition and the rows of each."""
    values, counts = np.unique(part.labels, return_counts=True)
    return values, counts.astype(np.int64)


def label_codes(values: list[NDArray[Any]]) -> tuple[NDArray[Any], dict[Any, int]]:
    """The classes of a table whose partitions hold the distinct labels ``values`` (one array per partition),
    and the code of each label as read: labels written as integers (``1``, ``0.0``) are ints, as the
    one-process reader makes them."""
    kinds = {"bool" if v.dtype == bool else "int" if v.dtype.kind in "iu" else "str" for v in values if v.size}
    if len(kinds) > 1:
        raise InvalidInputError(f"the labels mix kinds across the table's parts ({sorted(kinds)}); use one kind")
    kind = kinds.pop() if kinds else "str"
    raw = np.unique(np.concatenate([np.asarray(v) for v in values]))
    if kind != "str":
        return raw, {v.item(): i for i, v in enumerate(raw)}
    as_int = _integers(raw)
    if as_int is None:
        return raw, {str(v): i for i, v in enumerate(raw)}
    classes = np.unique(as_int)
    return classes, {str(v): int(np.searchsorted(classes, i)) for v, i in zip(raw, as_int, strict=True)}


def _integers(text: NDArray[np.str_]) -> NDArray[np.int64] | None:
    """The labels as ints when every one is written as an integer, else None."""
    out = np.empty(text.size, dtype=np.int64)
    for i, v in enumerate(text.tolist()):
        if "_" in v:  # Python reads 1_000 as an int; the one-process reader (Arrow) does not
            return None
        try:
            out[i] = int(v)
            continue
        except ValueError:
            pass
        try:
            f = float(v)
        except ValueError:
            return None
        if not (np.isfinite(f) and f == round(f) and abs(f) < 2**63):
            return None
        out[i] = int(f)
    return out


def held_out_counts(counts: NDArray[np.int64], fraction: float) -> NDArray[np.int64]:
    """Rows of each class a partition holds out for validation (:func:`split_part` takes this many): the
    rule of :func:`~service.engine.logistic.stratified_split`, within the partition."""
    if fraction <= 0:
        return np.zeros_like(counts)
    return np.array([min(round(fraction * c), c - 1) if c else 0 for c in counts.tolist()], dtype=np.int64)


def split_part(part: RawPart, index: int, position: int, train_offset: int, codes: dict[Any, int], fraction: float,
               seed: int) -> SplitPart:
    """A partition's rows as class codes, cut into training and validation rows by a stratified split seeded
    by ``(seed, index)``. ``position``: of its first row in the table; ``train_offset``: of its first training
    row among the training rows of the table."""
    keys = np.asarray(list(codes))
    order = np.argsort(keys)
    values = np.asarray(list(codes.values()), dtype=np.intp)[order]
    labels = part.labels.astype(str) if keys.dtype.kind == "U" else part.labels
    y = values[np.searchsorted(keys[order], labels)]
    n = y.shape[0]
    if fraction > 0:
        train_idx, val_idx = stratified_split(y, fraction, np.random.default_rng([seed, index]))
        train = Block(part.X[train_idx], y[train_idx], train_offset)
        held = HeldOut(part.X[val_idx], y[val_idx], position + val_idx.astype(np.int64))
    else:
        train = Block(part.X, y, train_offset)
        held = HeldOut(part.X[:0], y[:0], np.zeros(0, dtype=np.int64))
    if train.y.shape[0] + held.y.shape[0] != n:
        raise AssertionError("split lost rows")
    return SplitPart(train, held)


def train_block(part: SplitPart) -> Block:
    return part.train


def held_out(part: SplitPart) -> HeldOut:
    return part.held_out


def row_count(part: Any) -> int:
    return int(part.y.shape[0])


def min_max(block: Block) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Per-feature least and greatest values; None for a block without rows."""
    if block.X.shape[0] == 0:
        return None
    return block.X.min(axis=0), block.X.max(axis=0)


def sample_rows(rows: Block | HeldOut, index: int, keep: float, seed: int
                ) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.int64] | None]:
    """A seeded share ``keep`` of a partition's rows (all of them when ``keep >= 1``): features, class codes
    and, for validation rows, their positions in the table."""
    n = rows.y.shape[0]
    positions = getattr(rows, "positions", None)
    if keep >= 1 or n == 0:
        return rows.X, rows.y, positions
    idx = np.sort(np.random.default_rng([seed, index]).choice(n, round(keep * n), replace=False))
    return rows.X[idx], rows.y[idx], None if positions is None else positions[idx]
