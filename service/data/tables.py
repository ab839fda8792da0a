"""The one table reader: CSV and Parquet through pyarrow, in record batches, straight into the float64 feature
matrix (and the label vector of a ``target`` column).

Used for training uploads and URIs, ``text/csv`` scoring bodies and the CLI. Reading costs the matrix plus
one record batch: the matrix is allocated once from the size of the source (CSV: estimated from the first
batch, grown if needed and trimmed at the end; Parquet: exact, from the files' metadata) and each batch is
copied into it column by column. Errors name the line (CSV) or row (Parquet) and the column.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError
from .matrix import check_matrix_size, check_row_limit, column_order
from .sources import Files

#: Bytes of CSV text parsed per record batch (about 20 000 rows of 50 numbers).
CSV_BLOCK_BYTES = 1 << 20
#: Rows per record batch of a Parquet source.
PARQUET_BATCH_ROWS = 65_536
#: Called as ``progress(rows_read, bytes_read)`` after each batch.
Progress = Callable[[int, int], None]

_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value", re.S)


@dataclass(frozen=True, slots=True)
class Table:
    """What a read gives: the features (float64, C order), the labels (ints, bools or strings) and the names."""

    X: NDArray[np.float64]
    labels: NDArray[Any] | None
    feature_names: list[str]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a read may hold: rows (scoring), bytes of the matrix (training), and the setting that says so."""

    max_rows: int | None = None
    max_bytes: int | None = None
    bytes_setting: str = "LOGREG_MAX_TRAIN_BYTES"


# -- entry points -------------------------------------------------------------------------------------------
def read_table(
    files: Files, *, target: str | None, features: Sequence[str] | None = None, ignore_extra: bool = False,
    limits: Limits = Limits(), progress: Progress | None = None,
) -> Table:
    """The table at ``files``: with ``target``, its labels too. ``features`` picks and orders the feature
    columns (default: every other column, in file order); with ``ignore_extra`` columns that are neither
    are skipped, else they are refused by name."""
    if files.format == "parquet":
        return _read_parquet(files, target, features, ignore_extra, limits, progress)
    sink: _Sink | None = None
    read_bytes = 0
    for path in files.paths:
        size = files.fs.size(path)
        sink = _read_csv(_file_opener(files, path), size, target, features, ignore_extra, limits, sink,
                         _offset(progress, read_bytes), where=path if len(files.paths) > 1 else "the CSV")
        read_bytes += size
    assert sink is not None
    return sink.table()


def read_csv_bytes(
    data: bytes | str, *, target: str | None, features: Sequence[str] | None = None, ignore_extra: bool = False,
    limits: Limits = Limits(),
) -> Table:
    """A CSV held in memory (a request body)."""
    if isinstance(data, str):
        data = data.encode()
    if not data.strip():
        raise InvalidInputError("the CSV is empty: it needs a header row and data rows")
    return _read_csv(lambda: pa.BufferReader(data), len(data), target, features, ignore_extra, limits, None, None,
                     where="the CSV").table()


def read_csv_stream(
    open_stream: Callable[[], Any], size: int, *, target: str | None, limits: Limits = Limits(),
    progress: Progress | None = None,
) -> Table:
    """A CSV from a seekable binary stream (a spooled upload), reopened by ``open_stream`` as needed."""
    return _read_csv(open_stream, size, target, None, False, limits, None, progress, where="the CSV").table()


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
        return pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "gzip") if path.endswith(".gz") else stream

    return open_file


# -- the matrix being filled -----------------------------------------------------------------------------------
class _Sink:
    """The matrix being filled batch by batch, the labels, and the limits on both."""

    def __init__(self, names: list[str], columns: list[str], with_labels: bool, limits: Limits) -> None:
        self.names = names  # feature names, in the order of the matrix
        self.columns = columns  # the source's columns, in the source's order, for later files to match
        self.with_labels = with_labels
        self.limits = limits
        self.X = np.empty((0, len(names)))
        self._buffer = np.empty((len(names), 0))
        self.rows = 0
        self.labels: list[pa.Array] = []

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all (growing by a quarter at least, so appends stay cheap), never
        more than the limits allow."""
        d = max(1, len(self.names))
        most = [m for m in (self.limits.max_rows, self.limits.max_bytes and self.limits.max_bytes // (8 * d)) if m]
        rows = min(rows, *(m + 1 for m in most)) if most else rows
        if rows <= self.X.shape[0]:
            return
        capacity = max(rows, int(self.X.shape[0] * 1.25))
        if self.X.shape[0] == 0:
            self.X = np.empty((capacity, len(self.names)))
        else:
            self.X.resize((capacity, len(self.names)), refcheck=False)

    def append(self, values: Sequence[NDArray[Any]], labels: pa.Array | None) -> None:
        k = len(values[0]) if values else 0
        check_row_limit(self.rows + k, self.limits.max_rows, "csv")
        check_matrix_size(self.rows + k, len(self.names), self.limits.max_bytes, self.limits.bytes_setting)
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

    def table(self) -> Table:
        if self.rows == 0:
            raise InvalidInputError("the data has a header but no data rows")
        if self.X.shape[0] != self.rows:
            self.X.resize((self.rows, len(self.names)), refcheck=False)  # in place: frees the tail
        return Table(self.X, _labels(self.labels) if self.with_labels else None, self.names)


def _select(
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


# -- CSV -----------------------------------------------------------------------------------------------------------
def _header(opener: Callable[[], Any]) -> list[str]:
    """The column names of a CSV (stripped), read from its first block."""
    with contextlib.closing(opener()) as stream, _csv_errors(opener, 0, ()):
        reader = pcsv.open_csv(stream, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
                               parse_options=pcsv.ParseOptions(invalid_row_handler=lambda _: "skip"))
        return [name.strip() for name in reader.schema.names]


def _read_csv(
    opener: Callable[[], Any], total_bytes: int, target: str | None, features: Sequence[str] | None,
    ignore_extra: bool, limits: Limits, sink: _Sink | None, progress: Progress | None, where: str,
) -> _Sink:
    columns = _header(opener)
    if sink is not None and columns != sink.columns:
        raise InvalidInputError(f"{where} has other columns than the first file: {preview(columns)}")
    unnamed = [j for j, c in enumerate(columns) if c == ""]
    trailing = unnamed == [len(columns) - 1] and len(columns) > 1  # "a,b," lines: a delimiter at each line's end
    if unnamed and not trailing:
        raise InvalidInputError(f"{where}'s header has a column without a name (column {unnamed[0] + 1})")
    named = columns[:-1] if trailing else columns
    names = _select(named, target, features, ignore_extra, where)
    if sink is None:
        sink = _Sink(names, columns, target is not None, limits)
    keep = [*names, *([target] if target is not None else [])]
    types = {n: pa.float64() for n in names}
    if target is not None:
        types[target] = pa.string()
    file_names = [c if c else f"__unnamed_{j}" for j, c in enumerate(columns)]
    if trailing:
        keep.append(file_names[-1])
        types[file_names[-1]] = pa.string()
    invalid: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append(row)
        return "error"

    position = {c: j for j, c in enumerate(file_names)}
    with contextlib.closing(opener()) as stream, _csv_errors(opener, sink.rows, file_names, invalid):
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(column_names=file_names, skip_rows=1, block_size=CSV_BLOCK_BYTES,
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pcsv.ConvertOptions(
                column_types=types, include_columns=keep, null_values=[], strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        first = True
        start = sink.rows
        for batch in reader:
            if batch.num_rows == 0:
                continue
            if first and total_bytes:  # one batch is one block of text: size the matrix for the whole source
                sink.reserve(start + int(total_bytes / CSV_BLOCK_BYTES * batch.num_rows * 1.05) + 1)
                first = False
            values = [batch.column(n).to_numpy() for n in names]
            bad = _first_non_finite(values)
            if bad is not None:
                row, j = bad
                line, text = _locate(opener, sink.rows + row, position[names[j]])
                raise InvalidInputError(f"CSV line {line}, column {names[j]!r}: {text!r} is not finite")
            if trailing and pc.max(pc.utf8_length(batch.column(file_names[-1]))).as_py():
                raise InvalidInputError(f"{where} has values in a column without a name (the last one)")
            sink.append(values, batch.column(target) if target is not None else None)
            if progress is not None:
                progress(sink.rows, _tell(stream))
    return sink


def _tell(stream: Any) -> int:
    try:
        return int(stream.tell())
    except (OSError, ValueError, AttributeError):
        return 0


def _first_non_finite(values: Sequence[NDArray[np.float64]]) -> tuple[int, int] | None:
    for j, column in enumerate(values):
        finite = np.isfinite(column)
        if not finite.all():
            return int(np.argmin(finite)), j
    return None


@contextlib.contextmanager
def _csv_errors(
    opener: Callable[[], Any], start_row: int, file_names: Sequence[str], invalid: list[Any] | None = None
) -> Iterator[None]:
    """pyarrow's CSV errors as the service's, naming the line and the column."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if invalid:
            row = invalid[0]
            line, _ = _locate(opener, 0, 0, text=row.text)
            raise InvalidInputError(
                f"CSV line {line} has {row.actual_columns} fields, the header has {row.expected_columns}"
            ) from None
        if "UTF8" in message or "UTF-8" in message:
            raise InvalidInputError("the CSV is not UTF-8 text") from None
        match = _CONVERSION.search(message)
        if match is not None and file_names:
            j = int(match.group(1))
            line, text = _locate(opener, start_row, j, bad=_not_a_number)
            raise InvalidInputError(f"CSV line {line}, column {file_names[j]!r}: {text!r} is not a number") from None
        if "Empty CSV file" in message:
            raise InvalidInputError("the CSV is empty: it needs a header row and data rows") from None
        raise InvalidInputError(f"the CSV cannot be parsed: {message}") from None


def _not_a_number(text: str) -> bool:
    """Whether pyarrow refuses ``text`` as a float. Python's ``float()`` takes more (``1_000``, digits of other
    scripts), so such text is asked of pyarrow itself; plain ASCII that Python reads, pyarrow reads too."""
    try:
        float(text)
    except ValueError:
        return True
    if text.isascii() and "_" not in text:
        return False
    try:
        pc.cast(pa.array([text], pa.string()), pa.float64())
    except pa.ArrowInvalid:
        return True
    return False


def _locate(
    opener: Callable[[], Any], from_row: int, column: int, bad: Callable[[str], bool] | None = None,
    text: str | None = None,
) -> tuple[int | str, str]:
    """The line number and text of column ``column`` of data row ``from_row`` (0-based, blank lines skipped);
    with ``bad``, of the first data row from there whose cell ``bad`` says is wrong; with ``text``, of the
    first line that reads so. Only on an error's path: it reads the text again, a line at a time through
    pyarrow, and parses only the rows it must."""
    lines = pcsv.ReadOptions(column_names=["line"], block_size=CSV_BLOCK_BYTES, use_threads=False)
    parse = pcsv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=False)
    convert = pcsv.ConvertOptions(column_types={"line": pa.string()}, null_values=[], strings_can_be_null=False)
    line_no, data_row = 0, -1
    try:
        with contextlib.closing(opener()) as stream:
            for batch in pcsv.open_csv(stream, read_options=lines, parse_options=parse, convert_options=convert):
                for line in batch.column(0).to_pylist():
                    line_no += 1
                    if line_no == 1 or not line.strip():
                        continue  # the header, or a blank line
                    data_row += 1
                    if text is not None:
                        if line.rstrip("\r") == text.rstrip("\r"):
                            return line_no, line
                        continue
                    if data_row < from_row:
                        continue
                    cells = _cells(line)
                    cell = cells[column].strip() if column < len(cells) else ""
                    if bad is None or bad(cell):
                        return line_no, cell if len(cell) <= 40 else cell[:37] + "..."
    except pa.ArrowInvalid:
        raise InvalidInputError("the CSV is not UTF-8 text") from None
    return "?", ""


def _cells(line: str) -> list[str]:
    """The fields of one CSV line (quotes understood, unless a field is too long for the csv module)."""
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error:
        return line.split(",")


def _labels(chunks: list[pa.Array]) -> NDArray[Any]:
    """Integer labels when every cell is an integer (``1``, ``0.0``), else the strings as given (trimmed)."""
    text = pc.utf8_trim_whitespace(pa.chunked_array(chunks, type=pa.string()))
    try:
        as_float = pc.cast(text, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.asarray(text.to_numpy(zero_copy_only=False).astype(str))
    if np.isfinite(as_float).all() and (as_float == np.round(as_float)).all() and (np.abs(as_float) < 2**63).all():
        try:  # exact: through float64, 9007199254740993 would become ...992, another class
            return np.asarray(pc.cast(text, pa.int64()).to_numpy(), dtype=np.int64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # "1.0", "1e3"
            return as_float.astype(np.int64)
    return np.asarray(text.to_numpy(zero_copy_only=False).astype(str))


# -- Parquet -------------------------------------------------------------------------------------------------------
def _read_parquet(
    files: Files, target: str | None, features: Sequence[str] | None, ignore_extra: bool, limits: Limits,
    progress: Progress | None,
) -> Table:
    import pyarrow.parquet as pq  # here: only Parquet sources need it

    where = files.uri
    parts = []
    try:
        for path in files.paths:
            parts.append(pq.ParquetFile(files.fs.open(path, "rb"), pre_buffer=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInputError(f"{where} cannot be read as Parquet: {exc}") from None
    schema = parts[0].schema_arrow
    for path, part in zip(files.paths[1:], parts[1:], strict=True):
        if part.schema_arrow.names != schema.names:
            raise InvalidInputError(f"{path} has other columns than the first file: {preview(part.schema_arrow.names)}")
    names = _select(list(schema.names), target, features, ignore_extra, where)
    for name in names:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise InvalidInputError(f"column {name!r} of {where} holds {kind}, not numbers", {"column": name})
    total = sum(part.metadata.num_rows for part in parts)
    # The sink keeps the label chunks as they come; they are made an array by _parquet_labels, which knows
    # Parquet's types (the CSV path's _labels takes strings only).
    sink = _Sink(names, list(schema.names), False, limits)
    sink.reserve(total)
    columns = [*names, *([target] if target is not None else [])]
    for part in parts:
        for batch in part.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            _append_parquet_batch(sink, batch, names, target, where)
            if progress is not None:
                progress(sink.rows, int(files.total_bytes * sink.rows / max(1, total)))
        part.close()
    table = sink.table()
    if target is None:
        return table
    return Table(table.X, _parquet_labels(sink.labels, target, where), table.feature_names)


def _append_parquet_batch(sink: _Sink, batch: pa.RecordBatch, names: Sequence[str], target: str | None,
                          where: str) -> None:
    """One record batch into the matrix, after checking it holds no missing or non-finite value."""
    values = []
    for name in names:
        column = batch.column(name)
        if column.null_count:
            row = sink.rows + int(pc.index(pc.is_null(column), True).as_py())
            raise InvalidInputError(f"{where}, row {row + 1}, column {name!r}: the value is missing")
        values.append(column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    bad = _first_non_finite(values)
    if bad is not None:
        raise InvalidInputError(f"{where}, row {sink.rows + bad[0] + 1}, column {names[bad[1]]!r}: "
                                f"{values[bad[1]][bad[0]]!r} is not finite")
    labels = None
    if target is not None:
        labels = batch.column(target)
        if labels.null_count:
            row = sink.rows + int(pc.index(pc.is_null(labels), True).as_py())
            raise InvalidInputError(f"{where}, row {row + 1}: the label ({target!r}) is missing")
    sink.append(values, labels)


def _parquet_labels(chunks: list[pa.Array], target: str, where: str) -> NDArray[Any]:
    column = pa.chunked_array(chunks)
    kind = column.type
    if pa.types.is_boolean(kind):
        return column.to_numpy().astype(bool)
    if pa.types.is_integer(kind):
        return column.to_numpy().astype(np.int64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        return _labels([c.cast(pa.string()) for c in column.chunks])
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        if np.isfinite(values).all() and (values == np.round(values)).all():
            return values.astype(np.int64)
    raise InvalidInputError(f"the labels ({target!r}) of {where} are {kind}: use ints, bools or strings")


# -- bodies that are not files: the binary stream of a spooled upload -----------------------------------------------
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


# -- shorthands for bodies held in memory ----------------------------------------------------------------------------
def read_labelled_csv(data: bytes | str, target: str) -> tuple[NDArray[np.float64], NDArray[Any], list[str]]:
    """Features, labels and feature names from a CSV (in memory) with a header row and a ``target`` column."""
    return labelled(read_csv_bytes(data, target=target))


def read_feature_csv(
    data: bytes | str, feature_names: Sequence[str], max_rows: int | None = None, *, ignore_extra: bool = False
) -> NDArray[np.float64]:
    """Rows to score, in the model's feature order, from a CSV whose header names the model's features in any
    order; other columns are refused by name, or skipped with ``ignore_extra``."""
    return read_csv_bytes(data, target=None, features=feature_names, ignore_extra=ignore_extra,
                          limits=Limits(max_rows=max_rows)).X
