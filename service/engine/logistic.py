"""The estimator: binary and multinomial logistic regression with scikit-learn's conventions."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ._base import ParamsMixin
from ._loss import Array, LinearLoss, log1pexp, log_softmax
from ._minibatch import MINIBATCH_SOLVERS, Schedule, minibatch
from ._partitioned import Partitions, SummedLoss, centered_squares, class_counts, column_sums, part_of
from ._solvers import Callback, SolverResult, lbfgs, newton, proximal_gradient
from ._validation import check_class_labels, check_sample_weight, check_X, check_y, feature_names_of
from .exceptions import ConvergenceWarning, not_fitted_error
from .params import FULL_BATCH_SOLVERS, SOLVERS, check_params

#: Budgets when ``max_iter=None``: iterations for full-batch solvers, epochs for mini-batch ones.
DEFAULT_MAX_ITER = {"lbfgs": 1000, "newton": 100, "proximal": 10000, **dict.fromkeys(MINIBATCH_SOLVERS, 200)}
#: Tolerances when ``tol=None``: on the predicted remaining decrease relative to the objective (lbfgs,
#: newton), on the largest proximal-gradient entry (proximal), on the epoch loss improvement (mini-batch).
DEFAULT_TOL = {"lbfgs": 2e-8, "newton": 1e-10, "proximal": 1e-7, **dict.fromkeys(MINIBATCH_SOLVERS, 1e-5)}
#: Learning rates when ``learning_rate=None``.
DEFAULT_LEARNING_RATE = {"sgd": 0.3, "momentum": 0.05, "nesterov": 0.05, "adam": 0.01}

_CHUNK = 16384
#: Stored entries per chunk of the column statistics of sparse data: temporaries of a few MiB.
_SPARSE_CHUNK = 2**18
#: Rows of the subsample the L-BFGS solver pre-solves on when the data has at least twice as many.
_PRESOLVE_ROWS = 20000
#: Most features for which L-BFGS pre-solves on a subsample, preconditioned by the inverse of its feature Gram:
#: that Gram is ``(d + 1)^2`` dense (8 MiB here, but 512 GiB at 2^18 hashed features) and its inverse costs
#: ``O(d^3)``, and each L-BFGS step would multiply by it. Wider data, dense or sparse, gets no presolve (the
#: subsample, ``_PRESOLVE_ROWS`` rows for many more coefficients, would not land near the optimum) and the
#: diagonal preconditioner :func:`_centered_diagonal` instead, ``O(d)`` in memory and per product.
_PRECONDITION_MAX_FEATURES = 1024


def column_stats(X: Any, weights: Array | None = None) -> tuple[Array, Array]:
    """Mean and population standard deviation per column, in row chunks (no full-size temporary); on a
    scipy.sparse CSR matrix from its stored entries (see :func:`_sparse_column_stats`).

    With ``weights`` (one non-negative weight per row, with a positive sum), the weighted mean and the weighted
    population deviation ``sqrt(sum_i w_i (x_i - mean)^2 / sum_i w_i)``: an integer weight counts as that many
    copies of the row, and a zero weight as no row at all. Equal weights give exactly the unweighted statistics
    (the same computation, so the same bits)."""
    if weights is not None and (weights.shape[0] == 0 or np.all(weights == weights[0])):
        weights = None
    if sp.issparse(X):
        return _sparse_column_stats(X, weights)
    if weights is not None:
        return _weighted_column_stats(X, weights)
    mean = X.sum(axis=0) / X.shape[0]
    sq = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], _CHUNK):
        diff = X[start : start + _CHUNK] - mean
        sq += np.einsum("ij,ij->j", diff, diff)
    return mean, np.sqrt(sq / X.shape[0])


def _weighted_column_stats(X: Array, weights: Array) -> tuple[Array, Array]:
    """:func:`column_stats` of a dense ``X`` with row weights: two passes, the second over row chunks."""
    total = float(weights.sum())
    mean = (weights @ X) / total
    sq = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], _CHUNK):
        diff = X[start : start + _CHUNK] - mean
        sq += np.einsum("ij,ij,i->j", diff, diff, weights[start : start + _CHUNK])
    return mean, np.sqrt(sq / total)


def _sparse_column_stats(X: Any, weights: Array | None = None) -> tuple[Array, Array]:
    """:func:`column_stats` of a CSR matrix without densifying it: per-column sums of the stored entries, then
    of their squared deviations from the mean, in chunks of ``_SPARSE_CHUNK`` entries (each column's implicit
    zeros add ``(n - stored) * mean**2``). Two passes, like the dense computation, so no cancellation. With
    ``weights``, the chunks are blocks of whole rows (each entry takes its row's weight) and the implicit zeros
    add ``(total weight - weight of the rows storing an entry) * mean**2``."""
    if weights is not None:
        return _weighted_sparse_column_stats(X, weights)
    n, d = X.shape
    data, indices = X.data, X.indices
    total = np.zeros(d)
    for start in range(0, data.shape[0], _SPARSE_CHUNK):
        stop = start + _SPARSE_CHUNK
        total += np.bincount(indices[start:stop], weights=data[start:stop], minlength=d)
    mean = total / n
    sq = np.zeros(d)
    stored = np.zeros(d)
    for start in range(0, data.shape[0], _SPARSE_CHUNK):
        stop = start + _SPARSE_CHUNK
        cols = indices[start:stop]
        diff = data[start:stop] - mean[cols]
        diff *= diff
        sq += np.bincount(cols, weights=diff, minlength=d)
        stored += np.bincount(cols, minlength=d)
    sq += (n - stored) * mean**2
    return mean, np.sqrt(sq / n)


def _sparse_row_blocks(X: Any) -> list[tuple[int, int]]:
    """Row ranges ``(a, b)`` of a CSR matrix holding about ``_SPARSE_CHUNK`` stored entries each."""
    n = X.shape[0]
    rows = max(1, _SPARSE_CHUNK * n // max(int(X.indptr[-1]), 1))
    return [(a, min(a + rows, n)) for a in range(0, n, rows)]


def _weighted_sparse_column_stats(X: Any, weights: Array) -> tuple[Array, Array]:
    """The weighted :func:`_sparse_column_stats`: the same two passes, each entry weighted by its row's weight."""
    d = X.shape[1]
    data, indices, indptr = X.data, X.indices, X.indptr
    blocks = _sparse_row_blocks(X)
    total_weight = float(weights.sum())
    total = np.zeros(d)
    for a, b in blocks:
        lo, hi = indptr[a], indptr[b]
        w = np.repeat(weights[a:b], np.diff(indptr[a : b + 1]))
        total += np.bincount(indices[lo:hi], weights=data[lo:hi] * w, minlength=d)
    mean = total / total_weight
    sq = np.zeros(d)
    stored = np.zeros(d)
    for a, b in blocks:
        lo, hi = indptr[a], indptr[b]
        w = np.repeat(weights[a:b], np.diff(indptr[a : b + 1]))
        cols = indices[lo:hi]
        diff = data[lo:hi] - mean[cols]
        diff *= diff
        diff *= w
        sq += np.bincount(cols, weights=diff, minlength=d)
        stored += np.bincount(cols, weights=w, minlength=d)
    sq += np.maximum(total_weight - stored, 0.0) * mean**2
    return mean, np.sqrt(sq / total_weight)


class LogisticRegression(ParamsMixin):
    r"""Logistic regression: sigmoid for two classes, softmax for three or more.

    Minimizes the weighted mean log-loss plus a penalty on the (standardized) coefficients,

    .. math:: \frac{1}{S}\sum_i s_i c_{y_i}\,\ell_i(W) + \alpha\left(\rho\|W\|_1 + \frac{1-\rho}{2}\|W\|_2^2\right)

    with sample weights :math:`s_i`, class weights :math:`c_y`, :math:`S = \sum_i s_i c_{y_i}` and
    :math:`\rho` = ``l1_ratio`` (1 for ``"l1"``, 0 for ``"l2"``). The intercept is never penalized.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", "none"}
    alpha : float, optional
        Penalty strength. Defaults to ``1 / (C * S)``, which reproduces scikit-learn's ``C``.
    C : float, optional
        Inverse strength, scikit-learn's spelling: ``alpha = 1 / (C * S)``. Give ``alpha`` or ``C``, not
        both; with neither, ``C = 1``.
    l1_ratio : float in [0, 1], the L1 share of an elastic-net penalty.
    solver : {"lbfgs", "newton", "proximal", "sgd", "momentum", "nesterov", "adam"}
        ``lbfgs`` and ``newton`` are full-batch and need a smooth penalty (``l2`` or ``none``);
        ``proximal`` (FISTA) handles every penalty and gives exact zeros for L1; the mini-batch solvers
        apply a soft-threshold step for L1, so weights reach exact zeros there too.
    max_iter : int, optional
        Iterations (full batch) or epochs (mini-batch); ``None`` picks :data:`DEFAULT_MAX_ITER`.
    tol : float, optional
        ``lbfgs``/``newton``: stop when the decrease the (quasi-)Newton step predicts, an estimate of the
        distance to the optimum, is at most ``tol`` times the objective. ``proximal``: the largest entry of
        the proximal-gradient step. Mini-batch: the smallest improvement of the monitored loss that counts.
        ``None`` picks :data:`DEFAULT_TOL`.
    fit_intercept : bool
    standardize : bool
        Learn each feature's mean and scale and apply them inside the model: the mean and population standard
        deviation weighted by ``sample_weight`` (not by the class weights), so an integer weight counts as that
        many copies of the row, there too. ``coef_`` is always in the
        original feature units; ``standardized_coef_`` holds the coefficients the penalty sees. A
        scipy.sparse ``X`` is scaled by the same (population) deviation but not centered, so it stays
        sparse (scikit-learn's ``StandardScaler(with_mean=False)``): ``mean_`` is then zeros. With an
        intercept that changes only its parametrization, not the fitted model or the objective.
    class_weight : None, "balanced" or mapping label -> weight
        ``"balanced"`` uses ``total weight / (n_classes * weight of the class)``, counting sample weights,
        as scikit-learn (1.6 and later) does; without sample weights that is ``n / (k * count(y))``.
    batch_size, learning_rate, lr_schedule, lr_gamma, lr_step_size, lr_decay, lr_min, momentum, beta1,
    beta2 : mini-batch settings. Schedules (``t`` is the 0-based epoch): ``constant``; ``step``:
        ``lr * lr_gamma ** (t // lr_step_size)``; ``exponential``: ``lr * exp(-lr_decay * t)``;
        ``inverse_time``: ``lr / (1 + lr_decay * t)``; ``cosine``: from ``lr`` down to ``lr_min`` over
        ``max_iter`` epochs. ``learning_rate=None`` picks :data:`DEFAULT_LEARNING_RATE`.
    early_stopping, validation_fraction, n_iter_no_change : mini-batch only. With ``early_stopping``, a
        stratified ``validation_fraction`` of the rows is held out, training stops once its log-loss has
        not improved by ``tol`` for ``n_iter_no_change`` epochs, and the best coefficients are kept.
    random_state : int, optional
        Seeds every shuffle and split: the same seed gives the same model bit for bit.
    warm_start : bool
        Start from the current coefficients (converted to the new data's standardization).

    Attributes
    ----------
    classes_, coef_ (``(1, d)`` or ``(k, d)``), intercept_, n_features_in_, feature_names_in_ (when fitted
    on a data frame with string columns), mean_, scale_, standardized_coef_, standardized_intercept_,
    alpha_ (the strength used), n_iter_, converged_, loss_history_ (objective per iteration or epoch),
    fit_warnings_ (the messages of the warnings the last fit emitted, for callers that report them).
    """

    def __init__(
        self,
        *,
        penalty: str = "l2",
        alpha: float | None = None,
        C: float | None = None,
        l1_ratio: float = 0.5,
        solver: str = "lbfgs",
        max_iter: int | None = None,
        tol: float | None = None,
        fit_intercept: bool = True,
        standardize: bool = True,
        class_weight: Mapping[Any, float] | str | None = None,
        batch_size: int = 32,
        learning_rate: float | None = None,
        lr_schedule: str = "constant",
        lr_gamma: float = 0.5,
        lr_step_size: int = 50,
        lr_decay: float = 0.01,
        lr_min: float = 0.0,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        random_state: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.penalty = penalty
        self.alpha = alpha
        self.C = C
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.class_weight = class_weight
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.lr_gamma = lr_gamma
        self.lr_step_size = lr_step_size
        self.lr_decay = lr_decay
        self.lr_min = lr_min
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start

    # -- scikit-learn integration ---------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        """Tags for scikit-learn's tooling; only scikit-learn calls this, so it may import it here."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            input_tags=InputTags(sparse=True),  # scipy.sparse X of any format, used as CSR
        )

    # -- hyperparameter checks ------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_params(self.get_params())

    def _class_weights(self, y_enc: NDArray[np.intp], sw: Array) -> Array:
        k = len(self.classes_)
        return self._class_weight_vector(lambda: (np.bincount(y_enc, weights=sw, minlength=k), float(sw.sum())))

    def _class_weight_vector(self, weight_by_class: Callable[[], tuple[Array, float]]) -> Array:
        """The weight of each class; ``weight_by_class()`` gives the sample weight of each class and of all
        (asked for by ``"balanced"`` only)."""
        k = len(self.classes_)
        if self.class_weight is None:
            return np.ones(k)
        if isinstance(self.class_weight, str):
            if self.class_weight != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a mapping, got {self.class_weight!r}")
            counts, total = weight_by_class()
            if (counts <= 0).any():
                empty = self.classes_[counts <= 0].tolist()
                raise ValueError(f"class_weight='balanced' needs weight in every class; {empty} have none")
            return total / (k * counts)
        weights = np.ones(k)
        known = {self._label_key(c): i for i, c in enumerate(self.classes_)}
        for label, w in dict(self.class_weight).items():
            key = self._label_key(label)
            if key not in known:
                raise ValueError(
                    f"class_weight names label {label!r}, which is not among the classes {self.classes_.tolist()}"
                )
            if not (np.isfinite(w) and w >= 0):
                raise ValueError(f"class_weight for {label!r} must be a finite number >= 0, got {w!r}")
            weights[known[key]] = float(w)
        return weights

    @staticmethod
    def _label_key(label: Any) -> Any:
        return label.item() if isinstance(label, np.generic) else label

    # -- fitting --------------------------------------------------------------------------------------
    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, *, callback: Callback | None = None
    ) -> Self:
        """Fit to ``X`` (n, d; an array, a data frame or a scipy.sparse matrix of any format, used as CSR without
        a dense copy) and labels ``y``; ``callback(iteration, loss)`` may return True to stop."""
        self._check_params()
        names = feature_names_of(X)
        X = check_X(X)
        conversions: list[str] = []
        y = check_y(y, X.shape[0], estimator=type(self).__name__, conversions=conversions)
        check_class_labels(y)
        sw = check_sample_weight(sample_weight, X.shape[0])
        try:
            classes, y_enc = np.unique(y, return_inverse=True)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in y.tolist()})
            raise ValueError(f"y mixes label types {kinds}; use labels of one type") from None
        if classes.shape[0] < 2:
            raise ValueError(
                f"y holds a single class ({self._label_key(classes[0])!r}): logistic regression needs at least 2 "
                "classes, got 1 class"
            )
        previous = self._warm_start_coef(X.shape[1], classes)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        sparse = sp.issparse(X)
        if self.standardize:
            # weighted by the sample weights (not the class weights): a row of weight 2 counts as two rows, one
            # of weight 0 as none, so the standardization is that of the data the weights stand for
            mean, scale = column_stats(X, sw)
            scale[scale == 0.0] = 1.0
            if not self.fit_intercept or sparse:
                # Sparse data is scaled, not centered (scikit-learn's StandardScaler(with_mean=False)): with an
                # intercept, centering only reparametrizes that unpenalized term, so the fitted model is the
                # same; the scale stays the deviation around the mean, so the penalty is that of dense data.
                mean = np.zeros_like(mean)
        else:
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        weights = self._class_weights(y_enc, sw)[y_enc]
        weights *= sw
        del sw  # on large data every per-sample array the fit keeps is memory next to X: only the loss's stay
        total = float(weights.sum())
        alpha, l1_share = self._strength(total)
        loss = LinearLoss(
            X,
            y_enc.astype(np.intp, copy=False),
            np.divide(weights, total, out=weights),
            mean if self.standardize and self.fit_intercept and not sparse else None,
            scale if self.standardize else None,
            len(classes),
            l2=alpha * (1.0 - l1_share),
            fit_intercept=self.fit_intercept,
        )
        prior = functools.partial(np.bincount, y_enc, weights=loss.weights, minlength=loss.n_classes)
        x0 = self._initial_coef(loss.k, loss.d, prior, previous, mean, scale)
        result = self._solve(loss, x0, alpha * l1_share, callback)
        return self._set_solution(result, loss.k, loss.d, alpha, mean, scale, conversions)

    def fit_partitioned(self, parts: Partitions, classes: Any, n_features: int, *,
                        callback: Callback | None = None) -> Self:
        """Fit to rows split into partitions that live elsewhere (a cluster's workers): each partition a
        :class:`~._partitioned.Block` whose class codes index ``classes`` (sorted, as ``np.unique`` gives them).

        The same model as :meth:`fit` on the rows of all partitions in order, without sample weights: the class
        counts, the standardization and every evaluation of the objective are sums over the partitions (see
        :mod:`._partitioned`); L-BFGS pre-solves on the same strided subsample, brought here. Full-batch
        solvers only: the mini-batch ones need the rows in this process.
        """
        self._check_params()
        if self.solver not in FULL_BATCH_SOLVERS:
            raise ValueError(
                f"solver {self.solver!r} takes mini-batches of rows in this process; a fit on partitions takes "
                f"a full-batch solver: one of {FULL_BATCH_SOLVERS}"
            )
        classes = np.asarray(classes)
        if classes.shape[0] < 2:
            raise ValueError(f"{classes.shape[0]} class(es) {classes.tolist()}; logistic regression needs at least 2")
        previous = self._warm_start_coef(n_features, classes)
        self.classes_ = classes
        self.n_features_in_ = n_features
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        k, d = classes.shape[0], n_features
        counts = np.asarray(parts.map_sum(class_counts, k), dtype=np.float64)
        n = int(counts.sum())
        class_w = self._class_weight_vector(lambda: (counts, float(counts.sum())))
        totals = counts * class_w
        total = float(totals.sum())
        alpha, l1_share = self._strength(total)
        if self.standardize:
            mean = parts.map_sum(column_sums) / n
            scale = np.sqrt(parts.map_sum(centered_squares, mean) / n)
            scale[scale == 0.0] = 1.0
            if not self.fit_intercept:
                mean = np.zeros_like(mean)
        else:
            mean, scale = np.zeros(d), np.ones(d)
        loss_mean = mean if self.standardize and self.fit_intercept else None
        loss_scale = scale if self.standardize else None
        losses = parts.map_keep(part_of, class_w / total, loss_mean, loss_scale, k, self.fit_intercept)
        loss = SummedLoss(losses, n, d, k, alpha * (1.0 - l1_share), self.fit_intercept, loss_mean, loss_scale)
        x0 = self._initial_coef(loss.k, d, lambda: totals / total, previous, mean, scale)
        result = self._solve(loss, x0, alpha * l1_share, callback)
        return self._set_solution(result, loss.k, d, alpha, mean, scale)

    def _strength(self, total: float) -> tuple[float, float]:
        """The penalty's strength ``alpha`` and its L1 share, for sample and class weights summing to ``total``."""
        if total <= 0:
            raise ValueError(
                "the sample and class weights sum to 0 (every row's weight is zero): at least one sample must carry "
                "weight"
            )
        if self.alpha is not None:
            alpha = float(self.alpha)
        else:
            alpha = 1.0 / ((1.0 if self.C is None else float(self.C)) * total)
        if self.penalty == "none":
            alpha = 0.0
        l1_share = {"l2": 0.0, "l1": 1.0, "elasticnet": float(self.l1_ratio), "none": 0.0}[self.penalty]
        return alpha, l1_share

    def _set_solution(self, result: SolverResult, k: int, d: int, alpha: float, mean: Array, scale: Array,
                      conversions: list[str] | None = None) -> Self:
        """The fitted attributes from a solver's result in standardized space (and its warnings: the input
        ``conversions`` the fit made, and a convergence warning if any)."""
        W = result.coef.reshape(k, d + 1)
        if k > 1 and self.fit_intercept:
            W[:, d] -= W[:, d].mean()  # softmax is invariant to a common shift
        self.alpha_ = alpha
        self.mean_, self.scale_ = mean, scale
        self.standardized_coef_ = W[:, :d].copy()
        self.standardized_intercept_ = W[:, d].copy()
        self.coef_ = self.standardized_coef_ / scale
        self.intercept_ = self.standardized_intercept_ - self.coef_ @ mean
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.loss_history_ = [float(v) for v in result.loss_history]
        self.fit_warnings_: list[str] = list(conversions or [])
        if not result.converged and not result.stopped:
            message = (
                f"solver {self.solver!r} did not converge in {result.n_iter} "
                f"{'epochs' if self.solver in MINIBATCH_SOLVERS else 'iterations'} "
                f"(tol={self._tol()}); raise max_iter or tol, or standardize the features"
            )
            self.fit_warnings_.append(message)
            warnings.warn(ConvergenceWarning(message), stacklevel=3)
        return self

    def _tol(self) -> float:
        return DEFAULT_TOL[self.solver] if self.tol is None else float(self.tol)

    def _warm_start_coef(self, n_features: int, classes: NDArray[Any]) -> tuple[Array, Array] | None:
        """Current raw-unit coefficients when warm starting on compatible data, else None."""
        if not self.warm_start or not hasattr(self, "coef_"):
            return None
        if self.n_features_in_ != n_features or not np.array_equal(self.classes_, classes):
            raise ValueError(
                "warm_start needs the same features and classes as the previous fit: had "
                f"{self.n_features_in_} features and classes {self.classes_.tolist()}, got {n_features} and "
                f"{classes.tolist()}"
            )
        return self.coef_, self.intercept_

    def _initial_coef(
        self,
        k: int,
        d: int,
        prior_of: Callable[[], Array],
        previous: tuple[Array, Array] | None,
        mean: Array,
        scale: Array,
    ) -> Array:
        """The start: the previous fit's coefficients (warm start), else intercepts at the log-odds of the
        classes' shares of the weight ``prior_of()``, else zeros."""
        W = np.zeros((k, d + 1))
        if previous is not None:
            coef, intercept = previous
            W[:, :d] = coef * scale
            W[:, d] = intercept + coef @ mean
        elif self.fit_intercept:
            prior = np.clip(prior_of(), 1e-12, None)
            if k == 1:
                W[0, d] = np.log(prior[1] / prior[0])
            else:
                W[:, d] = np.log(prior) - np.log(prior).mean()
        return W.ravel()

    def _solve(self, loss: LinearLoss | SummedLoss, x0: Array, l1: float, callback: Callback | None) -> SolverResult:
        solver = self.solver
        max_iter = DEFAULT_MAX_ITER[solver] if self.max_iter is None else int(self.max_iter)
        tol = self._tol()
        if solver == "lbfgs":
            pairs = None
            n = loss.n_rows
            precond = None
            if n >= 2 * _PRESOLVE_ROWS and loss.d <= _PRECONDITION_MAX_FEATURES:
                # Large data: whiten the features with the inverse Gram of an evenly strided subsample and
                # solve on that subsample first. It lands near the optimum and its curvature pairs match
                # the full Hessian well, so the full-data phase needs only a few passes over X. (On small
                # data the whitening costs more iterations than it saves, measured on breast-cancer.)
                sub = loss.strided(n // _PRESOLVE_ROWS)
                precond = _inverse_gram(sub)
                pre = lbfgs(sub, x0, max_iter=max_iter, tol=max(tol, 1e-6), preconditioner=precond)
                x0, pairs = pre.coef, pre.curvature_pairs
            elif loss.d > _PRECONDITION_MAX_FEATURES or loss.sparse:
                # Wide data, and sparse data of any size (never centered): the diagonal preconditioner, built
                # in one pass; it halves the iterations on hashed sparse features or better.
                precond = _centered_diagonal(loss)
            return lbfgs(loss, x0, max_iter=max_iter, tol=tol, callback=callback, curvature_pairs=pairs,
                         preconditioner=precond, keep_pairs=False)
        if solver == "newton":
            return newton(loss, x0, max_iter=max_iter, tol=tol, callback=callback)
        if solver == "proximal":
            return proximal_gradient(loss, x0, l1=l1, max_iter=max_iter, tol=tol, callback=callback)
        if solver in MINIBATCH_SOLVERS:
            if not isinstance(loss, LinearLoss):
                raise ValueError(f"solver {solver!r} needs the rows in this process")
            rng = np.random.default_rng(self.random_state)
            validation = None
            if self.early_stopping:
                train_idx, val_idx = stratified_split(loss.y, self.validation_fraction, rng)
                validation = loss.subset(val_idx)
                validation.l2 = 0.0
                loss = loss.subset(train_idx)
            lr = DEFAULT_LEARNING_RATE[solver] if self.learning_rate is None else float(self.learning_rate)
            schedule = Schedule(
                self.lr_schedule, lr, max_iter, self.lr_gamma, self.lr_step_size, self.lr_decay, self.lr_min
            )
            return minibatch(
                loss,
                x0,
                solver=solver,
                schedule=schedule,
                batch_size=int(self.batch_size),
                max_epochs=max_iter,
                tol=tol,
                n_iter_no_change=int(self.n_iter_no_change),
                rng=rng,
                l1=l1,
                momentum=self.momentum,
                beta1=self.beta1,
                beta2=self.beta2,
                validation=validation,
                callback=callback,
            )
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")

    # -- prediction -----------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise not_fitted_error(
                f"This {type(self).__name__} instance is not fitted yet; call fit(X, y) before predicting"
            )

    def _check_predict_X(self, X: Any) -> Any:
        self._check_fitted()
        X = check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input, the number it was fitted with"
            )
        return X

    def decision_function(self, X: Any) -> Array:
        """Logits: ``(n,)`` for two classes (of the positive class), ``(n, k)`` otherwise."""
        X = self._check_predict_X(X)
        Z = np.asarray(X @ self.coef_.T) + self.intercept_
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_log_proba(self, X: Any) -> Array:
        """Log of ``predict_proba``, computed without taking the log of a rounded probability."""
        Z = self.decision_function(X)
        if Z.ndim == 1:
            return np.column_stack([-log1pexp(Z), -log1pexp(-Z)])
        return log_softmax(Z)

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities ``(n, k)`` in the order of ``classes_``; rows sum to 1."""
        Z = self.decision_function(X)
        if Z.ndim == 1:
            return _binary_proba(Z)
        return np.exp(log_softmax(Z))

    def predict(self, X: Any, threshold: float | None = None) -> NDArray[Any]:
        """Class labels: for two classes, ``classes_[1]`` when its probability is at least ``threshold``."""
        proba = self.predict_proba(X)
        if proba.shape[1] == 2:
            t = 0.5 if threshold is None else float(threshold)
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
            return self.classes_[(proba[:, 1] >= t).astype(np.intp)]
        if threshold is not None:
            raise ValueError(
                f"threshold applies to binary models only; this model has {proba.shape[1]} classes and "
                "predicts the most probable one"
            )
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of ``predict(X)`` against ``y`` (weighted when ``sample_weight`` is given)."""
        y = check_y(y, np.shape(X)[0] if hasattr(X, "shape") else len(X), estimator=type(self).__name__)
        sw = check_sample_weight(sample_weight, y.shape[0])
        return float(np.average(self.predict(X) == y, weights=sw))


def _inverse_gram(loss: LinearLoss) -> Array:
    """Inverse of the weighted Gram matrix of the (standardized) features, with a tiny ridge so constant
    or collinear features cannot make it singular: L-BFGS's initial inverse-Hessian shape."""
    G = loss.weighted_gram(loss.weights)
    G[np.diag_indices_from(G)] += 1e-8 * max(float(np.trace(G)) / G.shape[0], 1e-12)
    return np.linalg.inv(G)


def _centered_diagonal(loss: LinearLoss | SummedLoss) -> Callable[[Array], Array]:
    """For wide data, where :func:`_inverse_gram` is out of reach, and for sparse data: the inverse of the
    weighted Gram of the features as if each were centered (around its weighted mean ``mu``) and the centered
    features uncorrelated.

    In the coordinates ``(a, b + mu.a)`` of centered features that Gram is diagonal: ``D = centered weighted
    sums of squares + l2`` and ``sum h`` for the intercept. Mapped back to ``(a, b)`` it is ``J^-1 diag^-1
    J^-T`` with ``J = [[I, 0], [mu^T, 1]]``: symmetric positive definite, ``O(d)`` per product, built in one
    pass over ``X``. It gives uncentered data (sparse data is never centered) the conditioning that centering
    and scaling give dense data: on raw positive features the intercept and every feature's mean share one
    steep direction of the objective that plain L-BFGS spends many iterations finding.
    """
    d = loss.d
    s, q, sq = loss.weight_moments()
    mu = q / s if loss.fit_intercept else np.zeros(d)
    D = np.maximum(sq - mu * q, 0.0) + loss.l2
    D += 1e-8 * max(float(D.mean()), 1e-12)  # never-seen features without l2: their gradient is always 0

    def apply(V: Array) -> Array:
        out = np.empty_like(V)
        W1 = (V[:, :d] - V[:, d : d + 1] * mu) / D
        out[:, :d] = W1
        out[:, d] = V[:, d] / s - W1 @ mu
        return out

    return apply


def _binary_proba(z: Array) -> Array:
    """``[sigmoid(-z), sigmoid(z)]`` as ``1 / (1 + exp([z, -z]))``: every entry exact to a few ulps, tiny ones
    too; where the exponential overflows, the entry is its exact limit 0 (without an overflow warning)."""
    out = np.multiply(z[:, None], _SIGNS)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


_SIGNS = np.array([1.0, -1.0])


def stratified_split(
    y: NDArray[np.intp], fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Seeded split keeping each class's share; every class keeps at least one training row."""
    train, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_held = min(round(fraction * idx.size), idx.size - 1)
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))
