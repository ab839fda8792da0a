"""A generated mixed-type table (numbers, a boolean, text categories with rare levels, empty cells in every
column) and scikit-learn's pipeline for it: what the mixed-type tests train on and compare with."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from service.domain import EncodingParams

LEVELS = [["a", "b", "c", "d", "rare1", "rare2"], ["x", "y", "zz"], [f"k{i}" for i in range(40)]]
NUMERIC = ["num1", "num2", "flag"]
CATEGORICAL = ["c0", "c1", "c2"]


def make_table(n: int, seed: int) -> tuple[dict[str, list[Any]], np.ndarray]:
    """Two numeric columns, a boolean, three categorical; missing cells in every kind; rare categories."""
    rng = np.random.default_rng(seed)
    num1 = rng.normal(size=n) * 3 + 1
    num2 = rng.exponential(size=n)
    flag = rng.random(n) < 0.4
    cats = []
    for levels in LEVELS:
        p = np.r_[np.full(len(levels) - 2, 1.0), 0.02, 0.01]
        cats.append(rng.choice(levels, size=n, p=p / p.sum()))
    logit = 0.8 * num1 - 0.5 * num2 + flag + (cats[0] == "a") * 1.5 - (cats[1] == "zz") * 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit + 0.5))).astype(int)
    table: dict[str, list[Any]] = {"num1": num1.tolist(), "num2": num2.tolist(), "flag": flag.tolist(),
                                   "c0": cats[0].tolist(), "c1": cats[1].tolist(), "c2": cats[2].tolist()}
    for j, name in enumerate(table):
        miss = rng.random(n) < 0.05 + 0.02 * j
        table[name] = [None if m else v for v, m in zip(table[name], miss, strict=True)]
    return table, y


def records(table: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(table)
    return [dict(zip(names, row, strict=True)) for row in zip(*table.values(), strict=True)]


def to_csv(table: dict[str, list[Any]], y: np.ndarray | None = None, target: str = "y") -> bytes:
    """The table as CSV text: empty cells where values are missing, booleans as true/false."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(table)
    writer.writerow([*names, *([target] if y is not None else [])])
    for i, row in enumerate(zip(*table.values(), strict=True)):
        cells = ["" if v is None else ("true" if v is True else "false" if v is False else v) for v in row]
        writer.writerow([*cells, *([int(y[i])] if y is not None else [])])
    return out.getvalue().encode()


def frame(table: dict[str, list[Any]]) -> Any:
    """The table as a pandas DataFrame for scikit-learn (NaN where missing)."""
    import pandas as pd

    data = {}
    for name, values in table.items():
        if name in NUMERIC:
            data[name] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data)


def sklearn_pipeline(params: EncodingParams, C: float = 1.0, tol: float = 1e-12) -> Any:
    """scikit-learn's equivalent of a version trained with ``params``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat_steps: list[Any] = []
    if params.missing_category == "most_frequent":
        cat_steps.append(SimpleImputer(strategy="most_frequent"))
    min_frequency = params.min_frequency
    if min_frequency is not None and min_frequency >= 1:
        min_frequency = int(min_frequency)
    cat_steps.append(OneHotEncoder(
        handle_unknown="infrequent_if_exist" if params.unknown == "infrequent" else "ignore",
        min_frequency=min_frequency, max_categories=params.max_categories, sparse_output=False))
    return make_pipeline(
        ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy=params.impute, add_indicator=params.missing_indicator),
                                  StandardScaler()), NUMERIC),
            ("cat", make_pipeline(*cat_steps), CATEGORICAL),
        ]),
        LogisticRegression(C=C, tol=tol, max_iter=10_000),
    )
