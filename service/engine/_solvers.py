"""Full-batch solvers: L-BFGS, Newton (exact or conjugate-gradient) and accelerated proximal gradient.

Each takes a loss, a flat starting point and a budget, and returns a :class:`SolverResult`. They know nothing
about classes, labels or standardization, nor where the rows are.

The loss is a :class:`~service.engine._loss.LinearLoss` (rows in this process) or any object with the
methods of :class:`SmoothLoss` (e.g. :class:`~service.engine._partitioned.SummedLoss`, whose rows live in
partitions elsewhere and whose every evaluation is one pass over them). L-BFGS's line search moves the logits
of every row along a direction, so its trial points cost no product with ``X``; a loss that only offers
``loss_grad`` gets the generic backtracking search (:func:`_backtrack`) instead, one evaluation per trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ._loss import Array, LinearLoss

#: Called after every iteration with (iteration, objective); returning True stops the solver early.
Callback = Callable[[int, float], bool | None]
#: L-BFGS's initial inverse-Hessian shape: a ``(d + 1, d + 1)`` matrix applied to each class row, or a function
#: applying it to the ``(k, d + 1)`` coefficient array.
Preconditioner = Array | Callable[[Array], Array]

_ARMIJO = 1e-4
#: L-BFGS takes its products with ``X`` in single precision (where the loss has a copy for it: half the cost)
#: until the decrease it predicts is this small relative to the objective. Their rounding, ~1e-7 relative in
#: the logits, is far below the decreases that matter until then; it continues in double from exact logits.
_SINGLE_UNTIL = 1e-6
#: Iterations after which single-precision L-BFGS recomputes the logits exactly, so the rounding of the
#: logits of its steps cannot add up.
_SINGLE_RESYNC = 50
#: Bytes the L-BFGS pairs may take (``s``, ``P y`` and ``y``: 24 bytes per parameter and pair) before fewer are kept.
_MEMORY_BYTES = 64 * 2**20
#: ... and the pairs may always take this much, however small X is (digits keeps its 50 pairs).
_MEMORY_MIN_BYTES = 2**20


class SmoothLoss(Protocol):
    """What the solvers use of a loss that does not hold its rows (see the module docstring); the conventions
    (``W`` of shape ``(k, d + 1)``, intercept last and unpenalized, ``l2`` on the rest) are
    :class:`~service.engine._loss.LinearLoss`'s."""

    k: int
    d: int
    l2: float

    @property
    def n_params(self) -> int: ...

    @property
    def n_rows(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def loss(self, w: Array) -> float: ...

    def loss_grad(self, w: Array) -> tuple[float, Array]: ...

    def curvature_at(self, w: Array) -> float: ...

    def hessp(self, w: Array) -> Callable[[Array], Array]: ...

    def hessian(self, w: Array) -> Array: ...


Loss = LinearLoss | SmoothLoss


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
        step = _next_step(f, slope, step, f_new)
    return None


def _next_step(f: float, slope: float, step: float, f_new: float) -> float:
    """Minimizer of the quadratic through ``f``, ``slope`` and ``f_new``, kept within [0.1, 0.5] of the step."""
    denom = 2.0 * (f_new - f - slope * step)
    trial = -slope * step * step / denom if denom > 0 and np.isfinite(denom) else 0.5 * step
    return min(max(trial, 0.1 * step), 0.5 * step)


def _line_search(
    loss: LinearLoss,
    x: Array,
    f: float,
    g: Array,
    Z: Array,
    direction: Array,
    single: bool,
    max_steps: int = 40,
) -> tuple[Array, Array, float, Array] | None:
    """:func:`_backtrack` from a unit step for L-BFGS, where a trial point costs no product with ``X``: the
    logits ``Z`` at ``x`` move along the logits of the direction (``single``: computed in single precision).
    Returns the new point, its logits, objective and what :meth:`~LinearLoss.gradient` needs there, or None
    when no decrease is found."""
    slope = float(g @ direction)
    if slope >= 0:
        return None
    dZ = loss.logits(direction, single)
    Z_new = np.empty_like(Z)  # one buffer for every trial: on large data each logit array is a vector of n
    step = 1.0
    for _ in range(max_steps):
        if step == 1.0:
            np.add(Z, dZ, out=Z_new)
        else:
            np.multiply(dZ, step, out=Z_new)
            Z_new += Z
        x_new = x + step * direction
        f_new, Q = loss.value(x_new, Z_new)
        if np.isfinite(f_new) and f_new <= f + _ARMIJO * step * slope:
            return x_new, Z_new, f_new, Q
        del Q
        step = _next_step(f, slope, step, f_new)
    return None


def _step(
    loss: Loss, x: Array, f: float, g: Array, Z: Array | None, direction: Array, single: bool
) -> tuple[Array, Array | None, float, Array] | None:
    """One L-BFGS line search from ``x`` along ``direction``: the new point, its logits (None for a loss that
    does not hold its rows, ``Z`` None), objective and gradient; None when no decrease is found."""
    if Z is None:
        found = _backtrack(loss.loss_grad, x, f, g, direction)
        return None if found is None else (found[1], None, found[2], found[3])
    assert isinstance(loss, LinearLoss)
    searched = _line_search(loss, x, f, g, Z, direction, single)
    if searched is None:
        return None
    x_new, Z_new, f_new, Q = searched
    del searched
    return x_new, Z_new, f_new, loss.gradient(x_new, Q, single)


def _small_enough(f: float, g: Array, direction: Array, tol: float) -> bool:
    """Stop rule shared by the (quasi-)Newton solvers: the decrease the model predicts for the full step,
    ``-g.d / 2`` (about ``f - f*``), is at most ``tol`` relative to ``|f|`` (so always when ``g`` vanished)."""
    return -0.5 * float(g @ direction) <= tol * max(abs(f), 1e-300)


def _evaluate(loss: LinearLoss, x: Array) -> tuple[Array, float, Array]:
    """Logits, objective and gradient at ``x``, in double precision."""
    Z = loss.logits(x)
    f, Q = loss.value(x, Z)
    return Z, f, loss.gradient(x, Q)


class _Memory:
    """The L-BFGS curvature pairs and the product of their inverse Hessian with a vector, in the compact form
    of Byrd, Nocedal and Schnabel (1994) with ``H0 = gamma P``.

    Pairs live in a ring of ``size`` slots, each holding ``s`` and ``P y`` next to each other, so one
    matrix-vector product gives both ``S v`` and ``Y P v`` (``P`` is symmetric). The small matrices of the
    compact form (the inverse ``R_inv`` of the upper triangle of ``S Y^T``, ``Y P Y^T`` and the diagonal of
    ``S Y^T``) are kept in slot order and updated as pairs come and go: the form is the same under any order
    of the pairs, dropping the oldest pair leaves the inverse of the remaining triangle as the rest of
    ``R_inv``, and a new pair adds one column. A product with a vector then costs two matrix-vector products
    with the pairs and a few with ``m x m`` matrices.
    """

    def __init__(
        self, size: int, shape: tuple[int, int], preconditioner: Preconditioner | None, keep_y: bool = True
    ) -> None:
        self.size = size
        self.count = 0
        self.next = 0  # the slot the next pair goes to: the oldest once the ring is full
        self.shape = shape
        self.preconditioner = preconditioner
        n_params = shape[0] * shape[1]
        self.SPY = np.empty((size, 2, n_params))
        # y itself only serves :meth:`pairs`; with a preconditioner it is a third array, kept when asked
        self.Y = self.SPY[:, 1] if preconditioner is None else np.empty((size, n_params)) if keep_y else None
        self.R_inv = np.zeros((size, size))
        self.YPY = np.empty((size, size))
        self.sy = np.empty(size)
        self.gamma = 1.0

    def precondition(self, v: Array) -> Array:
        """``P v``: the preconditioner applied to each class row of a flat vector; ``v`` itself without one."""
        if self.preconditioner is None:
            return v
        if callable(self.preconditioner):
            return self.preconditioner(v.reshape(self.shape)).ravel()
        return (v.reshape(self.shape) @ self.preconditioner).ravel()

    def pairs(self) -> list[tuple[Array, Array]]:
        """The pairs, oldest first; none when ``y`` was not kept."""
        if self.Y is None:
            return []
        start = self.next if self.count == self.size else 0
        order = [(start + i) % self.size for i in range(self.count)]
        return [(self.SPY[i, 0].copy(), self.Y[i].copy()) for i in order]

    def append(self, s: Array, y: Array) -> None:
        """Add a pair with ``s.y > 0`` in place of the oldest when the ring is full."""
        j = self.next
        m = min(self.count + 1, self.size)
        self.SPY[j, 0] = s
        self.SPY[j, 1] = self.precondition(y)
        if self.preconditioner is not None and self.Y is not None:
            self.Y[j] = y
        products = (self.SPY[:m].reshape(2 * m, -1) @ y).reshape(m, 2)  # s_i.y and (P y_i).y
        sy = float(products[j, 0])
        R_inv = self.R_inv[:m, :m]
        R_inv[j] = 0.0
        R_inv[:, j] = 0.0
        R_inv[:, j] = -(R_inv @ products[:, 0]) / sy
        R_inv[j, j] = 1.0 / sy
        self.YPY[:m, j] = self.YPY[j, :m] = products[:, 1]
        self.sy[j] = sy
        self.gamma = sy / float(products[j, 1])
        self.count, self.next = m, (j + 1) % self.size

    def clear(self) -> None:
        self.count = self.next = 0

    def times(self, g: Array, initial_scale: float) -> Array:
        """``H g`` for the inverse Hessian ``H`` of the pairs; ``initial_scale P g`` without pairs."""
        Pg = self.precondition(g)
        m = self.count
        if m == 0:
            return initial_scale * Pg
        gamma = self.gamma
        SPY = self.SPY[:m].reshape(2 * m, -1)
        R_inv = self.R_inv[:m, :m]
        products = (SPY @ g).reshape(m, 2)  # S g and Y P g
        ra = R_inv @ products[:, 0]
        coef = np.empty((m, 2))
        coef[:, 0] = (self.sy[:m] * ra + gamma * (self.YPY[:m, :m] @ ra - products[:, 1])) @ R_inv
        coef[:, 1] = -gamma * ra
        return gamma * Pg + coef.ravel() @ SPY


def lbfgs(
    loss: Loss,
    x0: Array,
    *,
    max_iter: int,
    tol: float,
    memory: int = 50,
    callback: Callback | None = None,
    curvature_pairs: list[tuple[Array, Array]] | None = None,
    preconditioner: Preconditioner | None = None,
    keep_pairs: bool = True,
) -> SolverResult:
    """Limited-memory BFGS with Armijo backtracking (:func:`_line_search`); stops by :func:`_small_enough`.

    ``memory`` pairs: a product with the compact form costs O(memory * n_params), far below a product with
    ``X``, and 50 pairs take 62 iterations on digits where 10 take 81. Where the loss has a single-precision
    copy of ``X``, the products with it are single precision until :data:`_SINGLE_UNTIL`.
    ``curvature_pairs`` seeds the memory, e.g. with the pairs of a solve on a subsample of the rows.
    ``preconditioner`` is a ``(d + 1, d + 1)`` matrix ``P`` applied to each class row as the initial
    inverse Hessian (scaled by the usual ``s.y / y.P.y``): the inverse feature Gram whitens correlated
    features, which the plain scaled identity cannot. It may also be a function applying a symmetric
    positive-definite ``P`` to a ``(k, d + 1)`` array, e.g. a cheap structured one for wide data.
    ``keep_pairs=False`` returns no ``curvature_pairs`` when preconditioned, which saves storing each ``y``.
    """
    x = x0.copy()
    Z: Array | None
    if isinstance(loss, LinearLoss):  # the logits of every row are held: trial points cost no product with X
        Z, f, g = _evaluate(loss, x)
        single = loss.has_single
        curvature = loss.curvature_scale(Z)
    else:
        Z, (f, g) = None, loss.loss_grad(x)
        single = False
        curvature = loss.curvature_at(x)
    exact_at = 0  # the iteration of the last exact logits
    # The Hessian is about the mean p(1 - p) times the (whitened) feature Gram, so P / curvature sizes both
    # the first step and the gradient step of the stop rule.
    gradient_scale = initial_scale = 1.0 / (curvature + loss.l2)
    history = [f]
    # Many parameters (wide data, many classes): fewer pairs, within _MEMORY_BYTES and a quarter of the size of X
    # (wide sparse data can be small next to its coefficients), but never fewer than 10.
    budget = min(_MEMORY_BYTES, max(loss.nbytes // 4, _MEMORY_MIN_BYTES))
    size = max(min(memory, budget // (24 * loss.n_params)), min(memory, 10))
    pairs = _Memory(size, (loss.k, loss.d + 1), preconditioner, keep_y=keep_pairs)
    for s0, y0 in curvature_pairs or []:
        if float(s0 @ y0) > 0:
            pairs.append(s0, y0)
    n_iter = 0
    converged = False
    f_scale = abs(f)  # single precision ends on a decrease small next to the start, not to a tiny f near 0
    exact_f = f  # the objective at the last exact logits
    while True:
        q = -pairs.times(g, initial_scale)
        if single:
            assert isinstance(loss, LinearLoss)
            near = _small_enough(max(abs(f), f_scale), g, q, max(tol, _SINGLE_UNTIL))
            if near or n_iter - exact_at >= _SINGLE_RESYNC:
                Z, f, g = _evaluate(loss, x)  # exact logits: those of single-precision steps drift
                history[-1] = f
                # Leave single precision near the optimum, and when its last steps gained next to nothing:
                # then its rounding, not the problem, limits the progress.
                stalled = exact_f - f <= _SINGLE_UNTIL * max(abs(f), f_scale) * (n_iter - exact_at)
                single, exact_at, exact_f = not (near or stalled), n_iter, f
                continue
        # Both the quasi-Newton step and a plain scaled gradient step must predict a small decrease: on badly
        # scaled features the limited memory alone can underestimate the distance to the optimum.
        if _small_enough(f, g, q, tol) and _small_enough(f, g, -gradient_scale * pairs.precondition(g), tol):
            converged = True
            break
        if n_iter >= max_iter:
            break
        found = _step(loss, x, f, g, Z, q, single)
        if found is None and single:  # the rounding may hide the decrease: look again in double precision
            assert isinstance(loss, LinearLoss)
            single, exact_at = False, n_iter
            Z, f, g = _evaluate(loss, x)
            history[-1] = exact_f = f
            continue
        if found is None and pairs.count:  # the memory went stale: restart from a scaled gradient step
            pairs.clear()
            found = _step(loss, x, f, g, Z, -initial_scale * pairs.precondition(g), single)
        if found is None:
            break
        x_new, Z, f, g_new = found
        del found
        s, y = x_new - x, g_new - g
        yy = float(y @ y)
        if yy > 0.0 and float(s @ y) > 1e-12 * yy:  # y underflows to 0 on separable data
            pairs.append(s, y)
        x, g = x_new, g_new
        n_iter += 1
        history.append(f)
        if callback is not None and callback(n_iter, f):
            if single:
                history[-1] = loss.loss(x)
            return SolverResult(x, n_iter, False, history, stopped=True)
    if single:  # out of iterations in single precision: report the exact objective at the coefficients
        history[-1] = loss.loss(x)
    return SolverResult(x, n_iter, converged, history, curvature_pairs=pairs.pairs())


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
    loss: Loss,
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
            found = _backtrack(loss.loss_grad, x, f, g, -g / (loss.curvature_at(x) + loss.l2), 1.0)
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


def penalized_mask(loss: Loss) -> Array:
    """1 for coefficients that carry the L1 penalty, 0 for intercepts."""
    mask = np.ones((loss.k, loss.d + 1))
    mask[:, loss.d] = 0.0
    return mask.ravel()


def proximal_gradient(
    loss: Loss,
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
