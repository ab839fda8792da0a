"""Full-batch solvers: L-BFGS, Newton (exact or conjugate-gradient) and accelerated proximal gradient.

Each takes a :class:`~service.engine._loss.LinearLoss`, a flat starting point and a budget, and returns a
:class:`SolverResult`. They know nothing about classes, labels or standardization.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._loss import Array, LinearLoss

#: Called after every iteration with (iteration, objective); returning True stops the solver early.
Callback = Callable[[int, float], bool | None]

_ARMIJO = 1e-4


@dataclass
class SolverResult:
    """What a solver found and how it got there."""

    coef: Array
    n_iter: int
    converged: bool
    loss_history: list[float] = field(default_factory=list)
    stopped: bool = False  # a callback asked to stop
    curvature_pairs: list[tuple[Array, Array]] = field(default_factory=list)  # L-BFGS memory at the end


def _backtrack(
    fun: Callable[[Array], tuple[float, Array]],
    x: Array,
    f: float,
    g: Array,
    direction: Array,
    step: float = 1.0,
    max_steps: int = 40,
) -> tuple[float, Array, float, Array] | None:
    """Armijo backtracking with safeguarded quadratic interpolation; None when no decrease is found."""
    slope = float(g @ direction)
    if slope >= 0:
        return None
    for _ in range(max_steps):
        x_new = x + step * direction
        f_new, g_new = fun(x_new)
        if np.isfinite(f_new) and f_new <= f + _ARMIJO * step * slope:
            return step, x_new, f_new, g_new
        # minimizer of the quadratic through f, slope and f_new, kept within [0.1, 0.5] of the step
        denom = 2.0 * (f_new - f - slope * step)
        trial = -slope * step * step / denom if denom > 0 and np.isfinite(denom) else 0.5 * step
        step = min(max(trial, 0.1 * step), 0.5 * step)
    return None


def _small_enough(f: float, g: Array, direction: Array, tol: float) -> bool:
    """Stop rule shared by the (quasi-)Newton solvers: the decrease the model predicts for the full step,
    ``-g.d / 2`` (about ``f - f*``), is at most ``tol`` relative to ``|f|``, or the gradient vanished."""
    if not np.any(g):
        return True
    return -0.5 * float(g @ direction) <= tol * max(abs(f), 1e-300)


def lbfgs(
    loss: LinearLoss,
    x0: Array,
    *,
    max_iter: int,
    tol: float,
    memory: int = 10,
    callback: Callback | None = None,
    curvature_pairs: list[tuple[Array, Array]] | None = None,
    preconditioner: Array | None = None,
) -> SolverResult:
    """Limited-memory BFGS with Armijo backtracking; stops by :func:`_small_enough`.

    ``curvature_pairs`` seeds the memory, e.g. with the pairs of a solve on a subsample of the rows.
    ``preconditioner`` is a ``(d + 1, d + 1)`` matrix ``P`` applied to each class row as the initial
    inverse Hessian (scaled by the usual ``s.y / y.P.y``): the inverse feature Gram whitens correlated
    features, which the plain scaled identity cannot.
    """
    x = x0.copy()
    f, g = loss.loss_grad(x)
    shape = (loss.k, loss.d + 1)

    def apply_p(v: Array) -> Array:
        """The preconditioner applied to a flat vector or to each row of a stack of flat vectors."""
        if preconditioner is None:
            return v
        return (v.reshape(*v.shape[:-1], *shape) @ preconditioner).reshape(v.shape)

    # The Hessian is about the mean p(1 - p) times the (whitened) feature Gram, so P / curvature sizes both
    # the first step and the gradient step of the stop rule.
    gradient_scale = initial_scale = 1.0 / (loss.curvature_scale(x) + loss.l2)
    history = [f]
    pairs: deque[tuple[Array, Array]] = deque(
        ((s0, y0) for s0, y0 in curvature_pairs or [] if float(s0 @ y0) > 0), maxlen=memory
    )
    n_iter = 0
    converged = False
    while True:
        q = -_inverse_hessian_times(g, pairs, apply_p, initial_scale)
        # Both the quasi-Newton step and a plain scaled gradient step must predict a small decrease: on badly
        # scaled features the limited memory alone can underestimate the distance to the optimum.
        if _small_enough(f, g, q, tol) and _small_enough(f, g, -gradient_scale * apply_p(g), tol):
            converged = True
            break
        if n_iter >= max_iter:
            break
        found = _backtrack(loss.loss_grad, x, f, g, q, 1.0)
        if found is None and pairs:  # the memory went stale: restart from a scaled gradient step
            pairs.clear()
            found = _backtrack(loss.loss_grad, x, f, g, -initial_scale * apply_p(g), 1.0)
        if found is None:
            break
        _, x_new, f_new, g_new = found
        s, y = x_new - x, g_new - g
        yy = float(y @ y)
        if yy > 0.0 and float(s @ y) > 1e-12 * yy:  # y underflows to 0 on separable data
            pairs.append((s, y))
        x, f, g = x_new, f_new, g_new
        n_iter += 1
        history.append(f)
        if callback is not None and callback(n_iter, f):
            return SolverResult(x, n_iter, False, history, stopped=True)
    return SolverResult(x, n_iter, converged, history, curvature_pairs=list(pairs))


def _inverse_hessian_times(
    g: Array, pairs: deque[tuple[Array, Array]], apply_p: Callable[[Array], Array], initial_scale: float
) -> Array:
    """``H g`` for the L-BFGS inverse Hessian ``H`` in the compact form of Byrd, Nocedal and Schnabel
    (1994), with ``H0 = gamma P``: a few small matrix products instead of a loop over the pairs."""
    if not pairs:
        return initial_scale * apply_p(g)
    S = np.array([p[0] for p in pairs])
    Y = np.array([p[1] for p in pairs])
    PY = apply_p(Y)
    SY = S @ Y.T
    R_inv = np.linalg.inv(np.triu(SY))
    gamma = float(SY[-1, -1]) / float(Y[-1] @ PY[-1])
    Pg = apply_p(g)
    r_inv_a = R_inv @ (S @ g)
    inner = gamma * (Y @ PY.T)
    inner.flat[:: len(pairs) + 1] += SY.flat[:: len(pairs) + 1]
    u = (inner @ r_inv_a - gamma * (Y @ Pg)) @ R_inv
    return gamma * Pg + u @ S - gamma * (r_inv_a @ PY)


def _conjugate_gradient(hessp: Callable[[Array], Array], b: Array, rtol: float, max_iter: int) -> Array:
    """Approximately solve ``H x = b`` for a positive-definite ``H`` given only products ``H v``."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    stop = (rtol * np.sqrt(rr)) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        Hp = hessp(p)
        curvature = float(p @ Hp)
        if curvature <= 0:
            break
        a = rr / curvature
        x += a * p
        r -= a * Hp
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x if x.any() else b


def newton(
    loss: LinearLoss,
    x0: Array,
    *,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
    exact_max_dim: int = 600,
) -> SolverResult:
    """Damped Newton: the exact Hessian for binary models of modest width, Newton-CG otherwise.
    Stops by :func:`_small_enough` (the Newton decrement)."""
    x = x0.copy()
    f, g = loss.loss_grad(x)
    history = [f]
    exact = loss.k == 1 and loss.d + 1 <= exact_max_dim
    n_iter = 0
    converged = False
    while True:
        if exact:
            H = loss.hessian(x)
            try:
                direction = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                direction = -np.linalg.lstsq(H, g, rcond=None)[0]
        else:
            gnorm = float(np.linalg.norm(g))
            direction = _conjugate_gradient(
                loss.hessp(x), -g, rtol=min(0.5, np.sqrt(gnorm)), max_iter=max(20, loss.n_params)
            )
        if _small_enough(f, g, direction, tol):
            converged = True
            break
        if n_iter >= max_iter:
            break
        found = _backtrack(loss.loss_grad, x, f, g, direction, 1.0)
        if found is None:
            found = _backtrack(loss.loss_grad, x, f, g, -g / (loss.curvature_scale(x) + loss.l2), 1.0)
        if found is None:
            break
        _, x, f, g = found
        n_iter += 1
        history.append(f)
        if callback is not None and callback(n_iter, f):
            return SolverResult(x, n_iter, False, history, stopped=True)
    return SolverResult(x, n_iter, converged, history)


def soft_threshold(x: Array, threshold: Array | float) -> Array:
    """The proximal map of ``threshold * |x|``: shrinks towards zero and sets small entries exactly to 0."""
    return np.sign(x) * np.maximum(np.abs(x) - threshold, 0.0)


def penalized_mask(loss: LinearLoss) -> Array:
    """1 for coefficients that carry the L1 penalty, 0 for intercepts."""
    mask = np.ones((loss.k, loss.d + 1))
    mask[:, loss.d] = 0.0
    return mask.ravel()


def proximal_gradient(
    loss: LinearLoss,
    x0: Array,
    *,
    l1: float,
    max_iter: int,
    tol: float,
    callback: Callback | None = None,
) -> SolverResult:
    """FISTA with backtracking and adaptive restart, for ``smooth loss + l1 * ||w||_1``.

    Converged when the proximal-gradient step, scaled by the step's inverse, is at most ``tol`` in every
    entry: the non-smooth analogue of a small gradient. Zeros are exact.
    """
    mask = penalized_mask(loss)
    thresh = l1 * mask

    def objective(f_smooth: float, x: Array) -> float:
        return f_smooth + l1 * float(np.abs(x[mask > 0]).sum())

    x = x0.copy()
    f_x, _ = loss.loss_grad(x)
    history = [objective(f_x, x)]
    z = x.copy()
    t = 1.0
    lipschitz = 1.0
    n_iter = 0
    converged = False
    while n_iter < max_iter:
        f_z, g_z = loss.loss_grad(z)
        while True:
            x_new = soft_threshold(z - g_z / lipschitz, thresh / lipschitz)
            diff = x_new - z
            f_new, _ = loss.loss(x_new), None
            if f_new <= f_z + float(g_z @ diff) + 0.5 * lipschitz * float(diff @ diff) + 1e-12 * abs(f_z):
                break
            lipschitz *= 2.0
        F_new = objective(f_new, x_new)
        step_size = float(np.max(np.abs(diff))) * lipschitz
        if F_new > history[-1]:  # adaptive restart: drop the momentum
            stalled = t == 1.0  # already restarted and still no decrease: round-off level
            t = 1.0
            z = x.copy()
            if n_iter > 0 and (step_size <= tol or stalled):
                converged = step_size <= tol
                break
            lipschitz *= 0.9
            n_iter += 1
            continue
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        z = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
        n_iter += 1
        history.append(F_new)
        lipschitz *= 0.95  # let the step grow again
        if step_size <= tol:
            converged = True
            break
        if callback is not None and callback(n_iter, F_new):
            return SolverResult(x, n_iter, converged, history, stopped=True)
    return SolverResult(x, n_iter, converged, history)
