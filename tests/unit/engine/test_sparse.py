"""Tests of the engine on scipy.sparse input: every solver fitted on a CSR matrix gives the model it gives on
the dense copy of that matrix.

How "the same" is judged, honestly:

- The dense fit centers the standardized features and the sparse fit does not (scaling without centering keeps
  the data sparse). That reparametrizes only the unpenalized intercept, so the optimum and the objective are
  the same, but not the iteration paths. Full-batch solvers (lbfgs, newton, proximal) are therefore compared
  by their final objective (relative 1e-8, with a tight ``tol``) and probabilities, not by iterates.
- The mini-batch solvers see the same batches for the same ``random_state``. Where the two parametrizations
  coincide (``standardize=False``, or ``fit_intercept=False`` where the dense fit does not center either) their
  coefficients agree to round-off (1e-10); with centering they follow different paths and are not compared.
- The L1 zero pattern is compared exactly.
"""

from __future__ import annotations

import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine import ConvergenceWarning, LogisticRegression, _loss, _solvers, logistic
from service.engine._loss import LinearLoss
from service.engine._validation import check_X
from service.engine.logistic import column_stats

FULL_BATCH = ("lbfgs", "newton", "proximal")
MINIBATCH = ("sgd", "momentum", "nesterov", "adam")
PENALTIES = {
    "lbfgs": ("l2", "none"),
    "newton": ("l2", "none"),
    "proximal": ("l2", "none", "l1", "elasticnet"),
    **dict.fromkeys(MINIBATCH, ("l2", "none", "l1", "elasticnet")),
}
OBJ_RTOL = 1e-8  # final objective, sparse vs dense, full-batch solvers at a tight tol
PROBA_ATOL = 1e-5  # probabilities: lbfgs stops on its predicted decrease, ~1e-13 relative here
COEF_ATOL = 1e-10  # mini-batch coefficients where both fits take the same steps
FORMATS = ("csr_array", "csr_matrix")


# ----------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------


def sparse_data(
    n_classes: int, *, n: int = 240, d: int = 30, density: float = 0.15, seed: int = 0
) -> tuple[sp.csr_array, np.ndarray]:
    """Non-negative sparse features of unequal scales (a few columns all zero), labels from a linear model,
    so both the standardization and the intercept matter and the classes are not separable."""
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=density, rng=rng, format="csr")
    X = sp.csr_array(X.multiply(rng.uniform(0.5, 20.0, size=d)).tocsr())
    X = sp.csr_array(X.multiply(np.r_[np.ones(d - 3), np.zeros(3)]).tocsr())  # three never-seen features
    X.eliminate_zeros()
    W = rng.normal(size=(max(n_classes, 2), d)) / X.max(axis=0).toarray().clip(1.0)
    Z = X @ W.T + rng.gumbel(size=(n, W.shape[0]))
    y = np.argmax(Z, axis=1) if n_classes > 2 else (Z[:, 1] > Z[:, 0] + 0.3).astype(int)
    y[:n_classes] = np.arange(n_classes)
    return X, y


def as_format(X: sp.csr_array, fmt: str) -> Any:
    return sp.csr_matrix(X) if fmt == "csr_matrix" else X


def weights_for(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 3.0, size=n)


def fit_both(X: Any, y: np.ndarray, sample_weight: np.ndarray | None = None, **params: Any) -> tuple[Any, Any]:
    """The same model fitted on the dense copy and on the sparse matrix; any warning fails the test, except the
    proximal solver's convergence warning: its stop rule meets round-off on raw features before ``tol`` (dense
    data alike), which the objective comparison covers."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if params.get("solver") == "proximal":
            warnings.simplefilter("ignore", ConvergenceWarning)
        dense = LogisticRegression(**params).fit(X.toarray(), y, sample_weight=sample_weight)
        sparse = LogisticRegression(**params).fit(X, y, sample_weight=sample_weight)
    return dense, sparse


def full_batch_params(solver: str) -> dict[str, Any]:
    return {"lbfgs": {"tol": 1e-14, "max_iter": 5000}, "newton": {"tol": 1e-14}, "proximal": {"tol": 1e-7}}[solver]


# ----------------------------------------------------------------------------------------------------
# check_X
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr_array", "csr_matrix", "csc_array", "csc_matrix", "coo_array", "coo_matrix",
                                 "lil_array", "dok_array", "bsr_array"])
def test_check_x_converts_every_sparse_format_to_csr_float64(fmt: str) -> None:
    X, _ = sparse_data(2, n=20, d=6, density=0.4)
    given_X = getattr(sp, fmt)(X.astype(np.float32))
    got = check_X(given_X)
    assert sp.issparse(got) and got.format == "csr" and got.dtype == np.float64
    assert got.has_canonical_format
    np.testing.assert_array_equal(got.toarray(), X.astype(np.float32).toarray())


def test_check_x_does_not_copy_canonical_csr_float64_and_does_not_touch_the_callers_matrix() -> None:
    X, _ = sparse_data(2, n=20, d=6, density=0.4)
    for fmt in FORMATS:
        given_X = as_format(X, fmt)
        got = check_X(given_X)
        assert got.data is given_X.data and got.indices is given_X.indices
    # unsorted indices and a duplicate entry: summed and sorted on a copy
    data, indices, indptr = np.array([1.0, 2.0, 3.0]), np.array([2, 0, 2]), np.array([0, 3, 3])
    raw = sp.csr_array((data.copy(), indices.copy(), indptr.copy()), shape=(2, 3))
    got = check_X(raw)
    np.testing.assert_array_equal(got.toarray(), [[2.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(raw.indices, indices)
    np.testing.assert_array_equal(raw.data, data)


def test_integer_and_boolean_sparse_input_becomes_float64() -> None:
    X = sp.csr_array(np.array([[0, 3], [1, 0]], dtype=np.int64))
    assert check_X(X).dtype == np.float64
    assert check_X(X.astype(bool)).dtype == np.float64


def dense_message(X: np.ndarray) -> str:
    with pytest.raises(ValueError) as info:
        check_X(X)
    return str(info.value)


def test_non_finite_sparse_entries_are_rejected_with_the_dense_wording() -> None:
    X = np.zeros((40, 5))
    X[3, 1] = 1.0
    for bad in ({(2, 1): np.nan, (17, 4): np.nan}, {(5, 0): np.inf, (9, 3): -np.inf},
                {(1, 0): np.nan, (30, 2): np.inf}, {(i, 0): np.nan for i in range(40)}):
        Xb = X.copy()
        for (i, j), v in bad.items():
            Xb[i, j] = v
        expected = dense_message(Xb)
        for fmt in ("csr_array", "csc_matrix", "coo_array"):
            with pytest.raises(ValueError) as info:
                check_X(getattr(sp, fmt)(Xb))
            assert str(info.value) == expected


def test_a_model_fitted_on_sparse_data_rejects_nan_at_predict_naming_the_row() -> None:
    X, y = sparse_data(2, n=40, d=5)
    model = LogisticRegression().fit(X, y)
    Xp = X.toarray()
    Xp[3, 4] = np.nan
    for method in (model.predict, model.predict_proba, model.decision_function, model.predict_log_proba):
        with pytest.raises(ValueError, match=r"NaN in rows \[3\]"):
            method(sp.csr_array(Xp))


def test_complex_input_is_a_value_error() -> None:
    Xc = np.array([[1.0 + 1.0j, 0.0], [0.0, 2.0]])
    for X in (sp.csr_array(Xc), sp.coo_matrix(Xc), Xc):
        with pytest.raises(ValueError, match="Complex data not supported"):
            check_X(X)
        with pytest.raises(ValueError, match="Complex data not supported"):
            LogisticRegression().fit(X, [0, 1])


def test_empty_and_featureless_sparse_input_is_rejected_as_dense_is() -> None:
    for shape in ((0, 3), (4, 0)):
        with pytest.raises(ValueError) as info:
            check_X(sp.csr_array(shape))
        assert str(info.value) == dense_message(np.zeros(shape))


# ----------------------------------------------------------------------------------------------------
# column statistics and the loss
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [7, 2**18])
def test_column_stats_of_csr_equal_the_dense_computation(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logistic, "_SPARSE_CHUNK", chunk)  # several chunks, the last one short
    X, _ = sparse_data(2, n=300, d=12, density=0.3)
    X = X.copy()
    X.data += 1e4  # a large mean next to the spread: the two-pass computation must not cancel
    X.data[::5] = 0.0  # explicit zeros are zeros
    mean, std = column_stats(X)
    dense_mean, dense_std = column_stats(X.toarray())
    np.testing.assert_allclose(mean, dense_mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(std, dense_std, rtol=1e-12, atol=0)
    assert np.all(std[-3:] == 0.0) and np.all(mean[-3:] == 0.0)


@pytest.mark.parametrize("chunk", [7, 2**18])
def test_weighted_column_stats_of_csr_equal_the_dense_ones_and_those_of_repeated_rows(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Weighted mean and population deviation, computed in blocks of rows on CSR: equal to the dense weighted
    computation, and with integer weights to the unweighted statistics of the repeated rows (zero weight: the
    row is left out)."""
    monkeypatch.setattr(logistic, "_SPARSE_CHUNK", chunk)  # several row blocks, the last one short
    X, _ = sparse_data(2, n=300, d=12, density=0.3)
    X = X.copy()
    X.data += 1e4  # a large mean next to the spread: the two-pass computation must not cancel
    X.data[::5] = 0.0
    counts = np.random.default_rng(3).integers(0, 4, size=X.shape[0]).astype(float)
    repeated = X.toarray().repeat(counts.astype(int), axis=0)
    mean, std = column_stats(X, counts)
    for other in (column_stats(X.toarray(), counts), column_stats(repeated), column_stats(sp.csr_array(repeated))):
        np.testing.assert_allclose(mean, other[0], rtol=1e-12, atol=0)
        np.testing.assert_allclose(std, other[1], rtol=1e-10, atol=0)
    assert np.all(std[-3:] == 0.0) and np.all(mean[-3:] == 0.0)


def test_equal_weights_give_the_unweighted_column_stats_bit_for_bit() -> None:
    X, _ = sparse_data(2, n=200, d=10, density=0.3)
    for data in (X, X.toarray()):
        plain = column_stats(data)
        for weights in (np.ones(X.shape[0]), np.full(X.shape[0], 2.5)):
            mean, std = column_stats(data, weights)
            assert np.array_equal(mean, plain[0]) and np.array_equal(std, plain[1])


def loss_pair(
    n_classes: int, fmt: str, *, centered: bool, fit_intercept: bool = True
) -> tuple[LinearLoss, LinearLoss]:
    X, y = sparse_data(n_classes, n=60, d=8, density=0.3)
    Xd = X.toarray()
    w = weights_for(60)
    w /= w.sum()
    mean, scale = Xd.mean(axis=0), Xd.std(axis=0)
    scale[scale == 0] = 1.0
    args = (y.astype(np.intp), w, mean if centered else None, scale, n_classes)
    kwargs = {"l2": 0.05, "fit_intercept": fit_intercept}
    return LinearLoss(Xd, *args, **kwargs), LinearLoss(as_format(X, fmt), *args, **kwargs)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_loss_on_csr_equals_the_loss_on_the_dense_copy(n_classes: int, fmt: str, centered: bool) -> None:
    """Objective, gradient, Hessian products, per-sample losses, moments and the Gram on CSR X, with the
    implicit standardization (and, though the estimator never asks for it, implicit centering)."""
    dense, sparse = loss_pair(n_classes, fmt, centered=centered)
    assert sparse.sparse and sparse._Xt is None and not sparse.has_single
    w = np.random.default_rng(2).normal(size=dense.n_params)
    v = np.random.default_rng(3).normal(size=dense.n_params)
    for got, want in [
        (sparse.logits(w), dense.logits(w)),
        (sparse.loss_grad(w)[1], dense.loss_grad(w)[1]),
        (sparse.hessp(w)(v), dense.hessp(w)(v)),
        (sparse.per_sample_loss(w.reshape(dense.k, -1)), dense.per_sample_loss(w.reshape(dense.k, -1))),
        (sparse.probabilities(w), dense.probabilities(w)),
        (sparse._linear, dense._linear),
        *zip(sparse.weighted_moments(dense.weights), dense.weighted_moments(dense.weights), strict=True),
    ]:
        assert type(got) is np.ndarray
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    assert sparse.loss(w) == pytest.approx(dense.loss(w), rel=1e-13)
    if n_classes == 2:
        np.testing.assert_allclose(sparse.hessian(w), dense.hessian(w), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(
        sparse.weighted_gram(dense.weights), dense.weighted_gram(dense.weights), rtol=1e-11, atol=1e-13
    )
    idx = np.array([5, 1, 30, 2, 2, 59])
    sub_sparse, sub_dense = sparse.subset(idx), dense.subset(idx)
    assert sub_sparse.sparse
    np.testing.assert_allclose(sub_sparse.loss_grad(w)[1], sub_dense.loss_grad(w)[1], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("chunk", [3, _loss._HESSIAN_CHUNK])
def test_weighted_gram_and_moments_of_csr_in_chunks(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_loss, "_HESSIAN_CHUNK", chunk)
    monkeypatch.setattr(_loss, "_SPARSE_CHUNK", chunk)
    dense, sparse = loss_pair(2, "csr_array", centered=False, fit_intercept=False)
    h = weights_for(60, seed=4)
    np.testing.assert_allclose(sparse.weighted_gram(h), dense.weighted_gram(h), rtol=1e-12, atol=1e-13)
    for got, want in zip(sparse.weighted_moments(h), dense.weighted_moments(h), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_the_loss_never_densifies_or_copies_x() -> None:
    """A fit's extra memory stays a small multiple of the CSR bytes, far below one dense copy (128 MiB)."""
    rng = np.random.default_rng(0)
    n, d = 4000, 4000
    X = sp.random_array((n, d), density=5 / d, rng=rng, format="csr")
    y = (X @ rng.normal(size=d) > X @ rng.normal(size=d)).astype(int)
    y[:2] = [0, 1]
    for solver in ("lbfgs", "newton", "proximal"):
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # 20 iterations do not converge; only the memory counts here
                LogisticRegression(solver=solver, max_iter=20).fit(X, y)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, f"{solver}: {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("n_classes", [2, 3])
def test_newton_cg_on_csr_reaches_the_exact_newton_optimum(n_classes: int) -> None:
    """The conjugate-gradient path (wide binary data, every multinomial model) on CSR X: Hessian-vector
    products through X and its CSC view, against the dense loss with the exact Hessian where there is one."""
    dense, sparse = loss_pair(n_classes, "csr_array", centered=False)
    x0 = np.zeros(dense.n_params)
    exact = _solvers.newton(dense, x0, max_iter=100, tol=1e-14)
    cg = _solvers.newton(sparse, x0, max_iter=100, tol=1e-14, exact_max_dim=0)
    assert exact.converged and cg.converged
    assert cg.loss_history[-1] == pytest.approx(exact.loss_history[-1], rel=1e-12)
    np.testing.assert_allclose(cg.coef, exact.coef, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# Fits: sparse equals dense
# ----------------------------------------------------------------------------------------------------


def objective_gap(dense: Any, sparse: Any) -> float:
    f_dense, f_sparse = dense.loss_history_[-1], sparse.loss_history_[-1]
    return abs(f_sparse - f_dense) / abs(f_dense)


FULL_CASES = [(s, p) for s in FULL_BATCH for p in PENALTIES[s]]


@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(("solver", "penalty"), FULL_CASES)
def test_full_batch_fit_on_csr_reaches_the_dense_optimum(
    solver: str, penalty: str, n_classes: int, standardize: bool
) -> None:
    X, y = sparse_data(n_classes)
    params = {"solver": solver, "penalty": penalty, "C": 0.5, "standardize": standardize, **full_batch_params(solver)}
    dense, sparse = fit_both(X, y, weights_for(X.shape[0]), class_weight="balanced", **params)
    assert solver == "proximal" or (sparse.converged_ and dense.converged_)
    assert objective_gap(dense, sparse) <= OBJ_RTOL
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()), rtol=0, atol=PROBA_ATOL)
    np.testing.assert_array_equal(sparse.coef_ == 0.0, dense.coef_ == 0.0)
    np.testing.assert_allclose(sparse.scale_, dense.scale_, rtol=1e-12)
    assert np.all(sparse.mean_ == 0.0)  # sparse data is not centered


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
def test_l1_zero_pattern_on_csr_equals_dense(penalty: str, n_classes: int) -> None:
    X, y = sparse_data(n_classes, d=40)
    dense, sparse = fit_both(X, y, solver="proximal", penalty=penalty, C=0.05, l1_ratio=0.6)
    zeros = dense.coef_ == 0.0
    assert 0 < zeros.sum() < zeros.size  # some coefficients vanish, not all
    np.testing.assert_array_equal(sparse.coef_ == 0.0, zeros)
    assert objective_gap(dense, sparse) <= OBJ_RTOL


MINIBATCH_CASES = [(s, p) for s in MINIBATCH for p in PENALTIES[s]]
SAME_PARAMETRIZATION = [
    {"standardize": False, "learning_rate": 0.002},
    {"fit_intercept": False},
    {"standardize": False, "learning_rate": 0.002, "early_stopping": True, "n_iter_no_change": 3},
]


@pytest.mark.parametrize("extra", SAME_PARAMETRIZATION, ids=["raw", "no_intercept", "early_stopping"])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(("solver", "penalty"), MINIBATCH_CASES)
def test_minibatch_fit_on_csr_takes_the_dense_steps(
    solver: str, penalty: str, n_classes: int, extra: dict[str, Any]
) -> None:
    X, y = sparse_data(n_classes)
    params = {"solver": solver, "penalty": penalty, "C": 0.5, "max_iter": 8, "random_state": 3, **extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 8 epochs do not converge; both fits warn alike
        dense = LogisticRegression(**params).fit(X.toarray(), y, sample_weight=weights_for(X.shape[0]))
        sparse = LogisticRegression(**params).fit(X, y, sample_weight=weights_for(X.shape[0]))
    assert sparse.n_iter_ == dense.n_iter_
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=0, atol=COEF_ATOL)
    np.testing.assert_allclose(sparse.loss_history_, dense.loss_history_, rtol=1e-10)
    if penalty in ("l1", "elasticnet"):
        np.testing.assert_array_equal(sparse.coef_ == 0.0, dense.coef_ == 0.0)


@pytest.mark.parametrize("solver", MINIBATCH)
def test_minibatch_fit_on_csr_with_class_weight_and_standardization(solver: str) -> None:
    """Centered (dense) and uncentered (sparse) steps differ, so only the outcome is compared: after the same
    budget both runs end within 1% of the optimum's objective (where the dense run ends, 0.1 to 0.5%)."""
    X, y = sparse_data(3)
    sw = weights_for(X.shape[0])
    params = {"solver": solver, "C": 0.5, "max_iter": 100, "tol": None, "random_state": 0,
              "class_weight": "balanced", "lr_schedule": "inverse_time", "lr_decay": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of epochs: tol=None
        dense = LogisticRegression(**params).fit(X.toarray(), y, sample_weight=sw)
        sparse = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    best = LogisticRegression(solver="newton", C=0.5, class_weight="balanced").fit(X, y, sample_weight=sw)
    f_best = best.loss_history_[-1]
    for model in (dense, sparse):
        assert f_best <= model.loss_history_[-1] <= 1.01 * f_best


@pytest.mark.parametrize("fmt", FORMATS)
def test_prediction_on_sparse_input_equals_dense(fmt: str) -> None:
    X, y = sparse_data(3)
    model = LogisticRegression().fit(X.toarray(), y)
    Xf = as_format(X, fmt)
    Z = model.decision_function(Xf)
    assert type(Z) is np.ndarray
    np.testing.assert_allclose(Z, model.decision_function(X.toarray()), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(model.predict_proba(Xf), model.predict_proba(X.toarray()), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(model.predict(Xf), model.predict(X.toarray()))
    assert model.score(Xf, y) == model.score(X.toarray(), y)
    binary = LogisticRegression().fit(as_format(X, fmt), y == 1)
    assert binary.decision_function(Xf).shape == (X.shape[0],)


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "proximal", "adam"])
def test_warm_start_on_sparse_input(solver: str) -> None:
    X, y = sparse_data(2)
    model = LogisticRegression(solver=solver, warm_start=True, C=0.5, random_state=0, max_iter=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X.toarray(), y)  # dense first: the coefficients carry over in raw units
        first = model.loss_history_[-1]
        model.fit(X, y)
    assert model.loss_history_[0] == pytest.approx(first, rel=1e-9)
    if solver != "adam":
        assert model.n_iter_ <= 3


def test_wide_data_skips_the_dense_gram_and_still_reaches_the_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above _PRECONDITION_MAX_FEATURES no (d + 1)^2 Gram is formed, dense or sparse, even on many rows."""
    monkeypatch.setattr(logistic, "_PRESOLVE_ROWS", 100)
    monkeypatch.setattr(logistic, "_PRECONDITION_MAX_FEATURES", 20)

    def no_gram(loss: LinearLoss) -> None:
        raise AssertionError("the dense Gram was formed")

    monkeypatch.setattr(logistic, "_inverse_gram", no_gram)
    for n_classes in (2, 3):
        X, y = sparse_data(n_classes, n=400)
        reference = LogisticRegression(solver="newton", tol=1e-14).fit(X.toarray(), y)
        for data in (X, X.toarray()):
            model = LogisticRegression(tol=1e-13).fit(data, y)
            assert model.converged_
            assert model.loss_history_[-1] == pytest.approx(reference.loss_history_[-1], rel=OBJ_RTOL)


def test_presolve_with_the_dense_gram_on_many_sparse_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logistic, "_PRESOLVE_ROWS", 100)
    X, y = sparse_data(3, n=600)
    reference = LogisticRegression(solver="newton", tol=1e-14).fit(X.toarray(), y)
    model = LogisticRegression(tol=1e-13).fit(X, y)
    assert model.converged_
    assert model.loss_history_[-1] == pytest.approx(reference.loss_history_[-1], rel=OBJ_RTOL)


# ----------------------------------------------------------------------------------------------------
# Random sparse matrices
# ----------------------------------------------------------------------------------------------------


@st.composite
def sparse_problems(draw: st.DrawFn) -> tuple[sp.csr_array, np.ndarray, np.ndarray | None, dict[str, Any]]:
    n = draw(st.integers(6, 80))
    d = draw(st.integers(1, 25))
    density = draw(st.sampled_from([0.02, 0.1, 0.3, 0.7]))
    n_classes = draw(st.sampled_from([2, 2, 3, 4]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = sp.random_array((n, d), density=density, rng=rng, format="csr", data_sampler=rng.standard_normal)
    X = sp.csr_array(X.multiply(rng.choice([0.0, 0.01, 1.0, 50.0], size=d, p=[0.2, 0.2, 0.4, 0.2])).tocsr())
    y = rng.integers(0, n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)
    sample_weight = rng.uniform(0.1, 3.0, size=n) if draw(st.booleans()) else None
    params = {
        "C": draw(st.sampled_from([0.05, 1.0, 20.0])),
        "standardize": draw(st.booleans()),
        "fit_intercept": draw(st.booleans()),
        "class_weight": draw(st.sampled_from([None, "balanced"])),
    }
    return X, y, sample_weight, params


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(sparse_problems())
def test_lbfgs_on_random_sparse_matrices_reaches_the_dense_objective(
    problem: tuple[sp.csr_array, np.ndarray, np.ndarray | None, dict[str, Any]],
) -> None:
    X, y, sample_weight, params = problem
    dense, sparse = fit_both(X, y, sample_weight, tol=1e-14, max_iter=5000, **params)
    assert sparse.converged_ and dense.converged_
    assert objective_gap(dense, sparse) <= OBJ_RTOL
