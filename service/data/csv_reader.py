"""CSV through pyarrow's streaming reader: a block of text at a time into the matrix, with errors that name
the line and the column (found again, on an error's path only, by reading the text a line at a time)."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from numpy.typing import NDArray

from ..domain import preview
from ..errors import InvalidInputError
from .columns import Columns, arrow_kind
from .sink import Limits, Progress, Sink, first_infinite, first_missing_label, first_non_finite, select_columns

#: How a read turns cells into values: strict numbers (None), a model's columns, or declared kinds to infer the
#: rest (see :func:`read_csv`).
Plan = Columns | Mapping[str, str] | None

#: Bytes of CSV text parsed per record batch (about 20 000 rows of 50 numbers).
CSV_BLOCK_BYTES = 1 << 20

_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value", re.S)
_BOOLEANS = {"true", "false", "1", "0"}


def _header(opener: Callable[[], Any]) -> list[str]:
    """The column names of a CSV (stripped), read from its first block."""
    with contextlib.closing(opener()) as stream, _csv_errors(opener, ()):
        reader = pcsv.open_csv(stream, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
                               parse_options=pcsv.ParseOptions(invalid_row_handler=lambda _: "skip"))
        return [name.strip() for name in reader.schema.names]


def _inferred_kinds(opener: Callable[[], Any], file_names: list[str], names: list[str], where: str) -> dict[str, str]:
    """The kind of each feature column from the types Arrow infers on the first block of text."""
    with contextlib.closing(opener()) as stream, _csv_errors(opener, file_names):
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(column_names=file_names, skip_rows=1, block_size=CSV_BLOCK_BYTES,
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=lambda _: "skip"),  # the read proper reports them
            convert_options=pcsv.ConvertOptions(include_columns=names, null_values=[""], strings_can_be_null=True),
        )
        schema = reader.schema
    return {n: arrow_kind(schema.field(n).type, n, where) for n in names}


def read_csv(
    opener: Callable[[], Any], total_bytes: int, target: str | None, features: Sequence[str] | None,
    ignore_extra: bool, limits: Limits, sink: Sink | None, progress: Progress | None, where: str,
    plan: Plan = None,
) -> Sink:
    """Read one CSV into ``sink`` (a new one when None). ``plan``: None reads every feature as a number and refuses
    empty cells; a :class:`Columns` reads each column as its kind (a model's encoding); a mapping of declared
    kinds infers the others from the first block (training on a mixed-type table)."""
    columns = _header(opener)
    if sink is not None and columns != sink.columns:
        raise InvalidInputError(f"{where} has other columns than the first file: {preview(columns)}")
    unnamed = [j for j, c in enumerate(columns) if c == ""]
    trailing = unnamed == [len(columns) - 1] and len(columns) > 1  # "a,b," lines: a delimiter at each line's end
    if unnamed and not trailing:
        raise InvalidInputError(f"{where}'s header has a column without a name (column {unnamed[0] + 1})")
    named = columns[:-1] if trailing else columns
    names = select_columns(named, target, features, ignore_extra, where)
    file_names = [c if c else f"__unnamed_{j}" for j, c in enumerate(columns)]
    if sink is None:
        sink = Sink(names, columns, limits)
        if isinstance(plan, Columns):
            sink.kinds = plan
        elif plan is not None:
            sink.kinds = Columns.settle(names, plan, _inferred_kinds(opener, file_names, names, where))
    kinds = sink.kinds
    keep = [*names, *([target] if target is not None else [])]
    types = {n: pa.float64() for n in names} if kinds is None else kinds.arrow_types()
    if target is not None:
        types[target] = pa.string()
    if trailing:
        keep.append(file_names[-1])
        types[file_names[-1]] = pa.string()
    invalid: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        invalid.append(row)
        return "error"

    position = {c: j for j, c in enumerate(file_names)}
    at = "CSV" if where == "the CSV" else where  # several files: name the one at fault
    with contextlib.closing(opener()) as stream, _csv_errors(opener, file_names, invalid, at, kinds is not None):
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(column_names=file_names, skip_rows=1, block_size=CSV_BLOCK_BYTES,
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pcsv.ConvertOptions(
                column_types=types, include_columns=keep, null_values=[] if kinds is None else [""],
                strings_can_be_null=kinds is not None, quoted_strings_can_be_null=False,
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
            if kinds is not None:  # missing cells are NaN here; infinities are refused below
                values = [kinds.from_arrow(n, batch.column(n), at, check_finite=False) for n in names]
                bad = first_infinite(values)
            else:
                values = [batch.column(n).to_numpy() for n in names]
                bad = first_non_finite(values)
            if bad is not None:
                row, j = bad
                line, text = _locate(opener, sink.rows - start + row, position[names[j]])
                raise InvalidInputError(f"{at} line {line}, column {names[j]!r}: {text!r} is not finite")
            if target is not None:
                missing = first_missing_label(batch.column(target))
                if missing is not None:
                    line, text = _locate(opener, sink.rows - start + missing, position[target])
                    raise InvalidInputError(
                        f"{at} line {line}: the label ({target!r}) is {repr(text) if text else 'empty'}: every row "
                        "needs a class; drop the rows without one", {"column": target})
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


@contextlib.contextmanager
def _csv_errors(
    opener: Callable[[], Any], file_names: Sequence[str], invalid: list[Any] | None = None, at: str = "CSV",
    mixed: bool = False,
) -> Iterator[None]:
    """pyarrow's CSV errors as the service's, naming the line and the column."""
    try:
        yield
    except UnicodeDecodeError:  # header names that are not UTF-8, decoded by pyarrow for Python
        raise InvalidInputError("the CSV is not UTF-8 text") from None
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if invalid:
            row = invalid[0]
            line, _ = _locate(opener, 0, 0, text=row.text)
            raise InvalidInputError(
                f"{at} line {line} has {row.actual_columns} fields, the header has {row.expected_columns}"
            ) from None
        if "UTF8" in message or "UTF-8" in message:
            raise InvalidInputError("the CSV is not UTF-8 text") from None
        match = _CONVERSION.search(message)
        if match is not None and file_names:
            j = int(match.group(1))
            if match.group(2) == "bool":
                line, text = _locate(opener, 0, j, bad=lambda t: t != "" and t.lower() not in _BOOLEANS)
                problem = "is not true or false"
            else:
                line, text = _locate(opener, 0, j, bad=lambda t: _not_a_number(t) and not (mixed and t == ""))
                problem = "is not a number"
            hint = ""
            if mixed:
                hint = ("; the column's kind was read from its first rows: name it in `encoding.categorical` to "
                        "read it as categories") if match.group(2) != "string" else ""
            raise InvalidInputError(f"{at} line {line}, column {file_names[j]!r}: {text!r} {problem}{hint}",
                                    {"column": file_names[j]}) from None
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


def csv_labels(chunks: list[pa.Array]) -> NDArray[Any]:
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
