"""The one table reader: CSV and Parquet through pyarrow, in record batches, straight into the float64 feature
matrix (and the label vector of a ``target`` column).

Used for training uploads and URIs, ``text/csv`` scoring bodies and the CLI. The matrix is allocated once
from the size of the source (CSV: estimated from the first batch, grown if needed and trimmed at the end;
Parquet: exact, from the files' metadata) and each batch is copied into it (:mod:`.sink`), so a read holds
the matrix plus one batch (CSV: :mod:`.csv_reader`) or one decoded row group (:mod:`.parquet_reader`).
Errors name the line (CSV) or row (Parquet) and the column; a file that vanishes or a store that stops
answering mid-read is the service's error, not an ``OSError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ..errors import DataAccessError, InvalidInputError, LogregError, SourceUnavailableError
from .columns import Columns
from .csv_reader import Plan, csv_labels, read_csv
from .parquet_reader import read_parquet
from .sink import Limits, Progress, Sink, Table
from .sources import Files

#: A read with no limit of its own (the CLI, a scoring body already within the body size).
NO_LIMITS = Limits()

__all__ = ["Limits", "Progress", "Table", "labelled", "read_csv_bytes", "read_csv_stream", "read_feature_csv",
           "read_labelled_csv", "read_table", "stream_opener"]


# -- entry points -------------------------------------------------------------------------------------------
def read_table(
    files: Files, *, target: str | None, features: Sequence[str] | None = None, ignore_extra: bool = False,
    limits: Limits = NO_LIMITS, progress: Progress | None = None, declared: Mapping[str, str] | None = None,
    columns: Columns | None = None,
) -> Table:
    """The table at ``files``: with ``target``, its labels too. ``features`` picks and orders the feature
    columns (default: every other column, in file order); with ``ignore_extra`` columns that are neither
    are skipped, else they are refused by name. Cells are numbers, and missing ones refused, unless the read
    is of a mixed-type table: ``declared`` kinds (training: the others inferred from the data) or a model's
    ``columns`` (scoring)."""
    plan: Plan = columns if columns is not None else declared
    with source_errors(files.uri):
        if files.format == "parquet":
            return read_parquet(files, target, features, ignore_extra, limits, progress, plan)
        sink: Sink | None = None
        read_bytes = 0
        for path in files.paths:
            size = files.fs.size(path)
            sink = read_csv(_file_opener(files, path), size, target, features, ignore_extra, limits, sink,
                            _offset(progress, read_bytes), where=path if len(files.paths) > 1 else "the CSV",
                            plan=plan)
            read_bytes += size
        assert sink is not None
        return _with_labels(sink, target)


def read_csv_bytes(
    data: bytes | str, *, target: str | None, features: Sequence[str] | None = None, ignore_extra: bool = False,
    limits: Limits = NO_LIMITS, plan: Plan = None,
) -> Table:
    """A CSV held in memory (a request body)."""
    if isinstance(data, str):
        data = data.encode()
    if not data.strip():
        raise InvalidInputError("the CSV is empty: it needs a header row and data rows")
    sink = read_csv(lambda: pa.BufferReader(data), len(data), target, features, ignore_extra, limits, None, None,
                    where="the CSV", plan=plan)
    return _with_labels(sink, target)


def read_csv_stream(
    open_stream: Callable[[], Any], size: int, *, target: str | None, limits: Limits = NO_LIMITS,
    progress: Progress | None = None, plan: Plan = None,
) -> Table:
    """A CSV from a seekable binary stream (a spooled upload), reopened by ``open_stream`` as needed."""
    sink = read_csv(open_stream, size, target, None, False, limits, None, progress, where="the CSV", plan=plan)
    return _with_labels(sink, target)


def _with_labels(sink: Sink, target: str | None) -> Table:
    return sink.table(csv_labels(sink.labels) if target is not None else None)


@contextlib.contextmanager
def source_errors(uri: str) -> Iterator[None]:
    """What goes wrong with the source while it is read, as the service's errors (a file removed or a store
    that stops answering mid-read); the readers' own errors pass through."""
    try:
        yield
    except FileNotFoundError:
        raise InvalidInputError(f"{uri} is gone: a file of it was removed while it was read", {"uri": uri}) from None
    except PermissionError as exc:
        raise DataAccessError(f"reading {uri} was refused: {exc}", {"uri": uri}) from None
    except OSError as exc:
        raise SourceUnavailableError(f"reading {uri} failed: {exc}", {"uri": uri}) from None
    except LogregError:
        raise
    except Exception as exc:  # the object store's client errors (botocore's) are not OSErrors
        if type(exc).__module__.split(".")[0] not in ("botocore", "aiobotocore", "s3fs"):
            raise
        raise SourceUnavailableError(f"reading {uri} failed: {type(exc).__name__}: {exc}", {"uri": uri}) from None


def labelled(table: Table) -> tuple[NDArray[np.float64], NDArray[Any], list[str]]:
    """``(X, y, names)`` of a table read with a target."""
    assert table.labels is not None
    return table.X, table.labels, table.feature_names


def _offset(progress: Progress | None, done_bytes: int) -> Progress | None:
    if progress is None:
        return None
    return lambda rows, read: progress(rows, done_bytes + read)


def _file_opener(files: Files, path: str) -> Callable[[], Any]:
    def open_file() -> Any:
        stream = files.fs.open(path, "rb")
        if path.lower().endswith(".gz"):
            return pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "gzip")
        return stream

    return open_file


def stream_opener(file: BinaryIO) -> Callable[[], Any]:
    """Reopen a seekable binary file object from its start, for the reader's passes over it."""

    class _Rewound:
        def __init__(self) -> None:
            file.seek(0)

        def read(self, n: int = -1) -> bytes:
            return file.read(n)

        def tell(self) -> int:
            return file.tell()

        def close(self) -> None:
            pass  # the upload's owner closes it

        @property
        def closed(self) -> bool:
            return False

    return lambda: pa.PythonFile(_Rewound(), mode="r")


def read_labelled_csv(data: bytes | str, target: str) -> tuple[NDArray[np.float64], NDArray[Any], list[str]]:
    """Features, labels and feature names from a CSV (in memory) with a header row and a ``target`` column."""
    return labelled(read_csv_bytes(data, target=target))


def read_feature_csv(
    data: bytes | str, feature_names: Sequence[str], max_rows: int | None = None, *, ignore_extra: bool = False,
    columns: Columns | None = None,
) -> NDArray[np.float64]:
    """Rows to score, in the model's feature order, from a CSV whose header names the model's features in any
    order; other columns are refused by name, or skipped with ``ignore_extra``. With a model's ``columns``
    (a mixed-type model), cells are read as their columns' kinds and may be empty."""
    return read_csv_bytes(data, target=None, features=feature_names, ignore_extra=ignore_extra,
                          limits=Limits(max_rows=max_rows), plan=columns).X
