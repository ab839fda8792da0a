"""Penalized, weighted logistic loss with its gradient and Hessian, for the binary and multinomial cases.

Conventions (stated once, used by every solver):

- Coefficients live in *standardized* feature space as a matrix ``W`` of shape ``(k, d + 1)``;
  ``k = 1`` for the binary (sigmoid) model and ``k = n_classes`` for the multinomial (softmax) one.
  The last column is the intercept, which is never penalized. Solvers see ``W.ravel()``.
- Logits are a ``(k, n)`` array, one row per class: reductions over the classes and per-sample factors then
  run along long contiguous rows, several times faster in numpy than along rows of ``k`` entries.
- Standardization is implicit on large data: the raw ``X`` is never copied. With ``A = W[:, :d] / scale``
  and ``c = W[:, d] - A @ mean``, the logits are ``X @ A.T + c``, which equals ``((X - mean) / scale) @
  W[:, :d].T + W[:, d]`` exactly in real arithmetic. Small data (at most :data:`_DENSE_BYTES`) is copied
  once, standardized and transposed with a row of ones, so each product with it is a single BLAS call;
  also in single precision, for solvers that take products at half the cost while far from the optimum.
- ``X`` may also be a scipy.sparse CSR matrix (or array). It is never densified nor copied: its products are
  always the implicit ones above (``X @ v`` and ``X.T @ r``, the latter through scipy's CSC view of the
  transpose, also without a copy), and every temporary is a vector of length ``n`` or ``d`` (times ``k``).
  The estimator gives it no ``mean`` (scaling without centering keeps the data sparse), which changes
  nothing but the parametrization of the unpenalized intercept.
- With ``fit_intercept=False`` the intercept column has zero gradient and stays at its start, 0.
- The objective is ``sum_i w_i * loss_i + l2 / 2 * ||W[:, :d]||^2`` where the sample weights ``w_i``
  (sample weight times class weight) are normalized to sum to 1, so ``l2 = alpha`` and
  ``alpha = 1 / (C * sum of weights)`` reproduces scikit-learn's ``C``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Array = NDArray[np.float64]

_HESSIAN_CHUNK = 8192
#: Samples per block of :meth:`LinearLoss.value`: its temporaries stay in cache and take no memory of size n.
_VALUE_CHUNK = 2**15
#: Rows per block of the implicit ``X @ A.T``: each block's transpose into the ``(k, n)`` logits stays in cache.
_LOGIT_CHUNK = 4096
#: Largest ``X`` (in bytes) the loss copies into its standardized, transposed layout: there the copy (1.5 times
#: X with its single-precision twin) is small, and one BLAS call on it beats the implicit standardization.
_DENSE_BYTES = 4 * 2**20
#: Stored entries per block of the weighted column sums of squares of sparse ``X``: temporaries of a few MiB.
_SPARSE_CHUNK = 2**18
#: Largest feature magnitude the single-precision copy takes: far from float32 overflow even after products.
_SINGLE_MAX = 1e6
#: Fewest multiply-adds of a product with ``X`` for which single precision pays: below, converting the
#: operands costs more than the faster product saves (breast cancer, at 14k, fits slower with it).
_SINGLE_MIN_WORK = 2**17


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
    X : (n, d) float64 array or scipy.sparse CSR matrix/array (canonical form), raw features (never modified).
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
        n, d = X.shape
        self.X = X
        self.y = y
        self.weights = weights
        self.mean = mean
        self.scale = scale
        self.n_classes = n_classes
        self.k = 1 if n_classes == 2 else n_classes
        self.d = d
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.sparse = sp.issparse(X)
        self._Xt: Array | None = None
        if not self.sparse and X.nbytes <= _DENSE_BYTES:
            Xt = np.empty((d + 1, n))
            Xt[:d] = X.T
            if mean is not None:
                Xt[:d] -= mean[:, None]
            if scale is not None:
                Xt[:d] /= scale[:, None]
            Xt[d] = 1.0
            self._Xt = Xt
        # l2 on the coefficients, 0 on the intercepts: penalty and its gradient from one product
        l2_mask = np.full((self.k, d + 1), l2)
        l2_mask[:, d] = 0.0
        self._l2_mask = l2_mask.ravel()
        # the own-class logits enter the loss as -sum_i w_i z_i,y_i, linear in W: a constant gradient term
        if self.k == 1:
            self._positive = y == 1
            self._linear = self._back((weights * self._positive)[None, :])
        else:
            own = np.zeros((self.k, n))
            own[y, np.arange(n)] = weights
            self._linear = self._back(own)

    @property
    def nbytes(self) -> int:
        """Bytes of ``X``: of its values, column indices and row pointers when sparse."""
        if self.sparse:
            return int(self.X.data.nbytes + self.X.indices.nbytes + self.X.indptr.nbytes)
        return int(self.X.nbytes)

    @property
    def n_params(self) -> int:
        return self.k * (self.d + 1)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @functools.cached_property
    def _Xt32(self) -> NDArray[np.float32] | None:
        """The copy in single precision, made on first use; None on raw X, on data too small to gain from it
        and on features too large for it."""
        if self._Xt is None or self._Xt.size * self.k < _SINGLE_MIN_WORK or np.abs(self._Xt).max() > _SINGLE_MAX:
            return None
        return self._Xt.astype(np.float32)

    @property
    def has_single(self) -> bool:
        """Whether ``logits`` and ``gradient`` can take their products with ``X`` in single precision."""
        return self._Xt32 is not None

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

    def strided(self, step: int) -> LinearLoss:
        """The same loss on every ``step``-th row from the first (weights renormalized): the rows a solver
        pre-solves on."""
        return self.subset(np.arange(0, self.n_rows, step))

    # -- the linear map between coefficients and logits ---------------------------------------------
    def _to_raw(self, W: Array) -> tuple[Array, Array]:
        A = W[:, : self.d]
        if self.scale is not None:
            A = A / self.scale
        c = W[:, self.d]
        if self.mean is not None:
            c = c - A @ self.mean
        return A, c

    def logits(self, w: Array, single: bool = False) -> Array:
        """Logits ``(k, n)`` at the flat coefficients ``w``; linear in ``w``, so also the change of the logits
        along a direction. ``single``: from the single-precision copy of ``X`` (see :attr:`has_single`)."""
        W = w.reshape(self.k, self.d + 1)
        if single:
            assert self._Xt32 is not None
            return W.astype(np.float32) @ self._Xt32
        if self._Xt is not None:
            return W @ self._Xt
        A, c = self._to_raw(W)
        if not A.any():  # intercepts only, as at the usual start: no pass over X
            Z = np.empty((self.k, self.X.shape[0]))
            Z[:] = c[:, None]
            return Z
        if self.k == 1:
            z = np.asarray(self.X @ A[0])
            z += c[0]
            return z[None, :]
        if self.sparse:  # one pass over the stored entries for all classes, then into the (k, n) layout
            Z = np.ascontiguousarray(np.asarray(self.X @ np.ascontiguousarray(A.T)).T)
            Z += c[:, None]
            return Z
        # X @ A.T is (n, k): transposed block by block, each block still in cache
        AT = np.ascontiguousarray(A.T)
        Z = np.empty((self.k, self.X.shape[0]))
        for start in range(0, self.X.shape[0], _LOGIT_CHUNK):
            stop = start + _LOGIT_CHUNK
            np.add((self.X[start:stop] @ AT).T, c[:, None], out=Z[:, start:stop])
        return Z

    def _back(self, R: Array, single: bool = False) -> Array:
        """Map per-sample residuals ``(k, n)`` to a flat coefficient-shaped gradient: the adjoint of ``logits``."""
        if single:
            assert self._Xt32 is not None
            G = R.astype(np.float32) @ self._Xt32.T
        elif self._Xt is not None:
            G = R @ self._Xt.T
        else:
            G = np.empty((self.k, self.d + 1))
            if self.sparse:  # X.T is a CSC view of X (no copy); its products are dense ndarrays
                G[:, : self.d] = np.asarray(self.X.T @ R[0]) if self.k == 1 else np.asarray(self.X.T @ R.T).T
            else:
                G[:, : self.d] = R @ self.X
            rsum = R.sum(axis=1)
            if self.mean is not None:
                G[:, : self.d] -= rsum[:, None] * self.mean
            if self.scale is not None:
                G[:, : self.d] /= self.scale
            G[:, self.d] = rsum
        if not self.fit_intercept:
            G[:, self.d] = 0.0
        return G.ravel()

    # -- objective, gradient, curvature ------------------------------------------------------------
    def value(self, w: Array, Z: Array) -> tuple[float, Array]:
        """Objective at ``w`` whose logits are ``Z``, and the weighted probabilities ``w_i p_ik`` (``(k, n)``;
        of the positive class for the binary model) from which :meth:`gradient` maps back."""
        Q = np.empty_like(Z)
        f = 0.0
        for start in range(0, Z.shape[1], _VALUE_CHUNK):
            stop = start + _VALUE_CHUNK
            f += self._block_value(Z[:, start:stop], Q[:, start:stop], start, stop)
        return f + 0.5 * float(w @ (self._l2_mask * w)), Q

    def _block_value(self, Z: Array, Q: Array, start: int, stop: int) -> float:
        """:meth:`value` on the samples ``start:stop``: their weighted loss; their ``w_i p_ik`` into ``Q``."""
        w = self.weights[start:stop]
        if self.k == 1:
            z, q = Z[0], Q[0]
            e = np.abs(z)
            np.negative(e, out=e)
            np.exp(e, out=e)
            # log(1 + exp(z)) - t z = log1p(exp(-|z|)) + max(s z, 0), s = -1 for the positive class, else 1
            np.copyto(q, z)
            np.negative(q, out=q, where=self._positive[start:stop])
            np.maximum(q, 0.0, out=q)
            q += np.log1p(e)
            f = float(w @ q)
            # w sigmoid(z) = w / (1 + e) where z >= 0, w e / (1 + e) elsewhere
            np.copyto(q, e)
            np.copyto(q, 1.0, where=z >= 0)
            e += 1.0
            q /= e
            q *= w
            return f
        np.subtract(Z, Z.max(axis=0), out=Q)
        own = Q[self.y[start:stop], np.arange(Q.shape[1])]
        np.exp(Q, out=Q)
        total = Q.sum(axis=0)
        f = float(w @ (np.log(total) - own))
        Q *= w / total
        return f

    def gradient(self, w: Array, Q: Array, single: bool = False) -> Array:
        """Gradient (flat) at ``w`` from the weighted probabilities :meth:`value` returned there; ``single`` as
        in :meth:`logits`."""
        return self._back(Q, single) - self._linear + self._l2_mask * w

    def per_sample_loss(self, W: Array) -> Array:
        """Unweighted log-loss of each sample (no penalty)."""
        Z = self.logits(W.ravel())
        if self.k == 1:
            return log1pexp(Z[0]) - self._positive * Z[0]
        return -log_softmax(Z.T)[np.arange(Z.shape[1]), self.y]

    def loss(self, w: Array) -> float:
        """Penalized objective at the flat coefficient vector ``w``."""
        return self.value(w, self.logits(w))[0]

    def loss_grad(self, w: Array) -> tuple[float, Array]:
        """Objective and its gradient (flat) at ``w``."""
        f, Q = self.value(w, self.logits(w))
        return f, self.gradient(w, Q)

    def probabilities(self, w: Array) -> Array:
        """Probabilities at ``w``: ``(n,)`` of the positive class for the binary model, ``(k, n)`` otherwise."""
        return self._softmax(self.logits(w))

    def _softmax(self, Z: Array) -> Array:
        if self.k == 1:
            return sigmoid(Z[0])
        P = np.exp(Z - Z.max(axis=0))
        P /= P.sum(axis=0)
        return P

    def curvature_scale(self, Z: Array) -> float:
        """Mean diagonal entry of the data Hessian where the logits are ``Z`` (exact for the intercept), so a
        first quasi-Newton step has about the right length on standardized features."""
        P = self._softmax(Z)
        return float(np.mean((P * (1.0 - P)) @ self.weights))

    def curvature_at(self, w: Array) -> float:
        """:meth:`curvature_scale` at the coefficients ``w``."""
        return self.curvature_scale(self.logits(w))

    def hessp(self, w: Array) -> Callable[[Array], Array]:
        """Hessian-vector product operator at ``w``."""
        P = self.probabilities(w)
        if self.k == 1:
            h = self.weights * P * (1.0 - P)

        def product(v: Array) -> Array:
            dZ = self.logits(v)
            if self.k == 1:
                R = h * dZ
            else:
                PdZ = P * dZ
                R = self.weights * (PdZ - P * PdZ.sum(axis=0))
            return self._back(R) + self._l2_mask * v

        return product

    def hessian(self, w: Array) -> Array:
        """Full Hessian ``(d + 1, d + 1)`` of the binary objective (see :meth:`weighted_gram`)."""
        if self.k != 1:
            raise ValueError("the full Hessian is only formed for the binary model")
        P = self.probabilities(w)
        return self.weighted_gram(self.weights * P * (1.0 - P))

    def weighted_moments(self, h: Array) -> tuple[Array, Array]:
        """Per standardized feature ``j``, ``sum_i h_i xs_ij`` and ``sum_i h_i xs_ij^2``: the intercept column and
        the diagonal of :meth:`weighted_gram` (without ``l2``), in one pass over ``X`` and without copying it."""
        d = self.d
        if self._Xt is not None:
            F = self._Xt[:d]
            return F @ h, np.einsum("ij,ij,j->i", F, F, h)
        if self.sparse:
            q = np.asarray(self.X.T @ h)
            sq = np.zeros(d)
            data, indices, indptr = self.X.data, self.X.indices, self.X.indptr
            n = self.X.shape[0]
            # row blocks of about _SPARSE_CHUNK stored entries: each entry's squared value times its row's h
            rows = max(1, _SPARSE_CHUNK * n // max(int(indptr[-1]), 1))
            for a in range(0, n, rows):
                b = min(a + rows, n)
                lo, hi = indptr[a], indptr[b]
                values = data[lo:hi] * data[lo:hi]
                values *= np.repeat(h[a:b], np.diff(indptr[a : b + 1]))
                sq += np.bincount(indices[lo:hi], weights=values, minlength=d)
        else:
            q = h @ self.X
            sq = np.zeros(d)
            for start in range(0, self.X.shape[0], _HESSIAN_CHUNK):
                B = self.X[start : start + _HESSIAN_CHUNK]
                sq += np.einsum("ij,ij,i->j", B, B, h[start : start + _HESSIAN_CHUNK])
        if self.mean is not None:
            hs = float(h.sum())
            sq = sq - 2.0 * self.mean * q + hs * self.mean**2
            q = q - hs * self.mean
        if self.scale is not None:
            q = q / self.scale
            sq = sq / self.scale**2
        return q, sq

    def weight_moments(self) -> tuple[float, Array, Array]:
        """The sum of the weights and :meth:`weighted_moments` with them: what the diagonal preconditioner of
        wide and sparse data is built from."""
        return float(self.weights.sum()), *self.weighted_moments(self.weights)

    def weighted_gram(self, h: Array) -> Array:
        """``[Xs, 1]^T diag(h) [Xs, 1] + l2`` on the standardized features with an intercept column, built
        in row chunks on large data (no copy of X). With ``h = p(1 - p) w`` it is the binary Hessian. It is
        ``(d + 1)^2`` dense, so callers form it only for modest ``d``, sparse ``X`` included."""
        d = self.d
        if self._Xt is not None:
            H = (self._Xt * h) @ self._Xt.T
        else:
            H = np.empty((d + 1, d + 1))
            M = np.zeros((d, d))
            if self.sparse:
                for start in range(0, self.X.shape[0], _HESSIAN_CHUNK):
                    B = self.X[start : start + _HESSIAN_CHUNK]
                    Bh = B.copy()  # the chunk's rows scaled by h: same pattern, h times the values
                    Bh.data *= np.repeat(h[start : start + _HESSIAN_CHUNK], np.diff(B.indptr))
                    M += (B.T @ Bh).toarray()
                q = np.asarray(self.X.T @ h)
            else:
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
            H[:d, :d] = M
            H[:d, d] = q
            H[d, :d] = q
            H[d, d] = hs
        if not self.fit_intercept:  # the intercept stays at 0: decouple it
            H[:d, d] = H[d, :d] = 0.0
            H[d, d] = 1.0
        H[np.arange(d), np.arange(d)] += self.l2
        return H
