"""The matrix a reader fills, batch by batch, within the limits of a read; and what the readers share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError
from .columns import Columns
from .matrix import MISSING_LABELS, check_matrix_size, check_row_limit, column_order
from .scratch import ScratchMatrix

#: Rows copied at a time when a matrix moves from memory to a scratch file.
_COPY_ROWS = 16_384
#: Called as ``progress(rows_read, bytes_read)`` after each batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Table:
    """What a read gives: the features (float64, C order), the labels (ints, bools or strings) and the names;
    for a mixed-type read, how each column became numbers (:class:`~.columns.Columns`)."""

    X: NDArray[np.float64]
    labels: NDArray[Any] | None
    feature_names: list[str]
    columns: Columns | None = None
    scratch: ScratchMatrix | None = None  # where X lives when it did not fit the memory budget; close it after

    def close(self) -> None:
        """Remove the scratch file of a table read to disk (nothing for one in memory)."""
        if self.scratch is not None:
            self.scratch.close()


@dataclass(frozen=True, slots=True)
class Limits:
    """What a read may hold: rows (scoring), bytes of the matrix and labels (training), and the setting that
    says so."""

    max_rows: int | None = None
    max_bytes: int | None = None
    bytes_setting: str = "LOGREG_MAX_TRAIN_BYTES"
    #: A matrix larger than this goes to a file in ``scratch_dir`` instead of memory (training out of core).
    memory_bytes: int | None = None
    scratch_dir: Path | None = None


def first_missing_label(labels: pa.Array) -> int | None:
    """The position of the first label that is missing: null, empty, or text such as ``nan`` (any case)."""
    if labels.null_count:
        return int(pc.index(pc.is_null(labels), True).as_py())
    if not (pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type)):
        if pa.types.is_floating(labels.type):
            bad = pc.is_nan(labels)
            return int(pc.index(bad, True).as_py()) if pc.any(bad).as_py() else None
        return None
    text = pc.utf8_lower(pc.utf8_trim_whitespace(labels))
    bad = pc.is_in(text, value_set=pa.array(MISSING_LABELS))
    return int(pc.index(bad, True).as_py()) if pc.any(bad).as_py() else None


def label_bytes(labels: pa.Array) -> int:
    """What a batch of labels will take once they are a numpy array: 8 bytes a number, 4 a character of the
    longest string (numpy's fixed-width text)."""
    if pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type):
        longest = pc.max(pc.utf8_length(labels)).as_py() or 0
        return len(labels) * 4 * max(1, longest)
    return len(labels) * 8


class Sink:
    """The matrix being filled batch by batch, the labels, and the limits on both."""

    def __init__(self, names: list[str], columns: list[str], limits: Limits) -> None:
        self.names = names  # feature names, in the order of the matrix
        self.columns = columns  # the source's columns, in the source's order, for later files to match
        self.limits = limits
        self.label_bytes = 0  # what the labels will take as a numpy array, counted in the size limit
        self.X = np.empty((0, len(names)))
        self._buffer = np.empty((len(names), 0))
        self.rows = 0
        self.labels: list[pa.Array] = []
        self.scratch: ScratchMatrix | None = None
        self.kinds: Columns | None = None  # a mixed-type read: how cells become values, shared by every file

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all (growing by a quarter at least, so appends stay cheap), never
        more than the limits allow."""
        d = max(1, len(self.names))
        most = [m for m in (self.limits.max_rows, self.limits.max_bytes and self.limits.max_bytes // (8 * d)) if m]
        rows = min(rows, *(m + 1 for m in most)) if most else rows
        if rows <= self.X.shape[0]:
            return
        capacity = max(rows, int(self.X.shape[0] * 1.25))
        limits = self.limits
        if (self.scratch is None and limits.memory_bytes is not None and limits.scratch_dir is not None
                and capacity * d * 8 > limits.memory_bytes):
            self.scratch = ScratchMatrix(limits.scratch_dir, len(self.names))
            on_disk = self.scratch.resize(capacity)
            for start in range(0, self.rows, _COPY_ROWS):  # what was read so far, a block at a time
                on_disk[start : start + _COPY_ROWS] = self.X[start : min(self.rows, start + _COPY_ROWS)]
            self.X = on_disk
        elif self.scratch is not None:
            self.X = self.scratch.resize(capacity)
        elif self.X.shape[0] == 0:
            self.X = np.empty((capacity, len(self.names)))
        else:
            self.X.resize((capacity, len(self.names)), refcheck=False)

    def append(self, values: Sequence[NDArray[Any]], labels: pa.Array | None) -> None:
        k = len(values[0]) if values else 0
        check_row_limit(self.rows + k, self.limits.max_rows, "csv")
        if labels is not None:
            self.label_bytes += label_bytes(labels)
        check_matrix_size(self.rows + k, len(self.names), self.limits.max_bytes, self.limits.bytes_setting,
                          self.label_bytes)
        self.reserve(self.rows + k)
        # Columns are laid out in a (features, rows) buffer, then written to the rows in one transposed copy:
        # writing each column straight into the row-major matrix strides through memory and is 3x slower.
        if self._buffer.shape[1] < k:
            self._buffer = np.empty((len(self.names), k))
        buffer = self._buffer[:, :k]
        for j, column in enumerate(values):
            buffer[j] = column
        self.X[self.rows : self.rows + k] = buffer.T
        if labels is not None:
            self.labels.append(labels)
        self.rows += k

    def table(self, labels: NDArray[Any] | None = None) -> Table:
        """The table read, with ``labels`` made from :attr:`labels` by the reader that knows their type."""
        if self.rows == 0:
            raise InvalidInputError("the data has a header but no data rows")
        if self.scratch is not None:
            self.X = self.scratch.resize(self.rows)
        elif self.X.shape[0] != self.rows:
            self.X.resize((self.rows, len(self.names)), refcheck=False)  # in place: frees the tail
        return Table(self.X, labels, self.names, self.kinds, self.scratch)


def select_columns(
    columns: list[str], target: str | None, features: Sequence[str] | None, ignore_extra: bool, where: str
) -> list[str]:
    """The feature columns to read, in the matrix's order, after checking the header."""
    if target is not None and target not in columns:
        raise InvalidInputError(f"target column {target!r} is not in {where}'s columns {preview(columns)}",
                                {"field": "target"})
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise InvalidInputError(f"{where}'s header repeats column(s) {preview(dupes)}", {"repeated": dupes})
    available = [c for c in columns if c != target]
    if features is None:
        if not available:
            raise InvalidInputError(f"{where} has no feature columns besides the target" if target is not None
                                    else f"{where} has no columns")
        return available
    if ignore_extra:
        missing = [f for f in features if f not in available]
        if missing:
            column_order([c for c in available if c in features], features, f"{where}'s header")
        return list(features)
    column_order(available, features, f"{where}'s header")  # a 422 naming the missing and unknown columns
    return list(features)


def first_non_finite(values: Sequence[NDArray[np.float64]]) -> tuple[int, int] | None:
    for j, column in enumerate(values):
        finite = np.isfinite(column)
        if not finite.all():
            return int(np.argmin(finite)), j
    return None


def first_infinite(values: Sequence[NDArray[np.float64]]) -> tuple[int, int] | None:
    """The (row, column) of the first infinity, where NaN stands for a missing cell."""
    for j, column in enumerate(values):
        infinite = np.isinf(column)
        if infinite.any():
            return int(np.argmax(infinite)), j
    return None
