"""service.data.matrix: JSON rows, records and columns into the float64 matrix, with errors that say where."""

from __future__ import annotations

import numpy as np
import pytest

from service.data.matrix import (
    check_row_limit,
    column_order,
    columns_to_matrix,
    input_matrix,
    labels_array,
    records_to_matrix,
    rows_to_matrix,
)
from service.errors import InvalidInputError, LimitExceededError


def test_rows_become_a_float64_matrix() -> None:
    X = rows_to_matrix([[1, 2.5], [0, -1]])
    assert X.dtype == np.float64 and X.tolist() == [[1.0, 2.5], [0.0, -1.0]]


@pytest.mark.parametrize(("rows", "where"), [
    ([[True, 1.0], [0.0, 1.0]], "row 0, column 0"),
    ([[0.0, 1.0], [1.0, False]], "row 1, column 1"),
    ([[1, 2], [3, True]], "row 1, column 1"),
])
def test_booleans_among_numbers_are_refused_where_they_are(rows: list[list[object]], where: str) -> None:
    with pytest.raises(InvalidInputError, match=where):
        rows_to_matrix(rows)


def test_zeros_and_ones_that_are_numbers_are_kept() -> None:
    assert rows_to_matrix([[0, 1.0], [1, 0.0]]).tolist() == [[0.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize(("rows", "message"), [
    ([], "empty"),
    ([[1.0], [1.0, 2.0]], "same length"),
    ([[1.0, "x"]], "row 0, column 1"),
    ([[1.0, None]], "row 0, column 1"),
    ([[]], "rows are empty"),
    ("1,2", "list of rows"),
])
def test_malformed_rows_are_refused(rows: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        rows_to_matrix(rows)


def test_non_finite_rows_are_named() -> None:
    with pytest.raises(InvalidInputError, match=r"rows 1"):
        rows_to_matrix([[1.0], [1e308 * 10]])


def test_the_row_limit_is_one_rule_for_every_shape() -> None:
    for convert in (lambda: rows_to_matrix([[1.0]] * 3, 2),
                    lambda: records_to_matrix([{"a": 1.0}] * 3, ["a"], 2),
                    lambda: columns_to_matrix({"a": [1.0, 2.0, 3.0]}, ["a"], 2),
                    lambda: check_row_limit(3, 2)):
        with pytest.raises(LimitExceededError, match="3 rows exceed the limit of 2 rows per request"):
            convert()
    check_row_limit(2, 2)
    check_row_limit(10**9, None)


def test_records_and_columns_follow_the_models_feature_order() -> None:
    assert records_to_matrix([{"b": 2.0, "a": 1.0}], ["a", "b"]).tolist() == [[1.0, 2.0]]
    assert columns_to_matrix({"b": [2.0, 4.0], "a": [1.0, 3.0]}, ["a", "b"]).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_records_name_the_field_the_caller_used() -> None:
    with pytest.raises(InvalidInputError, match=r"`dataframe_records` item 0: missing feature\(s\) 'b'"):
        records_to_matrix([{"a": 1.0}], ["a", "b"], field="dataframe_records")
    with pytest.raises(InvalidInputError, match="`instances` row 0, column 1 is True"):
        records_to_matrix([{"a": 1.0, "b": True}], ["a", "b"], field="instances")


def test_column_order_names_missing_unknown_and_repeated_columns() -> None:
    assert column_order(["a", "b"], ["a", "b"], "the header") is None
    assert column_order(["b", "a"], ["a", "b"], "the header") == [1, 0]
    with pytest.raises(InvalidInputError, match=r"missing feature\(s\) 'b'; unknown feature\(s\) 'c'"):
        column_order(["a", "c"], ["a", "b"], "the header")
    with pytest.raises(InvalidInputError, match=r"the header repeats column\(s\) 'a'"):
        column_order(["a", "a"], ["a", "b"], "the header")


def test_input_matrix_needs_exactly_one_source() -> None:
    with pytest.raises(InvalidInputError, match="exactly one"):
        input_matrix(None, None, ["a"])
    with pytest.raises(InvalidInputError, match="exactly one"):
        input_matrix([[1.0]], [{"a": 1.0}], ["a"])


@pytest.mark.parametrize(("labels", "dtype"), [([0, 1], np.int64), ([True, False], np.bool_), (["x", "y"], np.str_)])
def test_labels_of_one_type(labels: list[object], dtype: type) -> None:
    assert labels_array(labels, 2).dtype.type is dtype


@pytest.mark.parametrize("labels", [[0, "1"], [0, True], [0.0, 1.0], [0, None], [0, 2**64]])
def test_mixed_or_unusable_labels_are_refused(labels: list[object]) -> None:
    with pytest.raises(InvalidInputError):
        labels_array(labels, 2)


def test_a_boolean_deep_in_a_large_batch_is_found() -> None:
    rows: list[list[object]] = [[float(i % 2), 1.0, 0.0] for i in range(200)]  # 600 cells, many 0s and 1s
    rows[150][2] = False
    with pytest.raises(InvalidInputError, match="row 150, column 2 is False"):
        rows_to_matrix(rows)
    rows[150][2] = 0.0
    assert rows_to_matrix(rows).shape == (200, 3)
