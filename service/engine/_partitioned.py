"""The logistic loss on rows split into partitions that live elsewhere (the workers of a cluster), for the
full-batch solvers: every evaluation is one map over the partitions with the current coefficients and one sum,
so this process holds only vectors of length ``n_params`` (and, once, a subsample to pre-solve on).

The engine does not know where the partitions are nor how a map runs; a :class:`Partitions` does (the
service's Dask one in :mod:`service.services.distributed`, or :class:`LocalPartitions`, a list in this
process: the reference the tests compare with). What each partition computes is defined here, as module-level
functions of a :class:`Block` (rows) or a :class:`Part` (their loss), so a cluster runs them by reference.

Each partition's :class:`~._loss.LinearLoss` carries the global conventions of the objective: weights divided
by the total of all partitions (so the partitions' data terms add up to the objective's), the global
standardization, and ``l2 = 0``: :class:`SummedLoss` adds the penalty once.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ._loss import Array, LinearLoss

#: Rows per chunk of :func:`centered_squares` (as :func:`~.logistic.column_stats`): no temporary of a block's size.
_CHUNK = 16384


@dataclass
class Block:
    """Rows of one partition: raw features ``(n, d)``, class codes ``(n,)`` and the position of its first row
    among the rows of all partitions, in order (which rows :meth:`SummedLoss.strided` takes)."""

    X: Array
    y: NDArray[np.intp]
    offset: int


@dataclass
class Part:
    """A partition's loss (weights, standardization and ``l2 = 0`` as the module docstring says) and its
    block's offset."""

    loss: LinearLoss
    offset: int


class Partitions(Protocol):
    """Partitions held elsewhere, and the three ways to run a function of each where it is."""

    def map_sum(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(partition, *args)`` of every partition, summed (floats and arrays, or tuples of them)."""
        ...

    def map_keep(self, fn: Callable[..., Any], *args: Any) -> Partitions:
        """New partitions: ``fn(partition, *args)`` of each, kept where the partition is."""
        ...

    def map_list(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``fn(partition, *args)`` of every partition, in order, brought here."""
        ...


def add_up(results: Sequence[Any]) -> Any:
    """The sum of partial results: floats and arrays, or tuples of them added entry by entry."""
    if not results:
        raise ValueError("no partitions to add up")
    if isinstance(results[0], tuple):
        return tuple(add_up(column) for column in zip(*results, strict=True))
    return functools.reduce(operator.add, results[1:], results[0])


class LocalPartitions:
    """Partitions in this process, as a list: the reference implementation of :class:`Partitions`."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)

    def map_sum(self, fn: Callable[..., Any], *args: Any) -> Any:
        return add_up([fn(p, *args) for p in self.parts])

    def map_keep(self, fn: Callable[..., Any], *args: Any) -> LocalPartitions:
        return LocalPartitions([fn(p, *args) for p in self.parts])

    def map_list(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return [fn(p, *args) for p in self.parts]


def blocks_of(X: Array, y: NDArray[np.intp], sizes: Sequence[int]) -> list[Block]:
    """``X, y`` cut into consecutive blocks of ``sizes`` rows (views, no copy)."""
    out, start = [], 0
    for size in sizes:
        out.append(Block(X[start : start + size], y[start : start + size], start))
        start += size
    if start != X.shape[0]:
        raise ValueError(f"block sizes add up to {start}, not to the {X.shape[0]} rows")
    return out


# -- what each block computes: its statistics, then its loss -----------------------------------------------
def class_counts(block: Block, n_classes: int) -> Array:
    """Rows of each class."""
    return np.bincount(block.y, minlength=n_classes).astype(np.float64)


def column_sums(block: Block) -> Array:
    """Per-feature sums (the mean's numerator)."""
    return block.X.sum(axis=0)


def centered_squares(block: Block, mean: Array) -> Array:
    """Per-feature sums of squared deviations from ``mean`` (the variance's numerator; two passes, as
    :func:`~.logistic.column_stats`, so no cancellation)."""
    sq = np.zeros(block.X.shape[1])
    for start in range(0, block.X.shape[0], _CHUNK):
        diff = block.X[start : start + _CHUNK] - mean
        sq += np.einsum("ij,ij->j", diff, diff)
    return sq


def part_of(block: Block, class_weights: Array, mean: Array | None, scale: Array | None, n_classes: int,
            fit_intercept: bool) -> Part:
    """The block's loss: each row weighs ``class_weights`` of its class (already divided by the total)."""
    loss = LinearLoss(block.X, block.y, class_weights[block.y], mean, scale, n_classes, 0.0, fit_intercept)
    return Part(loss, block.offset)


# -- what each part computes at given coefficients -----------------------------------------------------------
def part_loss(part: Part, w: Array) -> float:
    return part.loss.loss(w)


def part_loss_grad(part: Part, w: Array) -> tuple[float, Array]:
    return part.loss.loss_grad(w)


def part_curvature(part: Part, w: Array) -> Array:
    """``sum_i w_i p_ik (1 - p_ik)`` per class (a 0-d array for the binary model)."""
    P = part.loss.probabilities(w)
    return np.asarray((P * (1.0 - P)) @ part.loss.weights)


def part_hessp(part: Part, w: Array, v: Array) -> Array:
    return part.loss.hessp(w)(v)


def part_hessian(part: Part, w: Array) -> Array:
    return part.loss.hessian(w)


def part_weight_moments(part: Part) -> tuple[float, Array, Array]:
    return part.loss.weight_moments()


def part_strided(part: Part, step: int) -> tuple[Array, NDArray[np.intp], Array]:
    """The part's rows whose position among all rows is a multiple of ``step``: features, codes, weights."""
    idx = np.arange((-part.offset) % step, part.loss.n_rows, step)
    return part.loss.X[idx], part.loss.y[idx], part.loss.weights[idx]


class SummedLoss:
    """:class:`~._loss.LinearLoss`'s objective, gradient and curvature on partitions of :class:`Part` (see the
    module docstring), with the methods the solvers use (:class:`~._solvers.SmoothLoss`).

    Parameters
    ----------
    parts : the partitions, each a :class:`Part`, in row order.
    n_rows, d : rows of all partitions, features.
    n_classes, l2, fit_intercept, mean, scale : as :class:`~._loss.LinearLoss`'s.
    """

    sparse = False

    def __init__(self, parts: Partitions, n_rows: int, d: int, n_classes: int, l2: float, fit_intercept: bool,
                 mean: Array | None, scale: Array | None) -> None:
        self.parts = parts
        self._n_rows = int(n_rows)
        self.d = d
        self.n_classes = n_classes
        self.k = 1 if n_classes == 2 else n_classes
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.mean = mean
        self.scale = scale
        mask = np.full((self.k, d + 1), l2)
        mask[:, d] = 0.0
        self._l2_mask = mask.ravel()

    @property
    def n_params(self) -> int:
        return self.k * (self.d + 1)

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @property
    def nbytes(self) -> int:
        """Bytes of the features of all partitions (they are not here)."""
        return self._n_rows * self.d * 8

    def _penalty(self, w: Array) -> float:
        return 0.5 * float(w @ (self._l2_mask * w))

    def loss(self, w: Array) -> float:
        return float(self.parts.map_sum(part_loss, w)) + self._penalty(w)

    def loss_grad(self, w: Array) -> tuple[float, Array]:
        f, g = self.parts.map_sum(part_loss_grad, w)
        return float(f) + self._penalty(w), g + self._l2_mask * w

    def curvature_at(self, w: Array) -> float:
        return float(np.mean(self.parts.map_sum(part_curvature, w)))

    def hessp(self, w: Array) -> Callable[[Array], Array]:
        """Hessian-vector products at ``w``, each one map (the parts compute their probabilities at ``w``)."""

        def product(v: Array) -> Array:
            return self.parts.map_sum(part_hessp, w, v) + self._l2_mask * v

        return product

    def hessian(self, w: Array) -> Array:
        """Full Hessian of the binary objective, ``(d + 1, d + 1)``, summed over the parts."""
        if self.k != 1:
            raise ValueError("the full Hessian is only formed for the binary model")
        H = self.parts.map_sum(part_hessian, w)
        d = self.d
        if not self.fit_intercept:  # each part decoupled the intercept with a 1 on the diagonal: one is enough
            H[d, d] = 1.0
        H[np.arange(d), np.arange(d)] += self.l2
        return H

    def weight_moments(self) -> tuple[float, Array, Array]:
        s, q, sq = self.parts.map_sum(part_weight_moments)
        return float(s), q, sq

    def strided(self, step: int) -> LinearLoss:
        """The loss on every ``step``-th row of all partitions, brought here (weights renormalized): the same
        rows :meth:`LinearLoss.strided` takes of the rows in one array."""
        rows = self.parts.map_list(part_strided, step)
        X = np.concatenate([r[0] for r in rows])
        y = np.concatenate([r[1] for r in rows])
        w = np.concatenate([r[2] for r in rows])
        total = w.sum()
        return LinearLoss(X, y, w / total if total > 0 else w, self.mean, self.scale, self.n_classes, self.l2,
                          self.fit_intercept)
