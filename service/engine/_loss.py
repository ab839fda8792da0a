"""Penalized, weighted logistic loss with its gradient and Hessian, for the binary and multinomial cases.

Conventions (stated once, used by every solver):

- Coefficients live in *standardized* feature space as a matrix ``W`` of shape ``(k, d + 1)``;
  ``k = 1`` for the binary (sigmoid) model and ``k = n_classes`` for the multinomial (softmax) one.
  The last column is the intercept, which is never penalized. Solvers see ``W.ravel()``.
- Standardization is implicit: the raw ``X`` is never copied. With ``A = W[:, :d] / scale`` and
  ``c = W[:, d] - A @ mean``, the logits are ``X @ A.T + c``, which equals ``((X - mean) / scale) @ W[:, :d].T
  + W[:, d]`` exactly in real arithmetic.
- With ``fit_intercept=False`` the intercept column has zero gradient and stays at its start, 0.
- The objective is ``sum_i w_i * loss_i + l2 / 2 * ||W[:, :d]||^2`` where the sample weights ``w_i``
  (sample weight times class weight) are normalized to sum to 1, so ``l2 = alpha`` and
  ``alpha = 1 / (C * sum of weights)`` reproduces scikit-learn's ``C``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

_HESSIAN_CHUNK = 8192


def log1pexp(z: Array) -> Array:
    """``log(1 + exp(z))`` without overflow for any finite ``z`` (the same value as ``np.logaddexp(0, z)``,
    computed as ``max(z, 0) + log1p(exp(-|z|))``, which is several times faster)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z: Array) -> Array:
    """Logistic function, stable for large ``|z|``: no overflow, no clipping."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def log_softmax(Z: Array) -> Array:
    """Row-wise log-softmax with the row maximum subtracted first."""
    Zs = Z - Z.max(axis=1, keepdims=True)
    return Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))


class LinearLoss:
    """Objective, gradient and curvature of a (multinomial) logistic model on fixed data.

    Parameters
    ----------
    X : (n, d) float64 array, raw features (never modified or copied).
    y : (n,) int array of class codes in ``0..n_classes-1``.
    weights : (n,) float64 array, normalized to sum to 1.
    mean, scale : (d,) arrays of the standardization, or ``None`` for none.
    n_classes : 2 gives the binary model with one coefficient row; more gives the softmax model.
    l2 : strength of the L2 term ``l2 / 2 * ||W||^2`` on non-intercept coefficients.
    """

    def __init__(
        self,
        X: Array,
        y: NDArray[np.intp],
        weights: Array,
        mean: Array | None,
        scale: Array | None,
        n_classes: int,
        l2: float = 0.0,
        fit_intercept: bool = True,
    ) -> None:
        self.X = X
        self.y = y
        self.weights = weights
        self.mean = mean
        self.scale = scale
        self.n_classes = n_classes
        self.k = 1 if n_classes == 2 else n_classes
        self.d = X.shape[1]
        self.l2 = l2
        self.fit_intercept = fit_intercept
        if self.k == 1:
            self.target = (y == 1).astype(np.float64)
        else:
            self.onehot = np.zeros((X.shape[0], self.k))
            self._flat_target = np.arange(X.shape[0]) * self.k + y
            self.onehot.ravel()[self._flat_target] = 1.0
        self._prob: Array | None = None
        self._prob_at: Array | None = None

    @property
    def n_params(self) -> int:
        return self.k * (self.d + 1)

    def subset(self, idx: NDArray[np.intp]) -> LinearLoss:
        """The same loss on the rows ``idx`` (weights renormalized), for mini-batches and validation."""
        w = self.weights[idx]
        total = w.sum()
        return LinearLoss(
            self.X[idx],
            self.y[idx],
            w / total if total > 0 else w,
            self.mean,
            self.scale,
            self.n_classes,
            self.l2,
            self.fit_intercept,
        )

    # -- the affine map between standardized coefficients and raw features -------------------------
    def _to_raw(self, W: Array) -> tuple[Array, Array]:
        A = W[:, : self.d]
        if self.scale is not None:
            A = A / self.scale
        c = W[:, self.d]
        if self.mean is not None:
            c = c - A @ self.mean
        return A, c

    def logits(self, W: Array) -> Array:
        """Logits ``(n,)`` for the binary model, ``(n, k)`` for the multinomial one."""
        A, c = self._to_raw(W)
        if self.k == 1:
            return self.X @ A[0] + c[0]
        return self.X @ A.T + c

    def _back(self, R: Array) -> Array:
        """Map per-sample residuals ``(n, k)`` to a coefficient-shaped gradient ``(k, d + 1)``."""
        G = np.empty((self.k, self.d + 1))
        if self.k == 1:
            G[0, : self.d] = R[:, 0] @ self.X if R.ndim == 2 else R @ self.X
            rsum = np.array([R.sum()])
        else:
            G[:, : self.d] = R.T @ self.X
            rsum = R.sum(axis=0)
        if self.mean is not None:
            G[:, : self.d] -= rsum[:, None] * self.mean
        if self.scale is not None:
            G[:, : self.d] /= self.scale
        G[:, self.d] = rsum if self.fit_intercept else 0.0
        return G

    def _penalty(self, W: Array) -> float:
        if self.l2 == 0.0:
            return 0.0
        Wc = W[:, : self.d]
        return 0.5 * self.l2 * float(np.vdot(Wc, Wc))

    def per_sample_loss(self, W: Array) -> Array:
        """Unweighted log-loss of each sample (no penalty)."""
        Z = self.logits(W)
        if self.k == 1:
            return log1pexp(Z) - self.target * Z
        return -log_softmax(Z)[np.arange(Z.shape[0]), self.y]

    def loss(self, w: Array) -> float:
        """Penalized objective at the flat coefficient vector ``w``."""
        W = w.reshape(self.k, self.d + 1)
        return float(self.weights @ self.per_sample_loss(W)) + self._penalty(W)

    def loss_grad(self, w: Array) -> tuple[float, Array]:
        """Objective and its gradient (flat) at ``w``; remembers the probabilities for ``hessp``."""
        W = w.reshape(self.k, self.d + 1)
        Z = self.logits(W)
        if self.k == 1:
            e = np.exp(-np.abs(Z))
            f = float(self.weights @ (np.maximum(Z, 0.0) + np.log1p(e) - self.target * Z))
            P = np.where(Z >= 0, 1.0, e) / (1.0 + e)
            R = self.weights * (P - self.target)
        else:
            Z -= Z.max(axis=1, keepdims=True)
            P = np.exp(Z)
            total = P.sum(axis=1)
            f = float(self.weights @ (np.log(total) - Z.ravel()[self._flat_target]))
            P /= total[:, None]
            R = P - self.onehot
            R *= self.weights[:, None]
        self._prob, self._prob_at = P, w.copy()
        G = self._back(R)
        if self.l2:
            G[:, : self.d] += self.l2 * W[:, : self.d]
        return f + self._penalty(W), G.ravel()

    def _probabilities(self, w: Array) -> Array:
        """Probabilities at ``w``, reused from the last ``loss_grad`` when it was at the same point."""
        if self._prob is None or self._prob_at is None or not np.array_equal(self._prob_at, w):
            self.loss_grad(w)
        assert self._prob is not None
        return self._prob

    def curvature_scale(self, w: Array) -> float:
        """Mean diagonal entry of the data Hessian at ``w`` (exact for the intercept), so a first
        quasi-Newton step has about the right length on standardized features."""
        P = self._probabilities(w)
        return float(np.mean(self.weights @ (P * (1.0 - P))))

    def hessp(self, w: Array) -> Callable[[Array], Array]:
        """Hessian-vector product operator at ``w``."""
        P = self._probabilities(w)
        if self.k == 1:
            h = self.weights * P * (1.0 - P)
        kd = (self.k, self.d + 1)

        def product(v: Array) -> Array:
            V = v.reshape(kd)
            dZ = self.logits(V)
            if self.k == 1:
                R = h * dZ
            else:
                PdZ = P * dZ
                R = self.weights[:, None] * (PdZ - P * PdZ.sum(axis=1, keepdims=True))
            G = self._back(R)
            if self.l2:
                G[:, : self.d] += self.l2 * V[:, : self.d]
            return G.ravel()

        return product

    def hessian(self, w: Array) -> Array:
        """Full Hessian ``(d + 1, d + 1)`` of the binary objective, built in row chunks (no copy of X)."""
        if self.k != 1:
            raise ValueError("the full Hessian is only formed for the binary model")
        P = self._probabilities(w)
        return self.weighted_gram(self.weights * P * (1.0 - P))

    def weighted_gram(self, h: Array) -> Array:
        """``[Xs, 1]^T diag(h) [Xs, 1] + l2`` on the standardized features with an intercept column,
        built in row chunks (no copy of X). With ``h = p(1 - p) w`` it is the binary Hessian."""
        d = self.d
        M = np.zeros((d, d))
        sq = np.sqrt(h)
        for start in range(0, self.X.shape[0], _HESSIAN_CHUNK):
            B = self.X[start : start + _HESSIAN_CHUNK] * sq[start : start + _HESSIAN_CHUNK, None]
            M += B.T @ B
        q = h @ self.X
        hs = float(h.sum())
        if self.mean is not None:
            mu = self.mean
            M = M - np.outer(mu, q) - np.outer(q, mu) + hs * np.outer(mu, mu)
            q = q - hs * mu
        if self.scale is not None:
            M = M / np.outer(self.scale, self.scale)
            q = q / self.scale
        H = np.empty((d + 1, d + 1))
        H[:d, :d] = M
        H[:d, d] = q
        H[d, :d] = q
        H[d, d] = hs
        if not self.fit_intercept:  # the intercept stays at 0: decouple it
            H[:d, d] = H[d, :d] = 0.0
            H[d, d] = 1.0
        H[np.arange(d), np.arange(d)] += self.l2
        return H
