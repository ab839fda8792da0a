"""The OpenAPI page's example rows are rows of ``examples/breast_cancer.csv``, the demo model's data, in its
feature order (``service.api.examples``; ``tests/e2e/test_openapi_examples.py`` sends them to a server)."""

from __future__ import annotations

import csv
from pathlib import Path

from service.api import examples

CSV = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"


def _table() -> tuple[list[str], list[tuple[list[float], str]]]:
    with CSV.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [([float(v) for v in row[:-1]], row[-1]) for row in reader]


def test_the_feature_names_are_the_demo_csvs() -> None:
    header, _ = _table()
    assert header == [*examples.FEATURE_NAMES, examples.DEMO_TARGET]
    assert examples.DEMO_CSV_URI == "examples/breast_cancer.csv"


def test_the_example_rows_are_rows_of_the_csv_with_their_labels() -> None:
    _, labelled = _table()
    for row, label in [*zip(examples.ROWS, examples.LABELS, strict=True),
                       *zip(examples.TRAIN_ROWS, examples.TRAIN_LABELS, strict=True)]:
        assert (row, label) in labelled
    assert sorted(examples.TRAIN_LABELS) == ["benign"] * 4 + ["malignant"] * 4  # a stratified split has both


def test_the_csv_example_is_the_rows_with_a_header() -> None:
    lines = examples.CSV_ROWS.splitlines()
    assert lines[0].split(",") == examples.FEATURE_NAMES
    assert [[float(v) for v in line.split(",")] for line in lines[1:]] == examples.ROWS


def test_the_train_example_keeps_a_validation_split() -> None:
    """`threshold:optimize` on the version the example trains needs its stored validation rows."""
    rows = examples.TRAIN["rows"]["value"]
    assert rows["validation_fraction"] * len(rows["features"]) >= 2
    assert examples.TRAIN["table"]["value"].get("validation_fraction", 0.2) > 0
