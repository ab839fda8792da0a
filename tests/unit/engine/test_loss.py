"""Tests of ``service.engine._loss``: the gradient, Hessian-vector product and full Hessian of the penalized
logistic objective against central finite differences, at seeded random points, for the binary (sigmoid)
and multinomial (softmax) models, with and without the implicit standardization, sample weights, an
intercept and an L2 term; plus the overflow-free scalar helpers. Every test runs on both layouts of the
data: the standardized, transposed copy of small data and the raw ``X`` of large data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from service.engine import _loss
from service.engine._loss import LinearLoss, log1pexp, log_softmax, sigmoid

N_SAMPLES = 40
N_FEATURES = 4
STEP = 1e-5  # central differences: truncation ~ STEP**2, round-off ~ 1e-16 / STEP; both far below ATOL
ATOL = 1e-7
RTOL = 1e-6


@pytest.fixture(autouse=True, params=["copy", "raw"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``copy``: the loss keeps its own standardized, transposed copy (small data), also in single precision
    even for these few rows; ``raw``: it works on X."""
    monkeypatch.setattr(_loss, "_SINGLE_MIN_WORK", 0)
    if request.param == "raw":
        monkeypatch.setattr(_loss, "_DENSE_BYTES", -1)
    return str(request.param)


def make_loss(
    n_classes: int,
    *,
    standardize: bool,
    weighted: bool,
    fit_intercept: bool,
    l2: float,
    seed: int = 0,
) -> LinearLoss:
    """A small loss on raw features with a non-zero mean and unequal scales, so the standardization matters."""
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[3.0, -1.0, 0.5, 10.0], scale=[2.0, 0.5, 1.0, 4.0], size=(N_SAMPLES, N_FEATURES))
    y = rng.integers(0, n_classes, size=N_SAMPLES).astype(np.intp)
    y[:n_classes] = np.arange(n_classes)  # every class present
    raw = rng.uniform(0.2, 3.0, size=N_SAMPLES) if weighted else np.ones(N_SAMPLES)
    mean = X.mean(axis=0) if standardize and fit_intercept else None
    scale = X.std(axis=0) if standardize else None
    return LinearLoss(X, y, raw / raw.sum(), mean, scale, n_classes, l2=l2, fit_intercept=fit_intercept)


def random_point(loss: LinearLoss, seed: int = 1, spread: float = 0.7) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=spread, size=loss.n_params)


def numeric_gradient(f: Callable[[np.ndarray], float], w: np.ndarray, h: float = STEP) -> np.ndarray:
    g = np.empty_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        g[i] = (f(w + e) - f(w - e)) / (2.0 * h)
    return g


def numeric_jacobian(grad: Callable[[np.ndarray], np.ndarray], w: np.ndarray, h: float = STEP) -> np.ndarray:
    """Column j is the central difference of the gradient along coordinate j."""
    cols = []
    for j in range(w.size):
        e = np.zeros_like(w)
        e[j] = h
        cols.append((grad(w + e) - grad(w - e)) / (2.0 * h))
    return np.column_stack(cols)


CASES = [
    pytest.param(
        k,
        s,
        wt,
        fi,
        l2,
        id=f"k{k}-{'std' if s else 'raw'}-{'sw' if wt else 'unw'}-{'icpt' if fi else 'noicpt'}-l2={l2}",
    )
    for k in (2, 3)
    for s in (False, True)
    for wt in (False, True)
    for fi in (True, False)
    for l2 in (0.0, 0.3)
]


@pytest.mark.parametrize(("n_classes", "standardize", "weighted", "fit_intercept", "l2"), CASES)
def test_loss_grad_matches_finite_differences(
    n_classes: int, standardize: bool, weighted: bool, fit_intercept: bool, l2: float
) -> None:
    loss = make_loss(n_classes, standardize=standardize, weighted=weighted, fit_intercept=fit_intercept, l2=l2)
    k, d = loss.k, loss.d
    w = random_point(loss)
    f, g = loss.loss_grad(w)
    assert f == pytest.approx(loss.loss(w), rel=1e-13)
    assert g.shape == (k * (d + 1),)
    G = g.reshape(k, d + 1)
    if fit_intercept:
        np.testing.assert_allclose(g, numeric_gradient(loss.loss, w), rtol=RTOL, atol=ATOL)
    else:
        # the intercept is fixed at its start: zero gradient there; the other entries are true derivatives
        assert np.all(G[:, d] == 0.0)
        num = numeric_gradient(loss.loss, w).reshape(k, d + 1)
        np.testing.assert_allclose(G[:, :d], num[:, :d], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("n_classes", "standardize", "weighted", "fit_intercept", "l2"), CASES)
def test_hessp_matches_finite_differences_of_the_gradient(
    n_classes: int, standardize: bool, weighted: bool, fit_intercept: bool, l2: float
) -> None:
    loss = make_loss(n_classes, standardize=standardize, weighted=weighted, fit_intercept=fit_intercept, l2=l2)
    w = random_point(loss)
    rng = np.random.default_rng(7)

    def grad(x: np.ndarray) -> np.ndarray:
        return loss.loss_grad(x)[1]

    J = numeric_jacobian(grad, w)
    product = loss.hessp(w)
    for _ in range(3):
        v = rng.normal(size=w.size)
        np.testing.assert_allclose(product(v), J @ v, rtol=RTOL, atol=ATOL)
    # the operator is the full matrix: products with the unit vectors rebuild the finite-difference Jacobian
    H = np.column_stack([product(e) for e in np.eye(w.size)])
    np.testing.assert_allclose(H, J, rtol=RTOL, atol=ATOL)
    if fit_intercept:
        np.testing.assert_allclose(H, H.T, atol=1e-12)


@pytest.mark.parametrize(
    ("standardize", "weighted", "fit_intercept", "l2"), [c.values[1:] for c in CASES if c.values[0] == 2]
)
def test_binary_hessian_matches_finite_differences(
    standardize: bool, weighted: bool, fit_intercept: bool, l2: float
) -> None:
    loss = make_loss(2, standardize=standardize, weighted=weighted, fit_intercept=fit_intercept, l2=l2)
    d = loss.d
    w = random_point(loss)
    H = loss.hessian(w)
    assert H.shape == (d + 1, d + 1)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    J = numeric_jacobian(lambda x: loss.loss_grad(x)[1], w)
    if fit_intercept:
        np.testing.assert_allclose(H, J, rtol=RTOL, atol=ATOL)
        assert np.all(np.linalg.eigvalsh(H) > -1e-12)
    else:
        # the fixed intercept is decoupled with a unit diagonal so a Newton step leaves it in place
        np.testing.assert_allclose(H[:d, :d], J[:d, :d], rtol=RTOL, atol=ATOL)
        assert np.all(H[:d, d] == 0.0) and np.all(H[d, :d] == 0.0) and H[d, d] == 1.0


@pytest.mark.parametrize("standardize", [False, True])
def test_hessian_is_the_same_when_built_in_several_row_chunks(
    standardize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    loss = make_loss(2, standardize=standardize, weighted=True, fit_intercept=True, l2=0.1)
    w = random_point(loss)
    whole = loss.hessian(w)
    monkeypatch.setattr(_loss, "_HESSIAN_CHUNK", 7)  # 40 rows -> 6 chunks, the last one short
    np.testing.assert_allclose(loss.hessian(w), whole, rtol=1e-12, atol=1e-14)


def test_full_hessian_is_only_for_the_binary_model() -> None:
    loss = make_loss(3, standardize=False, weighted=False, fit_intercept=True, l2=0.0)
    with pytest.raises(ValueError, match="binary"):
        loss.hessian(random_point(loss))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_hessp_does_not_reuse_probabilities_from_another_point(n_classes: int) -> None:
    loss = make_loss(n_classes, standardize=True, weighted=True, fit_intercept=True, l2=0.1)
    w1, w2 = random_point(loss, seed=1), random_point(loss, seed=2)
    v = np.random.default_rng(3).normal(size=w1.size)
    fresh = make_loss(n_classes, standardize=True, weighted=True, fit_intercept=True, l2=0.1)
    expected = fresh.hessp(w2)(v)
    loss.loss_grad(w1)  # nothing evaluated at w1 may leak into the operator at w2
    np.testing.assert_allclose(loss.hessp(w2)(v), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_implicit_standardization_equals_explicitly_standardized_features(n_classes: int, weighted: bool) -> None:
    implicit = make_loss(n_classes, standardize=True, weighted=weighted, fit_intercept=True, l2=0.2)
    assert implicit.mean is not None and implicit.scale is not None
    Xs = (implicit.X - implicit.mean) / implicit.scale
    explicit = LinearLoss(Xs, implicit.y, implicit.weights, None, None, n_classes, l2=0.2, fit_intercept=True)
    for seed in range(3):
        w = random_point(implicit, seed=seed)
        f1, g1 = implicit.loss_grad(w)
        f2, g2 = explicit.loss_grad(w)
        assert f1 == pytest.approx(f2, rel=1e-12)
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
        v = np.random.default_rng(seed).normal(size=w.size)
        np.testing.assert_allclose(implicit.hessp(w)(v), explicit.hessp(w)(v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_loss_is_weighted_mean_log_loss_plus_l2_on_non_intercept_terms(n_classes: int) -> None:
    loss = make_loss(n_classes, standardize=False, weighted=True, fit_intercept=True, l2=0.25)
    w = random_point(loss)
    W = w.reshape(loss.k, loss.d + 1)
    Z = loss.X @ W[:, :-1].T + W[:, -1]
    if loss.k == 1:
        Z = np.column_stack([np.zeros(len(Z)), Z[:, 0]])
    logp = Z - np.logaddexp.reduce(Z, axis=1, keepdims=True)
    expected = -(loss.weights @ logp[np.arange(len(loss.y)), loss.y]) + 0.125 * np.sum(W[:, :-1] ** 2)
    assert loss.loss(w) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_single_precision_products_are_double_ones_rounded(layout: str, n_classes: int, fit_intercept: bool) -> None:
    loss = make_loss(n_classes, standardize=True, weighted=True, fit_intercept=fit_intercept, l2=0.1)
    assert loss.has_single == (layout == "copy")
    if not loss.has_single:
        return
    w = random_point(loss)
    Z = loss.logits(w)
    Z32 = loss.logits(w, single=True)
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(Z32, Z, rtol=1e-5, atol=1e-5 * np.abs(Z).max())
    _, Q = loss.value(w, Z)
    g = loss.gradient(w, Q)
    g32 = loss.gradient(w, Q, single=True)
    assert g32.dtype == np.float64
    np.testing.assert_allclose(g32, g, rtol=1e-5, atol=1e-6 * np.abs(g).max())
    if not fit_intercept:
        assert np.all(g32.reshape(loss.k, -1)[:, -1] == 0.0)


def test_no_single_precision_copy_of_huge_features_or_of_tiny_data(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = make_loss(2, standardize=False, weighted=False, fit_intercept=True, l2=0.1)
    huge = LinearLoss(loss.X * 1e7, loss.y, loss.weights, None, None, 2, l2=0.1)
    assert not huge.has_single
    monkeypatch.setattr(_loss, "_SINGLE_MIN_WORK", 10**9)
    assert not make_loss(2, standardize=False, weighted=False, fit_intercept=True, l2=0.1).has_single


def test_subset_renormalizes_the_weights() -> None:
    loss = make_loss(3, standardize=True, weighted=True, fit_intercept=True, l2=0.1)
    idx = np.array([0, 3, 5, 11, 20])
    sub = loss.subset(idx)
    assert sub.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(sub.weights, loss.weights[idx] / loss.weights[idx].sum())
    np.testing.assert_array_equal(sub.X, loss.X[idx])
    assert (sub.l2, sub.fit_intercept, sub.n_classes) == (loss.l2, loss.fit_intercept, loss.n_classes)


def test_scalar_helpers_are_finite_and_silent_for_huge_logits() -> None:
    z = np.array([-1e308, -1e4, -745.0, -40.0, -1.0, 0.0, 1e-300, 1.0, 40.0, 745.0, 1e4, 1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = log1pexp(z)
        s = sigmoid(z)
        ls = log_softmax(np.column_stack([z[1:-1], -z[1:-1], np.zeros(z.size - 2)]))
    np.testing.assert_allclose(lp, np.logaddexp(0.0, z), rtol=1e-15)
    assert np.all((s >= 0.0) & (s <= 1.0))
    assert s[0] == 0.0 and s[-1] == 1.0 and s[5] == 0.5
    np.testing.assert_allclose(s[1:-1] + sigmoid(-z[1:-1]), 1.0, rtol=1e-15)
    assert np.all(np.isfinite(ls)) and np.all(ls <= 0.0)
    np.testing.assert_allclose(np.exp(ls).sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_loss_and_gradient_stay_finite_at_logits_of_1e4(n_classes: int) -> None:
    loss = make_loss(n_classes, standardize=False, weighted=False, fit_intercept=True, l2=0.0)
    W = np.zeros((loss.k, loss.d + 1))
    W[:, 0] = 1e4 * (np.arange(loss.k) + 1) / loss.X[:, 0].std()  # logits in the thousands to tens of thousands
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f, g = loss.loss_grad(W.ravel())
        hv = loss.hessp(W.ravel())(np.ones(W.size))
        per = loss.per_sample_loss(W)
    assert np.isfinite(f) and np.all(np.isfinite(g)) and np.all(np.isfinite(hv))
    assert np.all(per >= 0.0)
    assert f == pytest.approx(float(loss.weights @ per), rel=1e-12)
