"""What the Dask workers run on their partitions, in this process: the one-process reader's rules for cells and
labels, classes decided from every partition's labels, and a split whose sizes the service knows beforehand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.data import partitions as tasks
from service.engine import stratified_split
from service.errors import InvalidInputError


def _frame(**columns: object) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_a_partition_becomes_a_c_ordered_float_matrix_and_its_labels() -> None:
    part = tasks.read_part(_frame(a=[1, 2, 3], b=[0.5, 1.5, 2.5], y=["x", " y", "x "]), ["b", "a"], "y", "p1")
    assert part.X.flags.c_contiguous and part.X.dtype == np.float64
    np.testing.assert_array_equal(part.X, [[0.5, 1], [1.5, 2], [2.5, 3]])
    assert part.labels.tolist() == ["x", "y", "x"]  # trimmed, as the CSV reader trims


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, r"column 'b' holds an empty \(missing\) cell.*compute.*local"),
     (np.inf, "column 'b' holds the value inf")],
)
def test_missing_and_infinite_cells_are_refused_naming_the_column(value: float, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        tasks.read_part(_frame(a=[1.0, 2.0], b=[1.0, value], y=[0, 1]), ["a", "b"], "y", "p1")


@pytest.mark.parametrize("labels", [["a", None], ["a", ""], ["a", "NaN"], [1.0, np.nan]])
def test_a_missing_label_is_refused(labels: list[object]) -> None:
    with pytest.raises(InvalidInputError, match=r"a label .* is missing"):
        tasks.read_part(_frame(a=[1.0, 2.0], y=labels), ["a"], "y", "p1")


def test_fractional_labels_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="fractional"):
        tasks.read_part(_frame(a=[1.0, 2.0], y=[0.5, 1.0]), ["a"], "y", "p1")


def test_classes_come_from_every_partition_and_integers_in_text_are_ints() -> None:
    classes, codes = tasks.label_codes([np.array(["1", "2"]), np.array(["10", "1.0"])])
    assert classes.tolist() == [1, 2, 10] and classes.dtype == np.int64
    assert codes == {"1": 0, "1.0": 0, "2": 1, "10": 2}
    classes, codes = tasks.label_codes([np.array(["b", "a"]), np.array(["c"])])
    assert classes.tolist() == ["a", "b", "c"] and codes == {"a": 0, "b": 1, "c": 2}
    classes, codes = tasks.label_codes([np.array([True]), np.array([False, True])])
    assert classes.tolist() == [False, True] and codes == {False: 0, True: 1}
    assert tasks.label_codes([np.array(["1_000", "2"])])[0].tolist() == ["1_000", "2"]  # as Arrow reads it
    with pytest.raises(InvalidInputError, match="mix kinds"):
        tasks.label_codes([np.array([1, 2]), np.array(["a"])])


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
def test_the_split_holds_out_the_rows_the_service_counted(fraction: float) -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array(["a", "b", "c"]), size=101, p=[0.6, 0.39, 0.01])
    X = rng.normal(size=(101, 2))
    classes, codes = tasks.label_codes([np.unique(labels)])
    counts = np.array([np.sum(labels == c) for c in classes])
    split = tasks.split_part(tasks.RawPart(X, labels), 3, 1000, 500, codes, fraction, seed=7)
    held = tasks.held_out_counts(counts, fraction)
    assert np.bincount(split.held_out.y, minlength=3).tolist() == held.tolist()
    assert split.train.offset == 500 and split.train.y.shape[0] == 101 - held.sum()
    # the rows are the engine's stratified split of the partition, seeded by (seed, partition index)
    y = np.searchsorted(classes, labels)
    train_idx, val_idx = stratified_split(y, fraction, np.random.default_rng([7, 3])) if fraction else (
        np.arange(101), np.arange(0))
    np.testing.assert_array_equal(split.train.X, X[train_idx])
    np.testing.assert_array_equal(split.held_out.positions, 1000 + val_idx)
