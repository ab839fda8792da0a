"""service.data.tables: the one CSV reader, for training, scoring bodies and the CLI."""

from __future__ import annotations

import pytest

from service.data.tables import read_feature_csv, read_labelled_csv
from service.errors import InvalidInputError, LimitExceededError


def test_training_csv_gives_features_labels_and_names() -> None:
    X, y, names = read_labelled_csv(b"\xef\xbb\xbfa,y,b\r\n1,0,2\r\n\r\n3,1,4\r\n", "y")
    assert names == ["a", "b"] and X.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.tolist() == [0, 1]


def test_string_labels_stay_strings() -> None:
    _, y, _ = read_labelled_csv("a,y\n1,yes\n2,no\n", "y")
    assert y.tolist() == ["yes", "no"]


@pytest.mark.parametrize(("text", "message"), [
    ("a,b\n1,2\n", "target column 'y' is not in the CSV"),
    ("a,a,y\n1,2,0\n", r"repeats column\(s\) 'a'"),
    ("a,y\nx,0\n", "line 2, column 'a': 'x' is not a number"),
    ("a,y\ninf,0\n", "is not finite"),
    ("a,y\n1,0,9\n", "line 2 has 3 fields"),
    ("", "empty"),
    ("a,y\n", "no data rows"),
    ("y\n0\n", "no feature columns"),
])
def test_bad_training_csv_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_labelled_csv(text, "y")


def test_scoring_csv_is_put_in_the_models_order_and_leftovers_are_refused() -> None:
    assert read_feature_csv("b,a\n2,1\n", ["a", "b"]).tolist() == [[1.0, 2.0]]
    with pytest.raises(InvalidInputError, match=r"unknown feature\(s\) 'y'"):
        read_feature_csv("a,b,y\n1,2,yes\n", ["a", "b"])


def test_the_cli_may_skip_leftover_columns_even_when_they_are_not_numbers() -> None:
    X = read_feature_csv("y,b,a\nyes,2,1\nno,4,3\n", ["a", "b"], ignore_extra=True)
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(InvalidInputError, match=r"missing feature\(s\) 'b'"):
        read_feature_csv("y,a\nyes,1\n", ["a", "b"], ignore_extra=True)


def test_scoring_csv_row_limit() -> None:
    read_feature_csv("a\n1\n2\n", ["a"], max_rows=2)
    with pytest.raises(LimitExceededError, match="limit of 2 rows"):
        read_feature_csv("a\n1\n2\n3\n", ["a"], max_rows=2)


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        read_labelled_csv(b"a,y\n\xff,0\n", "y")
