"""service.data.tables next to pandas: on awkward CSVs that both should read alike, the same matrix (bit for bit),
labels and names; on the ones pandas accepts or mangles and we refuse, a clear InvalidInputError naming the
physical line and the column."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.data.csv_reader import CSV_BLOCK_BYTES
from service.data.tables import Table, read_csv_bytes
from service.errors import InvalidInputError

ENGINES = ["c", "pyarrow"]


def ours(data: bytes, target: str | None = "y") -> Table:
    return read_csv_bytes(data, target=target)


def theirs(data: bytes, engine: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), engine=engine)


def assert_same(table: Table, frame: pd.DataFrame, target: str | None = "y") -> None:
    """Our table equals pandas' frame on its named columns: names in order, X bit for bit, labels as values."""
    named = [str(c) for c in frame.columns if not str(c).startswith("Unnamed:")]
    features = [c for c in named if c != target]
    assert table.feature_names == features
    expected = frame[features].to_numpy(dtype=np.float64)
    assert table.X.dtype == np.float64 and table.X.flags.c_contiguous
    assert table.X.shape == expected.shape
    # bytes, not ==: -0.0 must stay -0.0 and every last bit of 1e300 or 5e-324 must agree
    assert table.X.tobytes() == expected.tobytes(), (table.X, expected)
    if target is not None:
        assert table.labels is not None
        assert table.labels.tolist() == frame[target].tolist()


AGREED: dict[str, bytes] = {
    "utf8 bom": b"\xef\xbb\xbfa,b,y\n1,2,0\n3,4,1\n",
    "quoted numbers and header names": b'"a","b c","y"\n"1.5","2","0"\n"-3","4e2","1"\n',
    "crlf": b"a,b,y\r\n1,2,0\r\n3,4,1\r\n",
    "blank lines between and at the end": b"a,b,y\n\n1,2,0\n\n\n3,4,1\n\n\n",
    "blank lines with crlf": b"a,b,y\r\n\r\n1,2,0\r\n\r\n3,4,1\r\n\r\n",
    "trailing delimiter on every line": b"a,b,y,\n1,2,0,\n3,4,1,\n",
    "trailing delimiter with crlf": b"a,b,y,\r\n1,2,0,\r\n3,4,1,\r\n",
    "huge and tiny numbers": (
        b"a,b,y\n1e300,-1e300,0\n1.7976931348623157e308,2.2250738585072014e-308,1\n5e-324,-4.9e-324,0\n"
    ),
    "negative zero": b"a,b,y\n-0,-0.0,0\n0.0,-0e5,1\n",
    "exponents": b"a,b,y\n1e5,1E-5,0\n2.5e+3,-7.25E+02,1\n.5e1,5.e-1,1\n",
    "ints and floats mixed": b"a,b,y\n1,2.5,0\n3,4,1\n-7,0.125,0\n",
    "whitespace around numbers": b"a,b,y\n 1 , 2.5 , 0 \n\t3\t,4 ,1\n",
    "string labels": b"a,b,y\n1,2,yes\n3,4,no\n5,6,maybe\n",
    "integer labels": b"a,b,y\n1,2,3\n3,4,-1\n5,6,0\n",
    "target first": b"y,b,a\n0,2,1\n1,4,3\n",
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(AGREED))
def test_awkward_csv_reads_as_pandas_reads_it(name: str, engine: str) -> None:
    data = AGREED[name]
    assert_same(ours(data), theirs(data, engine))


def test_a_trailing_delimiter_is_an_unnamed_column_to_pandas_and_dropped_by_us() -> None:
    data = AGREED["trailing delimiter on every line"]
    frame = theirs(data, "c")
    assert list(frame.columns) == ["a", "b", "y", "Unnamed: 3"] and frame["Unnamed: 3"].isna().all()
    assert ours(data).feature_names == ["a", "b"]


def test_integer_labels_are_ints_and_string_labels_stay_strings() -> None:
    assert ours(AGREED["integer labels"]).labels.dtype == np.int64  # type: ignore[union-attr]
    assert ours(AGREED["string labels"]).labels.dtype.kind == "U"  # type: ignore[union-attr]


def _many_rows(n: int, *, crlf: bool, labels: str) -> tuple[bytes, np.ndarray[Any, Any], list[Any]]:
    """``n`` rows of five features spanning twenty orders of magnitude, written with ``repr``, with a blank line
    every 997 rows."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 5)) * 10.0 ** rng.integers(-10, 10, size=(n, 5))
    X[::101, 2] = -0.0
    X[::103, 3] = np.round(X[::103, 3])  # some integers among the floats
    y = [("yes" if i % 3 else "no") if labels == "strings" else i % 4 for i in range(n)]
    end = "\r\n" if crlf else "\n"
    out = ["f0,f1,f2,f3,f4,y"]
    for i, (row, label) in enumerate(zip(X, y, strict=True)):
        out.append(",".join(repr(float(v)) for v in row) + f",{label}")
        if i % 997 == 0:
            out.append("")
    return (end.join(out) + end).encode(), X, y


@pytest.mark.parametrize(("crlf", "labels"), [(False, "strings"), (True, "ints")])
def test_many_rows_over_several_blocks_are_read_exactly(crlf: bool, labels: str) -> None:
    n = 60_000
    data, X, y = _many_rows(n, crlf=crlf, labels=labels)
    assert len(data) > 5 * CSV_BLOCK_BYTES  # several record batches, so the matrix is sized, grown and trimmed
    table = ours(data)
    assert table.X.shape == (n, 5) and table.X.flags.c_contiguous
    assert table.X.tobytes() == X.tobytes()
    assert table.labels is not None and table.labels.tolist() == y
    for engine in ENGINES:
        assert_same(table, theirs(data, engine))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6).flatmap(lambda d: st.lists(st.lists(finite, min_size=d, max_size=d), min_size=1,
                                                      max_size=30)))
def test_any_finite_matrix_written_with_repr_reads_back_exactly(rows: list[list[float]]) -> None:
    d = len(rows[0])
    text = ",".join(f"x{j}" for j in range(d)) + "\n" + "".join(",".join(map(repr, r)) + "\n" for r in rows)
    X = ours(text.encode(), target=None).X
    assert X.tobytes() == np.array(rows, dtype=np.float64).tobytes()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, st.integers(-(2**62), 2**62)), min_size=1, max_size=30))
def test_any_finite_column_with_integer_labels_reads_back_exactly(rows: list[tuple[float, int]]) -> None:
    text = "x,y\n" + "".join(f"{x!r},{label}\n" for x, label in rows)
    table = ours(text.encode())
    assert table.X[:, 0].tobytes() == np.array([x for x, _ in rows]).tobytes()
    assert table.labels is not None and table.labels.tolist() == [label for _, label in rows]


# -- what pandas accepts or mangles and we refuse ------------------------------------------------------------
def test_a_repeated_header_name_is_refused_where_pandas_renames_it() -> None:
    data = b"a,b,a,y\n1,2,3,0\n"
    assert list(theirs(data, "c").columns) == ["a", "b", "a.1", "y"]
    with pytest.raises(InvalidInputError, match=r"header repeats column\(s\) 'a'"):
        ours(data)


def test_a_header_name_left_empty_in_the_middle_is_refused_where_pandas_invents_one() -> None:
    data = b"a,,b,y\n1,2,3,0\n"
    assert list(theirs(data, "c").columns) == ["a", "Unnamed: 1", "b", "y"]
    with pytest.raises(InvalidInputError, match=r"column without a name \(column 2\)"):
        ours(data)


# Each bad cell sits after blank lines (and, in the CRLF variants, CRLF line ends): the message must give the
# line as an editor shows it, counting the header and the blank lines.
BAD_CELLS = ["NaN", "nan", "inf", "-Infinity", "+inf", "1e400"]


@pytest.mark.parametrize("end", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("cell", BAD_CELLS)
def test_cells_that_are_not_finite_are_refused_naming_line_and_column(cell: str, end: str) -> None:
    lines = ["a,b,y", "1,2,0", "", "3,4,1", "", "", f"5,{cell},0", "6,7,1"]
    data = (end.join(lines) + end).encode()
    value = theirs(data, "c")["b"].iloc[2]
    assert not np.isfinite(value)  # pandas reads it, as nan or inf
    with pytest.raises(InvalidInputError) as caught:
        ours(data)
    assert str(caught.value) == f"CSV line 7, column 'b': {cell!r} is not finite"


@pytest.mark.parametrize("end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_an_empty_cell_is_not_a_number(end: str) -> None:
    lines = ["a,b,y", "", "1,2,0", "", "3,,1", "4,5,0"]
    data = (end.join(lines) + end).encode()
    assert np.isnan(theirs(data, "c")["b"].iloc[1])  # pandas: a missing value
    with pytest.raises(InvalidInputError) as caught:
        ours(data)
    assert str(caught.value) == "CSV line 5, column 'b': '' is not a number"


@pytest.mark.parametrize("cell", ["1_000", "\uff11", "0x10", "1,5"])
def test_text_python_or_pandas_might_take_is_not_a_number(cell: str) -> None:
    # Python's float() reads 1_000 and full-width digits; pandas keeps 1_000 as text (the column becomes strings)
    data = f'a,b,y\n1,2,0\n\n\n"{cell}",3,1\n'.encode()
    if cell == "1_000":
        assert theirs(data, "c")["a"].tolist() == ["1", "1_000"]
    with pytest.raises(InvalidInputError) as caught:
        ours(data)
    assert str(caught.value) == f"CSV line 5, column 'a': {cell!r} is not a number"


@pytest.mark.parametrize("cell", ["nan", "1_000", "x"])
def test_the_line_of_a_bad_cell_deep_in_a_large_file_counts_every_blank_line(cell: str) -> None:
    data, _, _ = _many_rows(60_000, crlf=False, labels="ints")
    lines = data.decode().split("\n")
    k = 57_123  # 0-based index of a data line, blank lines before it included: physical line k + 1
    assert lines[k] and lines[:k].count("") > 50
    cells = lines[k].split(",")
    cells[3] = cell
    lines[k] = ",".join(cells)
    with pytest.raises(InvalidInputError) as caught:
        ours("\n".join(lines).encode())
    kind = "is not finite" if cell == "nan" else "is not a number"
    assert str(caught.value) == f"CSV line {k + 1}, column 'f3': {cell!r} {kind}"
