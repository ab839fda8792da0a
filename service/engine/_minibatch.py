"""Mini-batch gradient descent as the course teaches it: SGD, momentum, Nesterov and Adam, with
learning-rate schedules, early stopping and a proximal (soft-threshold) step for L1.

One epoch is one shuffled pass over the training rows. The objective recorded per epoch is the full
penalized training objective, so curves from different solvers are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._loss import Array, LinearLoss
from ._solvers import Callback, SolverResult, penalized_mask, soft_threshold

SCHEDULES = ("constant", "step", "exponential", "inverse_time", "cosine")
MINIBATCH_SOLVERS = ("sgd", "momentum", "nesterov", "adam")


@dataclass(frozen=True)
class Schedule:
    """Learning rate as a function of the epoch (0-based)."""

    kind: str
    lr: float
    max_epochs: int
    gamma: float = 0.5
    step_size: int = 50
    decay: float = 0.01
    lr_min: float = 0.0

    def __call__(self, epoch: int) -> float:
        if self.kind == "constant":
            return self.lr
        if self.kind == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "exponential":
            return self.lr * math.exp(-self.decay * epoch)
        if self.kind == "inverse_time":
            return self.lr / (1.0 + self.decay * epoch)
        if self.kind == "cosine":
            return self.lr_min + 0.5 * (self.lr - self.lr_min) * (
                1.0 + math.cos(math.pi * epoch / max(self.max_epochs, 1))
            )
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.kind!r}")


def minibatch(
    loss: LinearLoss,
    x0: Array,
    *,
    solver: str,
    schedule: Schedule,
    batch_size: int,
    max_epochs: int,
    tol: float | None,
    n_iter_no_change: int,
    rng: np.random.Generator,
    l1: float = 0.0,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    validation: LinearLoss | None = None,
    callback: Callback | None = None,
) -> SolverResult:
    """Run up to ``max_epochs`` epochs; stop early when the monitored loss stops improving by ``tol``.

    The monitored loss is the validation log-loss when ``validation`` is given (the best coefficients are
    kept), else the training objective. ``tol=None`` runs every epoch.
    """
    if solver not in MINIBATCH_SOLVERS:
        raise ValueError(f"solver must be one of {MINIBATCH_SOLVERS}, got {solver!r}")
    n = loss.X.shape[0]
    batch_size = max(1, min(batch_size, n))
    mask = penalized_mask(loss)
    x = x0.copy()
    velocity = np.zeros_like(x)
    m1 = np.zeros_like(x)
    m2 = np.zeros_like(x)
    steps = 0

    def objective(w: Array) -> float:
        f = loss.loss(w)
        return f + l1 * float(np.abs(w[mask > 0]).sum()) if l1 else f

    def monitored(w: Array) -> float:
        return validation.loss(w) if validation is not None else objective(w)

    history = [objective(x)]
    best = monitored(x)
    best_x = x.copy()
    no_change = 0
    converged = False
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        lr = schedule(epoch - 1)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = loss.subset(order[start : start + batch_size])
            steps += 1
            if solver == "nesterov":
                _, g = batch.loss_grad(x + momentum * velocity)
            else:
                _, g = batch.loss_grad(x)
            if solver == "sgd":
                step = lr * g
                x = x - step
                shrink: Array | float = lr * l1
            elif solver in ("momentum", "nesterov"):
                velocity = momentum * velocity - lr * g
                x = x + velocity
                shrink = lr * l1
            else:  # adam
                m1 = beta1 * m1 + (1.0 - beta1) * g
                m2 = beta2 * m2 + (1.0 - beta2) * g * g
                m1_hat = m1 / (1.0 - beta1**steps)
                m2_hat = m2 / (1.0 - beta2**steps)
                rate = lr / (np.sqrt(m2_hat) + epsilon)
                x = x - rate * m1_hat
                shrink = rate * l1
            if l1:
                x_prox = np.where(mask > 0, soft_threshold(x, shrink), x)
                if solver in ("momentum", "nesterov"):  # the velocity follows the step actually taken
                    velocity += x_prox - x
                x = x_prox
        f_epoch = objective(x)
        history.append(f_epoch)
        if not np.isfinite(f_epoch):
            raise FloatingPointError(
                f"the objective diverged at epoch {epoch} with learning_rate={schedule.lr}; lower it"
            )
        current = f_epoch if validation is None else validation.loss(x)
        if tol is not None:
            if current < best - tol:
                no_change = 0
            else:
                no_change += 1
        if current < best:
            best, best_x = current, x.copy()
        if callback is not None and callback(epoch, f_epoch):
            return SolverResult(x, epoch, converged, history, stopped=True)
        if tol is not None and no_change >= n_iter_no_change:
            converged = True
            break
    if validation is not None:
        x = best_x
    return SolverResult(x, epoch, converged, history)
