"""A fit on partitions (the engine's half of training on a cluster, here with the partitions in a list) finds
the model of the one-array fit: same objective, same probabilities, for every full-batch solver and the
weightings; its loss equals the one-array loss at any point; mini-batch solvers are refused by name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.engine import LogisticRegression
from service.engine._loss import LinearLoss
from service.engine._partitioned import LocalPartitions, Part, SummedLoss, blocks_of


def _data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    W = rng.normal(size=(k, d))
    if k == 2:
        y = (X @ W[0] + rng.logistic(size=n) > 0).astype(np.int64)
    else:
        y = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    return X, y


def _sizes(n: int, parts: int) -> list[int]:
    cuts = np.linspace(0, n, parts + 1).round().astype(int)
    return np.diff(cuts).tolist()


@pytest.mark.parametrize(
    ("n", "k", "params"),
    [
        (3000, 2, {}),
        (3000, 3, {}),
        (3000, 2, {"class_weight": "balanced"}),
        (3000, 3, {"class_weight": {0: 2.0, 2: 0.5}}),
        (3000, 2, {"solver": "newton"}),
        (3000, 3, {"solver": "newton"}),
        (3000, 2, {"penalty": "l1", "solver": "proximal", "C": 0.05}),
        (3000, 3, {"penalty": "elasticnet", "solver": "proximal", "C": 0.1}),
        (3000, 2, {"fit_intercept": False}),
        (3000, 2, {"standardize": False, "penalty": "none"}),
        (60_000, 2, {}),  # L-BFGS pre-solves on a strided subsample: the same rows, gathered from the parts
    ],
)
def test_the_partitioned_fit_is_the_one_array_fit(n: int, k: int, params: dict[str, Any]) -> None:
    X, y = _data(n, 6, k)
    whole = LogisticRegression(**params).fit(X, y)
    parted = LogisticRegression(**params).fit_partitioned(
        LocalPartitions(blocks_of(X, y, _sizes(n, 5))), np.unique(y), X.shape[1])
    assert parted.converged_
    assert abs(parted.loss_history_[-1] - whole.loss_history_[-1]) <= 1e-9 * max(1.0, abs(whole.loss_history_[-1]))
    np.testing.assert_allclose(parted.predict_proba(X), whole.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(parted.classes_, whole.classes_)
    np.testing.assert_allclose(parted.mean_, whole.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(parted.scale_, whole.scale_, rtol=1e-12)
    assert parted.alpha_ == pytest.approx(whole.alpha_, rel=1e-12)


@pytest.mark.parametrize("k", [2, 4])
def test_the_summed_loss_is_the_loss_of_all_rows(k: int) -> None:
    X, y = _data(900, 5, k, seed=3)
    rng = np.random.default_rng(4)
    w_rows = rng.uniform(0.5, 2.0, size=X.shape[0])
    w_rows /= w_rows.sum()
    mean, scale = X.mean(axis=0), X.std(axis=0)
    whole = LinearLoss(X, y, w_rows, mean, scale, k, l2=0.3)
    # each part's rows with their own weights (part_of weighs by class), without the penalty
    parts = [Part(LinearLoss(b.X, b.y, w_rows[b.offset : b.offset + b.X.shape[0]], mean, scale, k, 0.0), b.offset)
             for b in blocks_of(X, y, [100, 350, 450])]
    summed = SummedLoss(LocalPartitions(parts), X.shape[0], X.shape[1], k, 0.3, True, mean, scale)
    w = rng.normal(size=whole.n_params)
    v = rng.normal(size=whole.n_params)
    f, g = summed.loss_grad(w)
    f0, g0 = whole.loss_grad(w)
    assert f == pytest.approx(f0, rel=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(summed.hessp(w)(v), whole.hessp(w)(v), rtol=1e-10, atol=1e-14)
    assert summed.curvature_at(w) == pytest.approx(whole.curvature_at(w), rel=1e-12)
    if k == 2:
        np.testing.assert_allclose(summed.hessian(w), whole.hessian(w), rtol=1e-10, atol=1e-14)
    s, q, sq = summed.weight_moments()
    s0, q0, sq0 = whole.weight_moments()
    assert s == pytest.approx(s0)
    np.testing.assert_allclose(q, q0, atol=1e-12)
    np.testing.assert_allclose(sq, sq0, rtol=1e-12)
    sub, sub0 = summed.strided(7), whole.strided(7)
    np.testing.assert_array_equal(sub.X, sub0.X)
    np.testing.assert_allclose(sub.weights, sub0.weights, rtol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mini_batch_solvers_are_refused_with_the_full_batch_ones_named(solver: str) -> None:
    X, y = _data(200, 3, 2)
    with pytest.raises(ValueError, match=r"full-batch solver.*lbfgs.*newton.*proximal"):
        LogisticRegression(solver=solver).fit_partitioned(
            LocalPartitions(blocks_of(X, y, [100, 100])), np.unique(y), 3)
