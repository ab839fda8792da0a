"""The encoding against scikit-learn's pipeline: the same columns, the same fitted model."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from service.data.columns import UNKNOWN, Columns, json_kind
from service.data.encoding import EncodedModel, fit_encoder
from service.domain import EncodingParams
from service.engine import LogisticRegression
from service.errors import InvalidInputError
from tests.mixed import frame, make_table, sklearn_pipeline


def ours(table: dict[str, list], params: EncodingParams) -> tuple[Columns, np.ndarray]:
    names = list(table)
    columns = Columns.settle(names, params.declared(), {n: json_kind(table[n], n, "t") for n in names})
    return columns, columns.json_matrix([table[n] for n in names], "t")


PARAMS = [
    EncodingParams(),
    EncodingParams(impute="mean", missing_indicator=True, min_frequency=5),
    EncodingParams(missing_category="most_frequent", max_categories=4, unknown="infrequent"),
    EncodingParams(min_frequency=0.03, unknown="infrequent", missing_indicator=True),
]


@pytest.mark.parametrize("params", PARAMS, ids=range(len(PARAMS)))
def test_matches_the_scikit_learn_pipeline(params: EncodingParams) -> None:
    table, y = make_table(3000, seed=1)
    test, _ = make_table(500, seed=2)
    test["c2"][:7] = ["never-seen"] * 7  # unseen categories at prediction
    columns, X = ours(table, params)
    encoder = fit_encoder(X, columns, params, standardize=True)
    reference = sklearn_pipeline(params)
    reference.fit(frame(table), y)
    Xt = reference[0].transform(frame(table))
    assert encoder.width == Xt.shape[1]
    encoded = encoder.transform(X)
    dense = encoded.toarray() if sp.issparse(encoded) else encoded
    # the same columns up to their order: compare sorted column fingerprints
    assert np.allclose(np.sort(dense.sum(axis=0)), np.sort(Xt.sum(axis=0)), atol=1e-9)
    model = EncodedModel(encoder, LogisticRegression(standardize=False, solver="newton", tol=1e-12).fit(encoded, y))
    Xtest = model.columns().json_matrix([test[n] for n in table], "test")
    assert (Xtest[:7, 5] == UNKNOWN).all()
    ours_p = model.predict_proba(Xtest)
    ref_p = reference.predict_proba(frame(test))
    assert np.abs(ours_p - ref_p).max() < 1e-4
    # the same objective at both optima
    sk = reference[-1]
    def objective(coef, intercept, M):
        z = M @ coef.ravel() + intercept[0]
        return np.sum(np.logaddexp(0, z) - y * z) + 0.5 * coef.ravel() @ coef.ravel()
    ours_f = objective(model.estimator.coef_, model.estimator.intercept_, dense)
    ref_f = objective(sk.coef_, sk.intercept_, Xt)
    assert abs(ours_f - ref_f) <= 1e-6 * abs(ref_f)


def test_sparse_and_dense_output_agree() -> None:
    table, _ = make_table(200, seed=3)
    columns, X = ours(table, EncodingParams(missing_indicator=True))
    encoder = fit_encoder(X, columns, EncodingParams(missing_indicator=True), standardize=True)
    assert np.array_equal(encoder.transform(X, sparse=True).toarray(), encoder.transform(X, sparse=False))


def test_arrow_and_json_columns_give_the_same_codes() -> None:
    table, _ = make_table(300, seed=4)
    columns, X = ours(table, EncodingParams())
    encoder = fit_encoder(X, columns, EncodingParams(), standardize=True)
    serving = EncodedModel(encoder, None).columns()
    for j, name in enumerate(table):
        kind = serving.kind(name)
        arrow = pa.array(table[name], {"numeric": pa.float64(), "boolean": pa.bool_()}.get(kind, pa.string()))
        assert np.array_equal(serving.from_arrow(name, arrow, "t"), serving.from_json(name, table[name], "t"),
                              equal_nan=True), name
        assert np.array_equal(serving.from_json(name, table[name], "t"), X[:, j], equal_nan=True)


def test_kinds_are_checked_at_prediction() -> None:
    table, _ = make_table(100, seed=5)
    columns, X = ours(table, EncodingParams())
    serving = EncodedModel(fit_encoder(X, columns, EncodingParams(), standardize=True), None).columns()
    with pytest.raises(InvalidInputError, match="column 'num1' is numeric; row 1 holds 'abc'"):
        serving.from_json("num1", [1.0, "abc"], "records")
    with pytest.raises(InvalidInputError, match="column 'c0' is categorical; row 0 holds True"):
        serving.from_json("c0", [True], "records")
    with pytest.raises(InvalidInputError, match="column 'flag' is boolean; row 0 holds 1"):
        serving.from_json("flag", [1], "records")


def test_mixed_text_and_numbers_in_one_column_is_refused_unless_declared() -> None:
    with pytest.raises(InvalidInputError, match="mixes numbers and text"):
        json_kind([1, "a"], "zip", "records")
    columns = Columns.settle(["zip"], EncodingParams(categorical=["zip"]).declared(), {"zip": "numeric"})
    codes = columns.from_json("zip", [94103, "94103", 94110.0, None], "t")
    assert codes[0] == codes[1] and codes[2] != codes[0] and np.isnan(codes[3])
    assert columns.categories["zip"] == ["94103", "94110"]
