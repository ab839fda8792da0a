"""Tests of ``service.engine._solvers``: the L-BFGS memory against the textbook BFGS recursion, and L-BFGS
reaching the same optimum whatever precision and data layout it runs on (single-precision products,
their resynchronization, the raw-X loss of large data, the presolve on a subsample of the rows).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification

from service.engine import LogisticRegression, _loss, _solvers, logistic
from service.engine._loss import LinearLoss


@pytest.fixture(autouse=True)
def single_precision_on_small_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Single-precision products also for the few rows here, so the tests run that phase of L-BFGS."""
    monkeypatch.setattr(_loss, "_SINGLE_MIN_WORK", 0)


def bfgs_inverse(pairs: list[tuple[np.ndarray, np.ndarray]], H0: np.ndarray) -> np.ndarray:
    """The L-BFGS inverse Hessian by the recursion ``H <- V^T H V + rho s s^T``, oldest pair first."""
    s_last, y_last = pairs[-1]
    H = float(s_last @ y_last) / float(y_last @ H0 @ y_last) * H0
    for s, y in pairs:
        rho = 1.0 / float(s @ y)
        V = np.eye(s.size) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("preconditioned", [False, True])
def test_memory_matches_the_bfgs_recursion_as_pairs_come_and_go(preconditioned: bool) -> None:
    rng = np.random.default_rng(0)
    k, width, size = 3, 4, 5
    n = k * width
    A = rng.normal(size=(n, n))
    hessian = A @ A.T + np.eye(n)
    B = rng.normal(size=(width, width))
    P = B @ B.T + np.eye(width) if preconditioned else None
    H0 = np.kron(np.eye(k), P) if P is not None else np.eye(n)
    memory = _solvers._Memory(size, (k, width), P)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for step in range(13):  # the ring fills, wraps around twice, then restarts
        if step == 9:
            memory.clear()
            pairs = []
        s = rng.normal(size=n)
        memory.append(s, hessian @ s)
        pairs = [*pairs, (s, hessian @ s)][-size:]
        g = rng.normal(size=n)
        np.testing.assert_allclose(memory.times(g, 1.0), bfgs_inverse(pairs, H0) @ g, rtol=1e-9, atol=1e-12)
        for (s_got, y_got), (s_want, y_want) in zip(memory.pairs(), pairs, strict=True):
            np.testing.assert_array_equal(s_got, s_want)
            np.testing.assert_allclose(y_got, y_want, rtol=1e-15)


def make_loss(n_classes: int, seed: int = 0) -> LinearLoss:
    X, y = make_classification(300, 8, n_informative=5, n_classes=n_classes, flip_y=0.05, random_state=seed)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    X = X * 3.0 + 1.0  # raw features: the standardization matters
    return LinearLoss(X, y.astype(np.intp), np.full(300, 1 / 300), mean * 3.0 + 1.0, scale * 3.0, n_classes, l2=1e-3)


def solve(loss: LinearLoss, **kwargs: float) -> _solvers.SolverResult:
    return _solvers.lbfgs(loss, np.zeros(loss.n_params), max_iter=1000, tol=1e-12, **kwargs)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_single_precision_steps_reach_the_double_precision_optimum(
    n_classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = make_loss(n_classes)
    assert single.has_single
    monkeypatch.setattr(_loss, "_SINGLE_MAX", -1.0)
    double = make_loss(n_classes)
    assert not double.has_single
    a, b = solve(single), solve(double)
    assert a.converged and b.converged
    assert a.loss_history[-1] == pytest.approx(b.loss_history[-1], rel=1e-12)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-5)
    assert a.loss_history[-1] == pytest.approx(single.loss(a.coef), rel=1e-14)  # exact logits at the end


def test_frequent_resynchronization_of_single_precision_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = make_loss(4)
    reference = solve(loss)
    monkeypatch.setattr(_solvers, "_SINGLE_RESYNC", 2)
    monkeypatch.setattr(_solvers, "_SINGLE_UNTIL", 1e-12)  # single precision nearly all the way
    result = _solvers.lbfgs(loss, np.zeros(loss.n_params), max_iter=1000, tol=1e-9)
    assert result.converged
    assert result.loss_history[-1] == pytest.approx(reference.loss_history[-1], rel=1e-8)
    assert result.loss_history[-1] == pytest.approx(loss.loss(result.coef), rel=1e-14)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_lbfgs_on_raw_x_reaches_the_optimum_of_the_copy(n_classes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = solve(make_loss(n_classes))
    monkeypatch.setattr(_loss, "_DENSE_BYTES", -1)
    monkeypatch.setattr(_loss, "_LOGIT_CHUNK", 64)  # several blocks of rows, the last one short
    raw = solve(make_loss(n_classes))
    assert raw.converged
    assert raw.loss_history[-1] == pytest.approx(copy.loss_history[-1], rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_presolve_on_a_subsample_reaches_the_newton_optimum(n_classes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large-data path on small data: raw X, a whitening preconditioner and seeded curvature pairs."""
    X, y = make_classification(2000, 8, n_informative=5, n_classes=n_classes, flip_y=0.05, random_state=3)
    X = X * [1.0, 10.0, 0.1, 1.0, 5.0, 1.0, 2.0, 1.0] + 3.0
    monkeypatch.setattr(logistic, "_PRESOLVE_ROWS", 500)
    monkeypatch.setattr(_loss, "_DENSE_BYTES", -1)
    ours = LogisticRegression(solver="lbfgs", C=0.5, tol=1e-10).fit(X, y)
    reference = LogisticRegression(solver="newton", C=0.5).fit(X, y)
    assert ours.converged_
    assert ours.loss_history_[-1] == pytest.approx(reference.loss_history_[-1], rel=1e-9)


def test_many_parameters_keep_fewer_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pairs stay within their byte budget (never fewer than 10) and L-BFGS still reaches the optimum."""
    loss = make_loss(4)
    reference = solve(loss)
    assert len(reference.curvature_pairs) > 12
    monkeypatch.setattr(_solvers, "_MEMORY_BYTES", 24 * loss.n_params * 12)
    budgeted = solve(loss)
    assert budgeted.converged
    assert len(budgeted.curvature_pairs) == 12
    assert budgeted.loss_history[-1] == pytest.approx(reference.loss_history[-1], rel=1e-12)
    monkeypatch.setattr(_solvers, "_MEMORY_BYTES", 1)
    assert len(solve(loss).curvature_pairs) == 10


@pytest.mark.parametrize("C", [1e4, 1e6])
def test_single_precision_on_nearly_separable_data_reaches_the_optimum(C: float) -> None:
    """Weak regularization on separable data: the objective goes to nearly 0, where single-precision rounding
    would stall the descent or stop it early; L-BFGS must leave that phase and reach Newton's optimum."""
    X, y = load_digits(return_X_y=True)
    ours = LogisticRegression(C=C).fit(X, y)
    reference = LogisticRegression(solver="newton", C=C).fit(X, y)
    assert ours.converged_
    assert ours.loss_history_[-1] == pytest.approx(reference.loss_history_[-1], rel=1e-5)
    assert np.all(np.diff(ours.loss_history_) <= 0)


def test_out_of_iterations_in_single_precision_reports_the_exact_objective() -> None:
    loss = make_loss(4)
    result = _solvers.lbfgs(loss, np.zeros(loss.n_params), max_iter=5, tol=1e-12)
    assert not result.converged and result.n_iter == 5
    assert result.loss_history[-1] == pytest.approx(loss.loss(result.coef), rel=1e-15)
