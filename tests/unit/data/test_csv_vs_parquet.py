"""The same table as CSV and as Parquet reads the same through read_table(open_files(...)): X bit for bit,
labels and names; Parquet part files (a directory, a glob) in file-name order; Parquet's own errors name the
row and the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.data.parquet_reader import PARQUET_BATCH_ROWS
from service.data.sources import open_files
from service.data.tables import Table, read_table
from service.errors import InvalidInputError


def frame(n: int, labels: str, seed: int = 3) -> pd.DataFrame:
    """Features over many magnitudes, with -0.0, an integer column and exact integers among the floats."""
    rng = np.random.default_rng(seed)
    wide = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n)
    wide[::17] = -0.0
    df = pd.DataFrame({
        "wide": wide,
        "count": rng.integers(-1000, 1000, size=n),
        "unit": rng.random(n),
        "whole": np.round(rng.normal(size=n) * 100),
    })
    if labels == "strings":
        df["label"] = np.where(rng.random(n) < 0.4, "churn", "stay")
    else:
        df["label"] = rng.integers(0, 3, size=n)
    return df


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, float_format="%.17g")
    return path


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


def read(uri: Path | str, root: Path, **kwargs: object) -> Table:
    return read_table(open_files(str(uri), roots=[root]), target="label", **kwargs)  # type: ignore[arg-type]


def assert_identical(a: Table, b: Table) -> None:
    assert a.feature_names == b.feature_names
    assert a.X.dtype == b.X.dtype == np.float64 and a.X.shape == b.X.shape
    assert a.X.tobytes() == b.X.tobytes()
    assert a.labels is not None and b.labels is not None
    assert a.labels.dtype.kind == b.labels.dtype.kind and a.labels.tolist() == b.labels.tolist()


@pytest.mark.parametrize("labels", ["strings", "ints"])
@pytest.mark.parametrize("n", [50, PARQUET_BATCH_ROWS + 4_000], ids=["small", "over-one-batch"])
def test_the_same_table_as_csv_and_parquet_reads_identically(tmp_path: Path, n: int, labels: str) -> None:
    df = frame(n, labels)
    from_csv = read(write_csv(df, tmp_path / "t.csv"), tmp_path)
    from_parquet = read(write_parquet(df, tmp_path / "t.parquet"), tmp_path)
    assert_identical(from_csv, from_parquet)
    assert from_csv.feature_names == ["wide", "count", "unit", "whole"]
    assert from_csv.X.tobytes() == df[from_csv.feature_names].to_numpy(np.float64).tobytes()
    assert from_csv.labels.tolist() == df["label"].tolist()  # type: ignore[union-attr]


def test_parquet_label_types_and_csv_agree(tmp_path: Path) -> None:
    """Every Parquet type a label column may have: ints, integral floats, strings (plain, large, dictionary)."""
    x = [0.5, -1.5, 2.0]
    for name, column, expected in [
        ("int64", pa.array([0, 1, 0]), [0, 1, 0]),
        ("int8", pa.array([2, 1, 2], pa.int8()), [2, 1, 2]),
        ("float", pa.array([0.0, 1.0, 0.0]), [0, 1, 0]),
        ("bool", pa.array([True, False, True]), [True, False, True]),
        ("string", pa.array(["a", "b", "a"]), ["a", "b", "a"]),
        ("large_string", pa.array(["a", "b", "a"], pa.large_string()), ["a", "b", "a"]),
        ("dictionary", pa.array(["a", "b", "a"]).dictionary_encode(), ["a", "b", "a"]),
    ]:
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"x": x, "label": column}), path)
        table = read(path, tmp_path)
        assert table.labels is not None and table.labels.tolist() == expected, name
        assert table.X[:, 0].tolist() == x
    pq.write_table(pa.table({"x": x, "label": [0.5, 1.0, 0.0]}), tmp_path / "fraction.parquet")
    with pytest.raises(InvalidInputError, match=r"labels \('label'\) of .* are double: use ints, bools or strings"):
        read(tmp_path / "fraction.parquet", tmp_path)


def _parts(tmp_path: Path, df: pd.DataFrame, suffix: str) -> Path:
    """The table in 3 part files of uneven sizes, written last part first (so neither creation nor inode order
    is the name order)."""
    parts = tmp_path / f"parts-{suffix}"
    parts.mkdir()
    bounds = [(0, 7), (7, 50), (50, len(df))]
    for i in reversed(range(3)):
        start, stop = bounds[i]
        piece = df.iloc[start:stop]
        if suffix == "parquet":
            write_parquet(piece, parts / f"part-{i}.parquet")
        else:
            write_csv(piece, parts / f"part-{i}.csv")
    (parts / "_SUCCESS").write_text("")  # what Spark leaves beside its parts: not a table, skipped
    return parts


def test_a_directory_and_a_glob_of_parquet_parts_read_as_their_concatenation(tmp_path: Path) -> None:
    df = frame(120, "strings")
    whole = read(write_parquet(df, tmp_path / "whole.parquet"), tmp_path)
    parts = _parts(tmp_path, df, "parquet")
    directory = read_table(open_files(str(parts), "parquet", roots=[tmp_path]), target="label")
    globbed = read(parts / "part-*.parquet", tmp_path)
    assert open_files(str(parts / "part-*.parquet"), roots=[tmp_path]).paths == tuple(
        str((parts / f"part-{i}.parquet").resolve()) for i in range(3))
    assert_identical(directory, whole)
    assert_identical(globbed, whole)
    csv_parts = read(_parts(tmp_path, df, "csv") / "part-*.csv", tmp_path)
    assert_identical(csv_parts, whole)


def test_a_parquet_column_of_strings_is_refused_by_name(tmp_path: Path) -> None:
    df = frame(10, "ints")
    df["unit"] = df["unit"].astype(str)
    path = write_parquet(df, tmp_path / "t.parquet")
    with pytest.raises(InvalidInputError, match=r"column 'unit' of .*t\.parquet holds (large_)?string, not numbers"):
        read(path, tmp_path)
    # not a feature: no trouble
    assert read(path, tmp_path, features=["wide", "count", "whole"], ignore_extra=True).X.shape == (10, 3)


def test_a_missing_parquet_value_is_refused_naming_row_and_column(tmp_path: Path) -> None:
    n = PARQUET_BATCH_ROWS + 5_000
    df = frame(n, "ints")
    table = pa.Table.from_pandas(df, preserve_index=False)
    bad_row = PARQUET_BATCH_ROWS + 1_234  # 0-based, in the second batch
    unit = table.column("unit").to_pylist()
    unit[bad_row] = None
    pq.write_table(table.set_column(table.schema.get_field_index("unit"), "unit", pa.array(unit, pa.float64())),
                   tmp_path / "t.parquet")
    with pytest.raises(InvalidInputError) as caught:
        read(tmp_path / "t.parquet", tmp_path)
    assert f"row {bad_row + 1}, column 'unit': the value is missing" in str(caught.value)


def test_a_missing_value_in_a_later_part_counts_the_rows_of_the_parts_before(tmp_path: Path) -> None:
    df = frame(120, "ints")
    parts = _parts(tmp_path, df, "parquet")
    piece = pa.Table.from_pandas(df.iloc[50:], preserve_index=False)
    labels = piece.column("label").to_pylist()
    labels[3] = None
    pq.write_table(piece.set_column(piece.schema.get_field_index("label"), "label", pa.array(labels, pa.int64())),
                   parts / "part-2.parquet")
    with pytest.raises(InvalidInputError, match=r"row 54: the label \('label'\) is missing"):
        read(parts / "part-*.parquet", tmp_path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_features_pick_and_order_the_columns(tmp_path: Path, fmt: str) -> None:
    df = frame(40, "strings")
    path = write_csv(df, tmp_path / "t.csv") if fmt == "csv" else write_parquet(df, tmp_path / "t.parquet")
    reordered = read(path, tmp_path, features=["whole", "unit", "count", "wide"])
    assert reordered.feature_names == ["whole", "unit", "count", "wide"]
    assert reordered.X.tobytes() == df[["whole", "unit", "count", "wide"]].to_numpy(np.float64).tobytes()
    picked = read(path, tmp_path, features=["unit", "wide"], ignore_extra=True)
    assert picked.feature_names == ["unit", "wide"]
    assert picked.X.tobytes() == df[["unit", "wide"]].to_numpy(np.float64).tobytes()
    assert picked.labels is not None and picked.labels.tolist() == df["label"].tolist()
    # without ignore_extra the columns left out are refused by name, and an unknown one always is
    with pytest.raises(InvalidInputError, match=r"unknown feature\(s\) 'count', 'whole'"):
        read(path, tmp_path, features=["unit", "wide"])
    with pytest.raises(InvalidInputError, match=r"missing feature\(s\) 'nope'"):
        read(path, tmp_path, features=["unit", "nope"], ignore_extra=True)


def test_a_mixed_type_table_reads_the_same_from_csv_and_parquet(tmp_path: Path) -> None:
    from tests.mixed import make_table, to_csv

    table, y = make_table(PARQUET_BATCH_ROWS + 500, seed=8)  # more than one Parquet batch and CSV block
    csv_path = tmp_path / "t.csv"
    csv_path.write_bytes(to_csv(table, y, target="label"))
    columns = {name: pa.array(values, {"flag": pa.bool_()}.get(name, pa.string() if name.startswith("c")
                                                              else pa.float64())) for name, values in table.items()}
    pq.write_table(pa.table({**columns, "label": pa.array(y)}), tmp_path / "t.parquet", row_group_size=20_000)
    a = read(csv_path, tmp_path, declared={})
    b = read(tmp_path / "t.parquet", tmp_path, declared={})
    assert a.columns is not None and b.columns is not None
    assert a.columns.kinds == b.columns.kinds == {"num1": "numeric", "num2": "numeric", "flag": "boolean",
                                                  "c0": "categorical", "c1": "categorical", "c2": "categorical"}
    assert a.columns.categories == b.columns.categories
    assert np.array_equal(a.X, b.X, equal_nan=True)
    assert np.array_equal(a.labels, b.labels)
    assert np.isnan(a.X).any()
    with pytest.raises(InvalidInputError, match="encoding names column"):
        read(csv_path, tmp_path, declared={"nope": "categorical"})
