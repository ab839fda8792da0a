"""Training a version: check the set, fit, evaluate on a held-out split, store; now or as a background job.

:func:`train_and_store` is the one training use case (the routes, the CLI and the demo call it);
:class:`Trainer` runs it within the service's limits: a training slot, the wall-clock limit, cancellation
and progress for background jobs, and a count of every outcome.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..data.columns import Columns
from ..data.encoding import EncodedModel, TableEncoder, fit_encoder, raw_coefficients
from ..data.matrix import check_matrix_size
from ..data.scratch import ScratchMatrix
from ..data.sources import Files
from ..data.tables import Limits, read_table
from ..domain import (
    MAX_HISTORY_POINTS,
    MAX_VALIDATION_SAMPLE,
    MAX_VALIDATION_VALUES,
    EncodingParams,
    JobState,
    label_key,
    preview,
    utc_now,
)
from ..engine import LogisticRegression, evaluation, stratified_split
from ..engine.calibration import calibrate
from ..engine.logistic import DEFAULT_MAX_ITER, column_stats
from ..errors import InvalidInputError, JobCancelledError, LogregError, TimeLimitError
from ..observability.prometheus import Monitoring
from ..store.jobs import JobStore, SlotPool
from ..store.registry import ModelRegistry
from . import drift

_PROGRESS_EVERY = 0.5  # seconds between progress writes
_CANCEL_CHECK_EVERY = 0.2  # seconds between looks for a cancel flag
_SLOT_POLL_SECONDS = 0.25  # how often a queued job looks for a free training slot


def downsample(values: Sequence[float], limit: int = MAX_HISTORY_POINTS) -> list[float]:
    """At most ``limit`` evenly spaced points, always keeping the first and the last."""
    if len(values) <= limit:
        return [float(v) for v in values]
    idx = np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))
    return [float(values[i]) for i in idx]


def engine_params(params: dict[str, Any], classes: NDArray[Any]) -> dict[str, Any]:
    """Engine keyword arguments from API params: class_weight keys (strings in JSON) mapped to labels."""
    out = dict(params)
    cw = out.get("class_weight")
    if isinstance(cw, dict):
        by_key = {label_key(c): c.item() if isinstance(c, np.generic) else c for c in classes}
        unknown = sorted(set(cw) - set(by_key))
        if unknown:
            raise InvalidInputError(
                f"class_weight names unknown label(s) {preview(unknown)}; classes are {preview(list(by_key))}"
            )
        out["class_weight"] = {by_key[k]: w for k, w in cw.items()}
    return out


def coefficient_table(model: LogisticRegression, names: Sequence[str], encoder: TableEncoder | None = None
                      ) -> tuple[dict[str, Any], dict[str, float]]:
    """Coefficients by class and feature name, and intercepts by class (binary: the positive class); for an
    encoded table, by output column (``age``, ``plan=basic``) in the caller's units."""
    coef, intercept = model.coef_, model.intercept_
    if encoder is not None:
        coef, intercept = raw_coefficients(encoder, coef, intercept)
        names = encoder.output_names()
    rows = model.classes_[1:] if coef.shape[0] == 1 else model.classes_
    coefs = {
        label_key(c): dict(zip(names, map(float, row), strict=True))
        for c, row in zip(rows, coef, strict=True)
    }
    intercepts = {label_key(c): float(b) for c, b in zip(rows, intercept, strict=True)}
    return coefs, intercepts


#: Training rows the training metrics are computed on; a seeded sample beyond it (the metrics are a summary,
#: and probabilities for every row of a set trained out of core would not fit the memory budget).
MAX_TRAIN_METRIC_ROWS = 1_000_000
_METRIC_BLOCK = 65_536


def _train_metrics(model: Any, X: Any, y: NDArray[Any], classes: NDArray[Any], seed: int | None) -> dict[str, Any]:
    """The metrics of the fitted model on its training rows, or on a seeded sample of them (``sample_rows``)."""
    n = X.shape[0]
    if n <= MAX_TRAIN_METRIC_ROWS:
        return evaluation.classification_summary(y, model.predict_proba(X), classes)
    rows = np.sort(np.random.default_rng(seed).choice(n, MAX_TRAIN_METRIC_ROWS, replace=False))
    proba = np.empty((rows.size, len(classes)))
    for start in range(0, rows.size, _METRIC_BLOCK):  # a block of rows copied at a time (X may be on disk)
        proba[start : start + _METRIC_BLOCK] = model.predict_proba(X[rows[start : start + _METRIC_BLOCK]])
    summary = evaluation.classification_summary(y[rows], proba, classes)
    return {**summary, "sample_rows": MAX_TRAIN_METRIC_ROWS}


def check_iteration_budget(params: dict[str, Any], max_iter_limit: int | None) -> None:
    """Refuse a ``max_iter`` over the configured limit before any work starts."""
    if max_iter_limit is not None and (params.get("max_iter") or 0) > max_iter_limit:
        raise InvalidInputError(
            f"max_iter {params['max_iter']} is over the limit of {max_iter_limit}", {"limit": max_iter_limit}
        )


def split_rows_in_place(
    X: NDArray[np.float64], train_idx: NDArray[np.intp], val_idx: NDArray[np.intp], block: int = 16_384,
    held: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``X[train_idx]`` and ``X[val_idx]`` (both sorted) as two views of ``X``, its rows moved in place: the
    only copy is of the validation rows, into ``held`` when given (a scratch file, for a matrix on disk),
    a block at a time. Training rows only move towards the front, a block at a time, so no block overwrites
    rows a later one still has to read."""
    if val_idx.size == 0:
        return X, X[:0]
    if held is None:
        held = X[val_idx]
    else:
        for start in range(0, val_idx.size, block):
            held[start : start + block] = X[val_idx[start : start + block]]
    first = int(val_idx[0])  # the rows before it stay where they are
    for start in range(first, train_idx.size, block):
        source = train_idx[start : start + block]
        X[start : start + source.size] = X[source]
    n = train_idx.size
    for start in range(0, val_idx.size, block):
        X[n + start : n + start + block] = held[start : start + block]
    return X[:n], X[n:]


def read_training_table(
    files: Files, target: str, features: Sequence[str] | None, max_bytes: int | None, progress: TrainingProgress,
    encoding: EncodingParams | None = None, memory_bytes: int | None = None, scratch_dir: Path | None = None,
) -> TrainingSet:
    """Read a training table (the ``reading`` phase), telling ``progress`` of the rows and bytes as they come.
    A matrix over ``memory_bytes`` goes to a file in ``scratch_dir`` (close the set when done with it)."""
    progress.phase("reading", bytes_total=files.total_bytes, source=files.uri)
    limits = Limits(max_bytes=max_bytes, memory_bytes=memory_bytes, scratch_dir=scratch_dir)
    table = read_table(files, target=target, features=features, ignore_extra=features is not None,
                       limits=limits, progress=progress.read, declared=(encoding or EncodingParams()).declared())
    assert table.labels is not None
    return TrainingSet(table.X, table.labels, table.feature_names, table.columns, table.scratch)


@dataclass
class TrainingSet:
    """The rows to train on: the caller's columns as values (:mod:`service.data.columns`; plain numbers when
    ``columns`` is None), the labels and the column names."""

    X: NDArray[np.float64]
    y: NDArray[Any]
    names: list[str]
    columns: Columns | None = None
    scratch: ScratchMatrix | None = None  # X on disk (out of core)

    def close(self) -> None:
        """Remove the scratch file of a set read to disk."""
        if self.scratch is not None:
            self.scratch.close()


def needs_encoding(X: NDArray[np.float64], columns: Columns | None, encoding: EncodingParams | None) -> bool:
    """Whether a table is trained through an encoding: it has a non-numeric column or a missing cell, or the
    caller set the encoding; plain numbers train as they are."""
    if columns is None:
        return False
    if encoding is not None and encoding.given():
        return True
    if any(kind != "numeric" for kind in columns.kinds.values()):
        return True
    return bool(np.isnan(X).any())


def encoded_size(encoder: TableEncoder, rows: int) -> tuple[int, int]:
    """What the encoded training matrix takes, as (rows, float64-equivalent columns) for the size limit."""
    if not encoder.sparse:
        return rows, encoder.width
    per_row = len(encoder.numeric) + encoder.n_indicators + len(encoder.categorical)
    return rows, (per_row * 12 + 8 + 7) // 8


def train_and_store(
    registry: ModelRegistry,
    name: str,
    X: NDArray[np.float64],
    y: NDArray[Any],
    *,
    feature_names: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    validation_fraction: float = 0.2,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    max_train_bytes: int | None = None,
    max_iter_limit: int | None = None,
    progress: TrainingProgress | None = None,
    calibration: str = "none",
    columns: Columns | None = None,
    encoding: EncodingParams | None = None,
) -> dict[str, Any]:
    """Fit a model on ``X, y``, evaluate it on a held-out split, store it as a new version, and return
    the training report (also kept in the version's metadata). ``progress`` hears of each phase and each
    iteration, and may stop the fit by raising. With ``columns`` (how the caller's columns became ``X``), a
    table with categories or missing cells is trained through an encoding fitted on the training split and
    stored with the version (:mod:`service.data.encoding`).

    ``X`` is split in place (its rows reordered, training rows first), so training costs no copy of the
    matrix: the caller hands it over and does not use it afterwards.
    """
    start = time.perf_counter()
    progress = progress or TrainingProgress()
    params = dict(params or {})
    n, d = X.shape
    check_matrix_size(n, d, max_train_bytes)
    check_iteration_budget(params, max_iter_limit)
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(d)]
    if len(names) != d:
        raise InvalidInputError(f"{len(names)} feature names for {d} columns; give one name per column")
    if len(set(names)) != d:
        raise InvalidInputError(f"feature names repeat: {preview(sorted({v for v in names if names.count(v) > 1}))}")
    if y.shape[0] != n:
        raise InvalidInputError(f"{n} rows but {y.shape[0]} labels: give one label per row")
    encoded = needs_encoding(X, columns, encoding)
    with np.errstate(over="ignore", invalid="ignore"):
        if encoded:  # missing cells are NaN; categories are codes and cannot overflow
            assert columns is not None
            spread = np.array([np.nanstd(X[:, j]) if columns.kind(name) == "numeric" else 0.0
                               for j, name in enumerate(columns.names)])
        else:
            spread = column_stats(X)[1]  # in blocks of rows: no copy of X
    if not np.isfinite(spread).all():
        cols = [names[j] for j in np.flatnonzero(~np.isfinite(spread))]
        raise InvalidInputError(f"column(s) {preview(cols)} hold values too large to train on (they overflow)")
    classes, y_enc = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise InvalidInputError(
            f"the labels hold a single class ({preview(classes.tolist())}); training needs at least 2 classes"
        )
    if calibration != "none" and (classes.size != 2 or validation_fraction <= 0):
        raise InvalidInputError(
            f"calibration {calibration!r} needs a binary model (this one has {classes.size} classes) and a "
            f"validation split to fit on (validation_fraction > 0, got {validation_fraction})",
            {"field": "calibration"},
        )
    seed = params.get("random_state")
    if validation_fraction > 0:
        train_idx, val_idx = stratified_split(y_enc, validation_fraction, np.random.default_rng(seed))
    else:
        train_idx, val_idx = np.arange(n), np.arange(0)
    if np.unique(y_enc[train_idx]).size < 2:
        raise InvalidInputError("the training split holds a single class; send more rows of each class")
    encoder = None
    if encoded:
        assert columns is not None
        encoder = fit_encoder(X, columns, encoding or EncodingParams(), bool(params.get("standardize", True)),
                              np.sort(train_idx))
        check_matrix_size(*encoded_size(encoder, train_idx.size), max_train_bytes, label_bytes=0)
    with contextlib.ExitStack() as scratch:
        held = None
        if isinstance(X, np.memmap) and val_idx.size:  # on disk: the validation rows pass through a scratch file
            spare = scratch.enter_context(ScratchMatrix(Path(X.filename).parent, d))
            held = spare.resize(val_idx.size)
        X_train, X_val = split_rows_in_place(X, train_idx, val_idx, held=held)
    y_train, y_val = y[train_idx], y[val_idx]
    fit_params = engine_params(params, classes)
    if encoder is not None:  # the encoding standardizes the numbers and leaves the one-hot columns as they are
        fit_params["standardize"] = False
    estimator = LogisticRegression(**fit_params)
    progress.phase("fitting", max_iter=params.get("max_iter") or DEFAULT_MAX_ITER[params.get("solver", "lbfgs")])
    fit_X = X_train if encoder is None else encoder.transform(X_train)
    val_X = X_val if encoder is None else encoder.transform(X_val)
    try:
        estimator.fit(fit_X, y_train, callback=progress)
    except (ValueError, FloatingPointError) as exc:
        raise InvalidInputError(f"training failed: {exc}") from None
    return store_version(
        registry, name, estimator, names=names, n_samples=n, fit_X=fit_X, y_train=y_train, val_X=val_X, y_val=y_val,
        val_rows=val_idx, statistics=lambda: drift.feature_statistics(
            X_train if encoder is None else encoder.drift_view(X_train), names, seed=seed or 0),
        encoder=encoder, params=params, validation_fraction=validation_fraction, calibration=calibration,
        description=description, tags=tags, progress=progress, start=start)


def store_version(
    registry: ModelRegistry,
    name: str,
    estimator: LogisticRegression,
    *,
    names: list[str],
    n_samples: int,
    fit_X: Any,
    y_train: NDArray[Any],
    val_X: Any,
    y_val: NDArray[Any],
    val_rows: NDArray[np.int64],
    statistics: Callable[[], dict[str, Any]],
    encoder: TableEncoder | None,
    params: dict[str, Any],
    validation_fraction: float,
    calibration: str,
    description: str | None,
    tags: dict[str, str] | None,
    progress: TrainingProgress,
    start: float,
    n_train: int | None = None,
    n_validation: int | None = None,
    trained_on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The end of every training: calibrate (on the validation rows), evaluate, describe and store a fitted
    ``estimator``; return the report. ``fit_X, y_train`` and ``val_X, y_val`` are the rows the metrics are
    computed on, ``val_rows`` the validation rows' positions in the table as sent: every row of each split, or
    a sample (rows on a cluster; ``n_train`` and ``n_validation`` then say how many rows the splits have).
    ``statistics`` gives the drift reference (:func:`.drift.feature_statistics`); ``trained_on`` says where
    the fit ran."""
    seed = params.get("random_state")
    n_train = y_train.shape[0] if n_train is None else n_train
    n_validation = y_val.shape[0] if n_validation is None else n_validation
    progress.phase("evaluating")
    messages = list(estimator.fit_warnings_)
    calibration_report = None
    served: Any = estimator
    if calibration != "none":  # Platt or isotonic on the validation split; the served model is the wrapper
        served, calibration_report = calibrate(estimator, val_X, y_val, calibration, seed)
        messages += calibration_report["warnings"]
    model = served if encoder is None else EncodedModel(encoder, served)
    train_metrics = _train_metrics(served, fit_X, y_train, model.classes_, seed)
    progress.check()
    validation_metrics = None
    validation_sample = None
    if y_val.size:
        proba_val = served.predict_proba(val_X)
        validation_metrics = evaluation.classification_summary(y_val, proba_val, model.classes_)
        progress.check()
        keep = np.arange(y_val.size)
        most = max(100, min(MAX_VALIDATION_SAMPLE, MAX_VALIDATION_VALUES // len(model.classes_)))
        if keep.size > most:  # a seeded sample, fewer rows for many classes: rows x classes stays bounded
            keep = np.sort(np.random.default_rng(seed).choice(keep.size, most, replace=False))
        validation_sample = {
            "rows": val_rows[keep].tolist(),  # positions in the training set as sent
            "labels": y_val[keep].tolist(),
            "probabilities": proba_val[keep].tolist(),
        }
    reference = statistics()
    feature_means = np.array([f["mean"] for f in reference["features"]])
    feature_stds = np.array([f["std"] for f in reference["features"]])
    coefficients, intercepts = coefficient_table(estimator, names, encoder)
    report = {
        "model": name,
        "classes": model.classes_.tolist(),
        "feature_names": names,
        "n_samples": int(n_samples),
        "n_train": int(n_train),
        "n_validation": int(n_validation),
        "converged": bool(estimator.converged_),
        "n_iter": int(estimator.n_iter_),
        "warnings": messages,
        "train_metrics": train_metrics,
        "validation_metrics": validation_metrics,
        "loss_history": downsample(estimator.loss_history_),
    }
    if calibration_report is not None:
        report["calibration"] = calibration_report
    if trained_on is not None:
        report["trained_on"] = trained_on
    metadata = {
        **report,
        "params": params,
        "validation_fraction": validation_fraction,
        "description": description,
        "tags": tags or {},
        "coefficients": coefficients,
        "intercepts": intercepts,
        "feature_means": feature_means.tolist(),
        "feature_stds": feature_stds.tolist(),  # finite: checked before the fit
        "feature_statistics": reference,  # drift monitoring
        "alpha": float(estimator.alpha_),
        "standardization": {"mean": estimator.mean_.tolist(), "scale": estimator.scale_.tolist()},
        "validation_sample": validation_sample,
    }
    if encoder is not None:
        metadata["encoding"] = {"columns": encoder.describe(), "params": encoder.params,
                                "output_columns": encoder.width, "sparse": encoder.sparse}
    metadata["duration_seconds"] = round(time.perf_counter() - start, 6)
    progress.phase("storing")
    stored = registry.save(name, model, metadata, check=progress.check)
    return {**report, "version": stored.version, "duration_seconds": metadata["duration_seconds"]}


class TrainingProgress:
    """What a training tells as it goes, and where it can be stopped: each phase (``reading``, ``fitting``,
    ``evaluating``, ``storing``), the rows and bytes read, and each iteration of the fit (the engine's
    callback). This one tells nobody; :class:`JobControl` and the CLI's progress bar listen."""

    def phase(self, name: str, **info: Any) -> None:
        """A phase begins; ``info`` says what is known of it (``bytes_total``, ``max_iter``)."""

    def read(self, rows: int, bytes_read: int) -> None:
        """Rows and bytes read so far, while reading."""

    def check(self) -> None:
        """Between steps of a phase: raising stops the training (nothing is stored)."""

    def __call__(self, iteration: int, loss: float) -> None:
        """An iteration (or epoch) of the fit ended at ``loss``; raising stops the fit."""


class JobControl(TrainingProgress):
    """Stops a training on time-out or cancel, and keeps a job's progress on disk: the phase, rows and bytes
    read of the total, the iteration of ``max_iter`` and the loss, and an estimate of the time left."""

    def __init__(self, store: JobStore | None, job_id: str | None, deadline: float) -> None:
        self.store = store
        self.job_id = job_id
        self.deadline = deadline
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._progress: dict[str, Any] = {}
        self._phase_started = time.monotonic()

    def check(self) -> None:
        self._check_stop(time.monotonic())

    def phase(self, name: str, **info: Any) -> None:
        self._check_stop(time.monotonic())
        self._phase_started = time.monotonic()
        self._progress = {**self._progress, "phase": name, "eta_seconds": None, **info}
        self._write(force=True)

    def read(self, rows: int, bytes_read: int) -> None:
        now = time.monotonic()
        self._check_stop(now)
        total = self._progress.get("bytes_total") or 0
        self._progress.update(rows_read=rows, bytes_read=bytes_read,
                              eta_seconds=_eta(now - self._phase_started, bytes_read, total))
        self._write()

    def __call__(self, iteration: int, loss: float) -> None:
        now = time.monotonic()
        self._check_stop(now)
        # The fit stops at max_iter at the latest, so this is an upper bound: most stop well before.
        self._progress.update(iteration=iteration, loss=float(loss),
                              eta_seconds=_eta(now - self._phase_started, iteration, self._progress.get("max_iter")))
        self._write()

    def _check_stop(self, now: float) -> None:
        if now > self.deadline:
            raise TimeLimitError(
                f"training stopped in its {self._progress.get('phase', 'first')} phase: it went over the time limit "
                "(LOGREG_TRAIN_TIMEOUT_SECONDS); nothing was stored"
            )
        if self.store is None or self.job_id is None:
            return
        if now - self._last_cancel_check >= _CANCEL_CHECK_EVERY:
            self._last_cancel_check = now
            if self.store.cancel_requested(self.job_id):
                raise JobCancelledError("the job was cancelled; nothing was stored")

    def _write(self, force: bool = False) -> None:
        if self.store is None or self.job_id is None:
            return
        now = time.monotonic()
        if force or now - self._last_write >= _PROGRESS_EVERY:
            self._last_write = now
            self.store.update(self.job_id, progress=dict(self._progress))


def _eta(elapsed: float, done: float, total: float | None) -> float | None:
    """Seconds left at the rate so far, or None before there is a rate."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return round(max(0.0, elapsed / done * (total - done)), 1)


Work = Callable[[JobControl], dict[str, Any]]


class Trainer:
    """Runs trainings: now (holding a slot, within the time limit) or as background jobs, and counts them."""

    def __init__(self, jobs: JobStore, slots: SlotPool, monitoring: Monitoring, timeout: float) -> None:
        self.jobs = jobs
        self.slots = slots
        self.monitoring = monitoring
        self.timeout = timeout

    def run_now(self, model: str, work: Work, job_id: str | None = None) -> dict[str, Any]:
        """Train in this thread, holding a slot (BusyError when none is free). With ``job_id`` (a synchronous
        training under an Idempotency-Key) the outcome is recorded in that job, for a retry to find."""
        try:
            with self.slots.acquire(), self.jobs.runner(job_id) if job_id else contextlib.nullcontext():
                report = self._observed(model, lambda: work(JobControl(None, None, time.monotonic() + self.timeout)))
        except BaseException as exc:
            if job_id is not None:
                error = exc if isinstance(exc, LogregError) else None
                self.jobs.finish(job_id, JobState.FAILED, error=error, error_fields=None if error else {
                    "type": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
            raise
        if job_id is not None:
            self.jobs.finish(job_id, JobState.SUCCEEDED, result=report)
        return report

    def start_job(self, job_id: str, model: str, work: Work) -> None:
        """Train in a background thread: the job waits for a slot, then records its outcome."""
        thread = threading.Thread(target=self._run_job, args=(job_id, model, work), name=f"job-{job_id}", daemon=True)
        thread.start()

    def _run_job(self, job_id: str, model: str, work: Work) -> None:
        with self.jobs.runner(job_id):
            slot = None
            while slot is None:
                if self.jobs.cancel_requested(job_id):
                    self.jobs.finish(job_id, JobState.CANCELLED,
                                     error_fields={"type": "cancelled", "message": "cancelled before it started"})
                    return
                slot = self.slots.try_acquire()
                if slot is None:
                    time.sleep(_SLOT_POLL_SECONDS)
            try:
                self.jobs.update(job_id, state=JobState.RUNNING, started_at=utc_now())
                control = JobControl(self.jobs, job_id, time.monotonic() + self.timeout)
                try:
                    result = self._observed(model, lambda: work(control))
                except JobCancelledError as exc:
                    self.jobs.finish(job_id, JobState.CANCELLED, error=exc)
                except LogregError as exc:
                    self.jobs.finish(job_id, JobState.FAILED, error=exc)
                except Exception as exc:  # a job must end in a state, whatever went wrong
                    self.jobs.finish(job_id, JobState.FAILED, error_fields={
                        "type": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
                else:
                    self.jobs.finish(job_id, JobState.SUCCEEDED, result=result)
            finally:
                os.close(slot)

    def _observed(self, model: str, fit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            report = fit()
        except LogregError as exc:
            self.monitoring.trainings.labels(model, type(exc).__name__).inc()
            raise
        self.monitoring.trainings.labels(model, "succeeded").inc()
        self.monitoring.training_seconds.observe(time.perf_counter() - start)
        return report
