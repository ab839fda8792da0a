"""Drift monitoring in a serving process: out-of-range rows, PSI per feature, and their Prometheus series.

Each worker process keeps, per model version it serves, the version's training statistics as arrays
and a sliding window of the decile bins of its most recent rows (:mod:`service.services.drift`). Scoring
records through :meth:`service.services.scoring.Scorer.observe`; prediction traffic (not evaluation)
feeds the window and the counters.

Prometheus, in multi-process mode: the out-of-range counters add up over workers; the PSI gauge is
per worker window, and a scrape shows the highest PSI among live workers (``livemax``). A worker
publishes its PSI once its window holds :data:`MIN_PSI_ROWS` rows (fewer give noisy values), then at
most once a second while it serves traffic, and whenever it answers a scrape itself.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray
from prometheus_client import Counter, Gauge

from ..domain import VersionMetadata
from ..errors import LogregError, NotFoundError
from ..observability.prometheus import Monitoring, multiprocess_dir
from ..store.cache import LoadedModel
from . import drift

#: Per-feature series (PSI, out-of-range values) are published for models with at most this many features.
MAX_FEATURE_SERIES = 200
#: Rows a worker's window needs before it publishes PSI to Prometheus (or the window size, if smaller).
MIN_PSI_ROWS = 100
#: Model versions tracked per worker; the least recently used one is dropped beyond it.
MAX_VERSIONS = 64


@dataclass(slots=True)
class _Tracked:
    name: str
    version: str
    state: drift.VersionDrift
    rows_counter: Any
    value_counters: dict[int, Any] = field(default_factory=dict)
    published_at: float = float("-inf")
    unknown_categories: dict[str, int] = field(default_factory=dict)  # cells, per categorical column


class DriftTracker:
    """Per-process drift state of every served version, and its Prometheus series."""

    def __init__(self, monitoring: Monitoring, window_rows: int, publish_seconds: float = 1.0,
                 full_metadata: Callable[[str, int], VersionMetadata] | None = None) -> None:
        self.window_rows = window_rows
        #: A version's metadata with its side-file statistics (the registry's), for versions that keep them there.
        self.full_metadata = full_metadata
        self.publish_seconds = publish_seconds
        self.min_psi_rows = min(MIN_PSI_ROWS, window_rows) if window_rows > 0 else 0
        r = monitoring.registry
        self.out_of_range_rows = Counter(
            "logreg_out_of_range_rows_total",
            "Predicted rows with at least one feature outside the training range [min, max].",
            ["model", "version"], registry=r,
        )
        self.out_of_range_values = Counter(
            "logreg_out_of_range_values_total",
            "Feature values outside the training range [min, max], per feature.",
            ["model", "version", "feature"], registry=r,
        )
        self.psi = Gauge(
            "logreg_feature_psi",
            "Population stability index of a feature over the worker's window of recent predicted rows "
            "(training deciles as bins); the highest among live workers.",
            ["model", "version", "feature"], registry=r, multiprocess_mode="livemax",
        )
        self._tracked: OrderedDict[tuple[str, int], _Tracked | None] = OrderedDict()
        self._lock = threading.Lock()

    def tracked(self, name: str, version: int, metadata: VersionMetadata) -> _Tracked | None:
        """The drift state of a version (made from its metadata on first use); None without statistics."""
        key = (name, version)
        try:
            entry = self._tracked[key]
        except KeyError:
            stats = metadata.feature_statistics
            if isinstance(stats, dict) and "features" not in stats and self.full_metadata is not None:
                with contextlib.suppress(LogregError):  # no statistics to compare with: no drift tracking
                    metadata = self.full_metadata(name, version)
            ref = drift.Reference.from_statistics(metadata.feature_statistics, metadata.feature_names)
            entry = None
            if ref is not None:
                v = str(version)
                entry = _Tracked(name, v, drift.VersionDrift(ref, self.window_rows),
                                 self.out_of_range_rows.labels(name, v))
            with self._lock:
                entry = self._tracked.setdefault(key, entry)
                while len(self._tracked) > MAX_VERSIONS:
                    _, dropped = self._tracked.popitem(last=False)
                    self._forget(dropped)
            return entry
        try:
            self._tracked.move_to_end(key)  # least recently used first
        except KeyError:  # dropped meanwhile by another thread: still usable for this request
            return entry
        return entry

    def observe(self, loaded: LoadedModel, X: NDArray[Any], serving: bool,
                unknown: dict[str, int] | None = None) -> int | None:
        """Out-of-range rows of ``X`` for ``loaded``, or None when unknown (no statistics, wrong width).
        Prediction traffic (``serving``) also counts them and feeds the PSI window, and adds ``unknown``
        (cells per categorical column with a category training never saw) to the version's totals."""
        entry = self.tracked(loaded.name, loaded.version, loaded.metadata)
        if entry is None or X.ndim != 2 or X.shape[1] != entry.state.ref.n_features:
            return None
        if serving and unknown:
            with self._lock:
                for column, count in unknown.items():
                    entry.unknown_categories[column] = entry.unknown_categories.get(column, 0) + count
        rows, per_feature, flushed = entry.state.observe(X, track=serving)
        if serving and per_feature is not None:
            entry.rows_counter.inc(rows)
            if entry.state.ref.n_features <= MAX_FEATURE_SERIES:
                for j in per_feature.nonzero()[0].tolist():
                    child = entry.value_counters.get(j)
                    if child is None:
                        child = entry.value_counters[j] = self.out_of_range_values.labels(
                            entry.name, entry.version, entry.state.ref.names[j])
                    child.inc(int(per_feature[j]))
        if flushed and time.monotonic() - entry.published_at >= self.publish_seconds:
            self._publish(entry)
        return rows

    def publish_all(self) -> None:
        """Bring every tracked version's PSI gauges up to date (before a scrape)."""
        for entry in list(self._tracked.values()):
            if entry is not None:
                self._publish(entry)

    def _publish(self, entry: _Tracked) -> None:
        state = entry.state
        if state.window is None or state.ref.n_features > MAX_FEATURE_SERIES:
            return
        state.flush()
        if state.window.rows < self.min_psi_rows:
            return  # not yet: try again at the next flush
        entry.published_at = time.monotonic()
        values = state.psi()
        for name, value in zip(state.ref.names, values.tolist(), strict=True):
            self.psi.labels(entry.name, entry.version, name).set(value)

    def _forget(self, entry: _Tracked | None) -> None:
        """Drop a version's series from this process (single-process mode; multi-process files stay)."""
        if entry is None or multiprocess_dir() is not None:
            return
        for family in (self.out_of_range_rows, self.out_of_range_values, self.psi):
            family.remove_by_labels({"model": entry.name, "version": entry.version})

    def is_tracked(self, name: str, version: int) -> bool:
        """Whether this worker has the drift state of a version already (reading it may take a file read)."""
        return (name, version) in self._tracked

    def report(self, name: str, version: int, metadata: VersionMetadata) -> dict[str, Any]:
        """The drift of a version as this worker sees it, for people (``metadata`` with its statistics)."""
        entry = self.tracked(name, version, metadata)
        if entry is None:
            raise NotFoundError(
                f"model {name!r} version {version} has no training feature statistics (it was trained before "
                "they were recorded); train a new version to monitor its drift",
                {"name": name, "version": version},
            )
        state, names = entry.state, entry.state.ref.names
        values = drift.finite_or_none(state.psi())
        report: dict[str, Any] = {
            "model": name,
            "version": version,
            "scope": "worker",
            "pid": os.getpid(),
            "window_size": self.window_rows,
            "window_rows": state.window_rows(),
            "rows_seen": state.rows_seen,
            "psi": dict(zip(names, values, strict=True)),
            "psi_thresholds": {"moderate": drift.PSI_MODERATE, "significant": drift.PSI_SIGNIFICANT},
            "drifted_features": [n for n, v in zip(names, values, strict=True)
                                 if v is not None and v >= drift.PSI_SIGNIFICANT],
            "out_of_range": {
                "rows": state.out_of_range_rows,
                "values": {n: int(c) for n, c in zip(names, state.out_of_range_values.tolist(), strict=True)},
            },
            "training": metadata.feature_statistics,
        }
        if metadata.encoding is not None:  # a mixed-type table: unseen categories served, per column
            report["unknown_categories"] = dict(entry.unknown_categories)
        return report
