"""Parquet through pyarrow.parquet, part file by part file, a record batch at a time into the matrix.

pyarrow decodes a row group's column chunks as it reads its first batch, so a read holds the matrix plus
one row group (decoded): files written with smaller row groups cost less.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError
from .columns import Columns, arrow_kind
from .csv_reader import Plan, csv_labels
from .sink import Limits, Progress, Sink, Table, first_infinite, first_missing_label, first_non_finite, select_columns
from .sources import Files

#: Rows per record batch of a Parquet source.
PARQUET_BATCH_ROWS = 65_536


def read_parquet(
    files: Files, target: str | None, features: Sequence[str] | None, ignore_extra: bool, limits: Limits,
    progress: Progress | None, plan: Plan = None,
) -> Table:
    import pyarrow.parquet as pq  # here: only Parquet sources need it

    where = files.uri
    metadata = []
    try:  # the schema and row count of every part, one file open at a time
        for path in files.paths:
            with files.fs.open(path, "rb") as handle:
                metadata.append(pq.read_metadata(handle))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"{where} cannot be read as Parquet: {exc}") from None
    schema = metadata[0].schema.to_arrow_schema()
    for path, meta in zip(files.paths[1:], metadata[1:], strict=True):
        if not meta.schema.to_arrow_schema().equals(schema):
            raise InvalidInputError(f"{path} has other columns or types than the first part: "
                                    f"{preview([f'{f.name}: {f.type}' for f in meta.schema.to_arrow_schema()])}")
    names = select_columns(list(schema.names), target, features, ignore_extra, where)
    kinds = None
    if isinstance(plan, Columns):
        kinds = plan
    elif plan is not None:
        kinds = Columns.settle(names, plan, {n: arrow_kind(schema.field(n).type, n, where) for n in names})
    else:
        for name in names:
            kind = schema.field(name).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
                raise InvalidInputError(f"column {name!r} of {where} holds {kind}, not numbers", {"column": name})
    total = sum(meta.num_rows for meta in metadata)
    # The sink keeps the label chunks as they come; they are made an array by _parquet_labels, which knows
    # Parquet's types (the CSV path's _labels takes strings only).
    sink = Sink(names, list(schema.names), limits)
    sink.kinds = kinds
    sink.reserve(total)
    columns = [*names, *([target] if target is not None else [])]
    for path in files.paths:
        with files.fs.open(path, "rb") as handle:
            part = pq.ParquetFile(handle, pre_buffer=False)
            for batch in part.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
                _append_batch(sink, batch, names, target, where)
                if progress is not None:
                    progress(sink.rows, int(files.total_bytes * sink.rows / max(1, total)))
    return sink.table(_labels(sink.labels, target, where) if target is not None else None)


def _append_batch(sink: Sink, batch: pa.RecordBatch, names: Sequence[str], target: str | None,
                          where: str) -> None:
    """One record batch into the matrix, after checking it holds no missing or non-finite value."""
    values = []
    for name in names:
        column = batch.column(name)
        if sink.kinds is not None:  # missing cells are NaN; infinities are refused below
            values.append(sink.kinds.from_arrow(name, column, where, check_finite=False))
            continue
        if column.null_count:
            row = sink.rows + int(pc.index(pc.is_null(column), True).as_py())
            raise InvalidInputError(f"{where}, row {row + 1}, column {name!r}: the value is missing")
        values.append(column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    bad = first_non_finite(values) if sink.kinds is None else first_infinite(values)
    if bad is not None:
        raise InvalidInputError(f"{where}, row {sink.rows + bad[0] + 1}, column {names[bad[1]]!r}: "
                                f"{values[bad[1]][bad[0]]!r} is not finite")
    labels = None
    if target is not None:
        labels = batch.column(target)
        if pa.types.is_dictionary(labels.type):
            labels = labels.cast(pa.string())
        missing = first_missing_label(labels)
        if missing is not None:
            raise InvalidInputError(f"{where}, row {sink.rows + missing + 1}: the label ({target!r}) is missing "
                                    f"({labels[missing].as_py()!r}): every row needs a class", {"column": target})
    sink.append(values, labels)


def _labels(chunks: list[pa.Array], target: str, where: str) -> NDArray[Any]:
    column = pa.chunked_array(chunks)
    kind = column.type
    if pa.types.is_boolean(kind):
        return column.to_numpy().astype(bool)
    if pa.types.is_integer(kind):
        return column.to_numpy().astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return csv_labels([c.cast(pa.string()) for c in column.chunks])
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        if np.isfinite(values).all() and (values == np.round(values)).all():
            return values.astype(np.int64)
    raise InvalidInputError(f"the labels ({target!r}) of {where} are {kind}: use ints, bools or strings")
