"""Data drift: training feature statistics, out-of-range rows and the population stability index (PSI).

Pure numpy; nothing here knows about HTTP or Prometheus.

* :func:`feature_statistics` summarises the training split of a version (mean, std, min, max, deciles
  and the share of training rows in each decile bin); it is stored in the version's metadata.
* :class:`Reference` turns those stored statistics into the arrays the hot path compares against.
* :func:`out_of_range` counts rows with any feature below the training minimum or above the maximum.
* :class:`SlidingWindow` keeps the decile bin of every feature for the most recent ``size`` rows (a
  ring buffer of small ints, not the rows themselves); :func:`psi` compares its bin shares with the
  training ones.
* :class:`VersionDrift` is what a serving process keeps per model version: the reference, the window
  (binned at most once a second, so a request costs a queue append), and out-of-range totals.

PSI of one feature is ``sum over bins of (o - e) * ln(o / e)``, with ``e`` the share of training rows
and ``o`` the share of window rows in the bin, both floored at :data:`EPSILON` so empty bins stay finite.
The bins are the training deciles (10 bins, about 10% of the training rows each). Common reading:
below 0.1 no real change, 0.1-0.25 a moderate shift, above 0.25 a significant one.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..domain import MAX_REFERENCE_ROWS
from ..engine.logistic import column_stats

__all__ = [
    "EPSILON",
    "N_BINS",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "QUANTILE_LEVELS",
    "Reference",
    "SlidingWindow",
    "VersionDrift",
    "bin_indices",
    "feature_statistics",
    "finite_or_none",
    "out_of_range",
    "psi",
]

#: The quantiles stored per feature; they are also the inner edges of the PSI bins.
QUANTILE_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
N_BINS = len(QUANTILE_LEVELS) + 1
#: Floor of a bin's share in the PSI formula, so an empty bin gives a large but finite term.
EPSILON = 1e-4
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
_BLOCK_VALUES = 16384  # values per block of the out-of-range comparison (two blocks of 128 kB per version)


# -- training -------------------------------------------------------------------------------------------
def bin_indices(edges_t: NDArray[np.float64], X: NDArray[np.float64]) -> NDArray[np.uint8]:
    """The bin of every value: how many of its feature's inner edges are <= it (0..len(edges)).

    ``edges_t`` is (n_edges, n_features), one row per quantile level. So bin 0 is below the first
    decile and bin 9 at or above the last; where deciles tie, the bins between them stay empty, in
    training and in serving alike.
    """
    bins = np.zeros(X.shape, dtype=np.uint8)
    above = np.empty(X.shape, dtype=np.bool_)
    for edge in edges_t:  # a few vectorised comparisons: cheaper than one (m, d, 9) broadcast
        np.greater_equal(X, edge, out=above)
        bins += above.view(np.uint8)
    return bins


def bin_counts(bins: NDArray[np.uint8], n_bins: int = N_BINS) -> NDArray[np.int64]:
    """Rows per (feature, bin) as a (n_features, n_bins) table."""
    d = bins.shape[1]
    flat = bins.astype(np.intp) + np.arange(d, dtype=np.intp) * n_bins
    return np.bincount(flat.ravel(), minlength=d * n_bins).reshape(d, n_bins)


def feature_statistics(
    X: NDArray[np.float64], feature_names: Sequence[str], max_sample: int = MAX_REFERENCE_ROWS, seed: int = 0
) -> dict[str, Any]:
    """Per-feature mean, std, min, max, deciles and decile-bin shares of the training rows ``X``.

    Mean, std, min and max are of every row; the deciles and bin shares of a seeded sample of at most
    ``max_sample`` rows (``sample_rows``), so the stored reference stays small and cheap whatever the
    training size. The shape is ``{"n_rows", "sample_rows", "quantile_levels", "features": [{"name", "mean",
    "std", "min", "max", "quantiles", "bin_proportions"}, ...]}`` with features in column order (a list, so
    the order survives JSON with sorted keys).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != len(feature_names):
        raise ValueError("feature_statistics needs a non-empty (rows, features) matrix and one name per column")
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = column_stats(X)
    return reference_statistics(X.shape[0], mean, std, X.min(axis=0), X.max(axis=0), X, feature_names,
                                max_sample, seed)


def reference_statistics(
    n: int, mean: NDArray[np.float64], std: NDArray[np.float64], mins: NDArray[np.float64],
    maxs: NDArray[np.float64], rows: NDArray[np.float64], feature_names: Sequence[str],
    max_sample: int = MAX_REFERENCE_ROWS, seed: int = 0,
) -> dict[str, Any]:
    """:func:`feature_statistics` from the ``n`` training rows' mean, std, min and max and ``rows``, all of them
    or a sample (rows on a cluster): the deciles and bin shares are of at most ``max_sample`` of ``rows``."""
    m = rows.shape[0]
    sample = rows
    if m > max_sample:
        sample = rows[np.sort(np.random.default_rng(seed).choice(m, max_sample, replace=False))]
    quantiles = np.quantile(sample, QUANTILE_LEVELS, axis=0)  # (9, d)
    shares = bin_counts(bin_indices(quantiles, sample)) / sample.shape[0]
    return {
        "n_rows": int(n),
        "sample_rows": int(sample.shape[0]),
        "quantile_levels": list(QUANTILE_LEVELS),
        "features": [
            {
                "name": str(name),
                "mean": float(mean[j]),
                "std": float(std[j]),
                "min": float(mins[j]),
                "max": float(maxs[j]),
                "quantiles": quantiles[:, j].tolist(),
                "bin_proportions": [round(float(s), 6) for s in shares[j]],
            }
            for j, name in enumerate(feature_names)
        ],
    }


# -- reference --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reference:
    """Stored training statistics as arrays (column order), ready for the hot path."""

    names: tuple[str, ...]
    mins: NDArray[np.float64]
    maxs: NDArray[np.float64]
    edges_t: NDArray[np.float64]  # (n_edges, d)
    expected: NDArray[np.float64]  # (d, n_bins), rows sum to 1
    #: ``mins`` and ``maxs`` repeated over a block of rows: comparing equal shapes is about twice as fast
    #: as broadcasting a short row (see :func:`out_of_range`).
    mins_block: NDArray[np.float64] = field(init=False, repr=False)
    maxs_block: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = max(64, _BLOCK_VALUES // max(1, len(self.names)))
        object.__setattr__(self, "mins_block", np.tile(self.mins, (rows, 1)))
        object.__setattr__(self, "maxs_block", np.tile(self.maxs, (rows, 1)))

    @property
    def n_features(self) -> int:
        return len(self.names)

    @classmethod
    def from_statistics(cls, stats: Any, feature_names: Sequence[str] | None) -> Reference | None:
        """The reference of a version's stored ``feature_statistics``, or None when it has no usable ones
        (versions trained before they were recorded, or a shape this code does not know)."""
        if not isinstance(stats, dict):
            return None
        try:
            features = stats["features"]
            names = tuple(str(f["name"]) for f in features)
            if not names or (feature_names is not None and list(names) != list(feature_names)):
                return None
            mins = np.array([f["min"] for f in features], dtype=np.float64)
            maxs = np.array([f["max"] for f in features], dtype=np.float64)
            edges_t = np.array([f["quantiles"] for f in features], dtype=np.float64).T.copy()
            n_bins = edges_t.shape[0] + 1
            expected = np.array(
                [f.get("bin_proportions") or [1.0 / n_bins] * n_bins for f in features], dtype=np.float64
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        d = len(names)
        if (
            mins.shape != (d,)
            or maxs.shape != (d,)
            or edges_t.ndim != 2
            or edges_t.shape[1] != d
            or expected.shape != (d, n_bins)
            or not all(np.isfinite(a).all() for a in (mins, maxs, edges_t, expected))
            or (expected < 0).any()
            or not (expected.sum(axis=1) > 0).all()
        ):
            return None
        return cls(names, mins, maxs, edges_t, expected / expected.sum(axis=1, keepdims=True))


def out_of_range(ref: Reference, X: NDArray[np.float64]) -> tuple[int, NDArray[np.int64] | None]:
    """Rows of ``X`` with any feature outside the training [min, max], and out-of-range values per
    feature (None when there are none: the common case, which costs two comparisons and a count)."""
    lo, hi = ref.mins_block, ref.maxs_block
    step = lo.shape[0]
    if X.shape[0] <= step:
        bad = np.less(X, lo[: X.shape[0]])
        bad |= np.greater(X, hi[: X.shape[0]])
    else:
        bad = np.empty(X.shape, dtype=np.bool_)
        above = np.empty(lo.shape, dtype=np.bool_)
        for start in range(0, X.shape[0], step):
            part, k = X[start : start + step], min(step, X.shape[0] - start)
            np.less(part, lo[:k], out=bad[start : start + k])
            np.greater(part, hi[:k], out=above[:k])
            bad[start : start + k] |= above[:k]
    n_bad = np.count_nonzero(bad)
    if n_bad == 0:
        return 0, None
    m, d = bad.shape
    if m == 1:  # the common 1-row request
        return 1, bad[0].astype(np.int64)
    if n_bad <= m:  # a few: work from their positions (no BLAS, no reductions over every row)
        idx = np.flatnonzero(bad)  # ascending, so their rows are too
        row = idx // d
        return int(np.count_nonzero(np.diff(row))) + 1, np.bincount(idx - row * d, minlength=d)
    return int(np.count_nonzero(bad.any(axis=1))), np.count_nonzero(bad, axis=0).astype(np.int64)


def psi(expected: NDArray[np.float64], counts: NDArray[np.int64], eps: float = EPSILON) -> NDArray[np.float64]:
    """Population stability index per feature from training shares (d, bins) and window counts (d, bins).

    NaN for every feature when the window is empty.
    """
    total = counts.sum(axis=1, keepdims=True)
    if not total.size or total.max() == 0:
        return np.full(expected.shape[0], np.nan)
    o = np.maximum(counts / total, eps)
    e = np.maximum(expected, eps)
    return ((o - e) * np.log(o / e)).sum(axis=1)


# -- serving ------------------------------------------------------------------------------------------------
class SlidingWindow:
    """The decile bins of the most recent ``size`` rows: a ring buffer of (size, d) uint8."""

    def __init__(self, size: int, n_features: int) -> None:
        if size < 1:
            raise ValueError("a sliding window needs room for at least one row")
        self.size = size
        self.bins = np.zeros((size, n_features), dtype=np.uint8)
        self.rows = 0  # rows held, up to size
        self.total = 0  # rows ever added
        self._next = 0  # where the next row goes

    def add(self, bins: NDArray[np.uint8]) -> None:
        """Append rows of bin indices; the oldest ones drop out once the window is full."""
        m = bins.shape[0]
        self.total += m
        if m >= self.size:
            self.bins[:] = bins[-self.size :]
            self.rows, self._next = self.size, 0
            return
        end = self._next + m
        if end <= self.size:
            self.bins[self._next : end] = bins
        else:
            first = self.size - self._next
            self.bins[self._next :] = bins[:first]
            self.bins[: m - first] = bins[first:]
        self._next = end % self.size
        self.rows = min(self.size, self.rows + m)

    def counts(self, n_bins: int = N_BINS) -> NDArray[np.int64]:
        """Rows per (feature, bin) in the window; the order of rows does not matter, only which are held."""
        return bin_counts(self.bins[: self.rows], n_bins)

    def ordered(self) -> NDArray[np.uint8]:
        """The held rows, oldest first (for tests and inspection)."""
        if self.rows < self.size:
            return self.bins[: self.rows].copy()
        return np.concatenate([self.bins[self._next :], self.bins[: self._next]])


class VersionDrift:
    """What one serving process tracks for one model version.

    :meth:`observe` is the hot path: it counts out-of-range rows and queues the rows for the window
    (a reference to the request's matrix, trimmed to the window's size). The queue is binned into the
    window at most once per ``flush_seconds`` and before every read, so binning costs at most one
    window of rows per second whatever the traffic, rather than a few numpy calls per request.
    """

    def __init__(self, ref: Reference, window_rows: int, flush_seconds: float = 1.0) -> None:
        self.ref = ref
        self.window = SlidingWindow(window_rows, ref.n_features) if window_rows > 0 else None
        self.flush_seconds = flush_seconds
        self.rows_seen = 0
        self.out_of_range_rows = 0
        self.out_of_range_values = np.zeros(ref.n_features, dtype=np.int64)
        self._pending: deque[NDArray[np.float64]] = deque()
        self._pending_rows = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def observe(
        self, X: NDArray[np.float64], *, track: bool = True
    ) -> tuple[int, NDArray[np.int64] | None, bool]:
        """Out-of-range rows of ``X`` and values per feature; with ``track`` also count them and queue
        the rows for the window (``X`` must not change afterwards). The flag says whether the window was
        just brought up to date."""
        rows, per_feature = out_of_range(self.ref, X)
        if not track:
            return rows, per_feature, False
        flushed = False
        with self._lock:
            self.rows_seen += X.shape[0]
            if per_feature is not None:
                self.out_of_range_rows += rows
                self.out_of_range_values += per_feature
            window = self.window
            if window is not None:
                if X.shape[0] > window.size:  # only its last rows can count; let the rest be freed
                    X = X[-window.size :].copy()
                self._pending.append(X)
                self._pending_rows += X.shape[0]
                while self._pending_rows - self._pending[0].shape[0] >= window.size:
                    self._pending_rows -= self._pending.popleft().shape[0]  # overwritten anyway
                now = time.monotonic()
                if now - self._last_flush >= self.flush_seconds:
                    self._flush(now)
                    flushed = True
        return rows, per_feature, flushed

    def flush(self) -> None:
        """Bin every queued row into the window."""
        with self._lock:
            self._flush(time.monotonic())

    def _flush(self, now: float) -> None:
        self._last_flush = now
        if not self._pending or self.window is None:
            return
        X = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending.clear()
        self._pending_rows = 0
        self.window.add(bin_indices(self.ref.edges_t, X[-self.window.size :]))

    def psi(self) -> NDArray[np.float64]:
        """PSI per feature over the window (flushed first); NaN when the window is off or empty."""
        if self.window is None:
            return np.full(self.ref.n_features, np.nan)
        with self._lock:
            self._flush(time.monotonic())
            counts = self.window.counts(self.ref.expected.shape[1])
        return psi(self.ref.expected, counts)

    def window_rows(self) -> int:
        """Rows the window holds, queued ones included."""
        return 0 if self.window is None else min(self.window.size, self.window.rows + self._pending_rows)


def finite_or_none(values: NDArray[np.float64]) -> list[float | None]:
    """Floats for JSON: NaN (no data) becomes None."""
    return [None if math.isnan(v) else round(float(v), 6) for v in values]
