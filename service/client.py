"""Typed clients of logreg-service on httpx: :class:`LogregClient` (blocking) and :class:`AsyncLogregClient`.

It imports nothing from the service, so it can be copied into another project (httpx is its only
dependency); our end-to-end tests use it, so it tracks the server.

``LogregClient("http://127.0.0.1:8000").predict("m", features=...)``; the async client has the same
methods, to be awaited. Every method has one return type: the answers are typed dicts (below) that
mirror the server's response models, checked against them in the tests. ``train``, ``train_csv``
and ``train_uri`` return the training report even when the server runs the training as a background
job (they poll ``GET /jobs/{id}`` until it ends, at most ``wait_timeout`` seconds); the ``*_background``
methods return the job at once.

Errors, one tree::

    LogregAPIError               every error of this client: status_code (0 without an answer), type, message,
    │                            details, retry_after, and job (when a background training failed)
    ├── Unauthorized             401, 403: an API key is needed, or the one sent is not valid
    ├── NotFound                 404: a model, version, alias or job that does not exist
    ├── Conflict                 409: contradicts the registry's state; a job already ended or was cancelled
    ├── InvalidInput             400, 422: content the server cannot use (the message says what and where)
    ├── TooLarge                 413: over the server's limits
    ├── RateLimited              429, after the retries
    ├── ServiceUnavailable       502, 503, 504, after the retries
    ├── ConnectionFailed         no answer: refused, reset or timed out (it is also an httpx.TransportError)
    └── JobTimeout               a background job still running after wait_timeout (also a TimeoutError)

Retries (:class:`Retry`): an answer of 429, 502, 503 or 504, or a broken connection, is retried a bounded
number of times with exponential backoff (or after the answer's ``Retry-After``), for the calls that are
safe to repeat: GET, PUT and DELETE, the POSTs that only compute (scoring, metrics, choosing a threshold)
and a training POST that carries an ``Idempotency-Key`` (the server then replays the first answer). A
connection that could not be opened is retried for every call, since nothing was sent.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import random
import time
from collections.abc import Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypedDict, TypeVar

import anyio
import httpx

__all__ = [
    "AliasChange", "AsyncLogregClient", "CancelAnswer", "Conflict", "ConnectionFailed", "Drift", "Evaluation",
    "EvaluationReport", "Health", "InvalidInput", "Job", "JobTimeout", "LogregAPIError", "LogregClient",
    "ModelCard", "ModelSummary", "NotFound", "Predictions", "Probabilities", "RateLimited", "Ready", "Retry",
    "ServiceUnavailable", "StoredMetrics", "ThresholdChange", "ThresholdChoice", "TooLarge", "TrainReport",
    "Unauthorized", "VersionSummary",
]

Label = int | bool | str
Rows = Sequence[Sequence[Any]]
Records = Sequence[Mapping[str, Any]]


# -- answers ------------------------------------------------------------------------------------------------
class ConfusionMatrix(TypedDict):
    labels: list[Label]
    matrix: list[list[int]]


class Evaluation(TypedDict, total=False):
    """Metrics of a version on labelled rows (training, validation or posted rows)."""

    n_samples: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    log_loss: float
    brier: float
    roc_auc: float | None
    confusion_matrix: ConfusionMatrix
    support: dict[str, int]
    per_class: dict[str, dict[str, float]]
    macro: dict[str, float]
    weighted: dict[str, float]
    threshold: float | None
    positive_class: Label
    threshold_sweep: dict[str, Any]
    best_threshold: dict[str, float]
    calibration: dict[str, Any]


class EvaluationReport(Evaluation):
    """``POST /metrics``: the metrics, and the version that was evaluated."""

    model: str
    version: int


class _TrainReport(TypedDict):

    model: str
    version: int
    classes: list[Label]
    feature_names: list[str]
    n_samples: int
    n_train: int
    n_validation: int
    converged: bool
    n_iter: int
    warnings: list[str]
    train_metrics: Evaluation
    validation_metrics: Evaluation | None
    loss_history: list[float]
    duration_seconds: float


class TrainReport(_TrainReport, total=False):
    """What a training run produced (the server's ``TrainResponse``)."""

    calibration: dict[str, Any] | None
    trained_on: dict[str, Any] | None  # a training on a Dask cluster: where


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Job(TypedDict):
    """A background training (the server's job record): state, progress, and its report or error."""

    id: str
    model: str
    state: JobState
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: dict[str, Any] | None
    result: TrainReport | None
    error: dict[str, Any] | None
    pid: int | None
    request_digest: str | None


class CancelAnswer(Job):
    cancel_requested: bool


class _Probabilities(TypedDict):
    model: str
    version: int
    classes: list[Label]
    probabilities: list[list[float]]


class Probabilities(_Probabilities, total=False):
    """Probabilities per class, columns in the order of ``classes``; ``explanations`` when asked for."""

    explanations: list[dict[str, Any]] | None


class _Predictions(TypedDict):
    model: str
    version: int
    predictions: list[Label]
    threshold: float | None


class Predictions(_Predictions, total=False):
    """Class labels and the threshold used (None for multiclass); ``explanations`` when asked for."""

    explanations: list[dict[str, Any]] | None


class StoredMetrics(TypedDict):
    """``GET /metrics``: what was measured when the version was trained."""

    model: str
    version: int
    validation_metrics: Evaluation | None
    train_metrics: Evaluation | None
    n_validation: int | None
    calibration: dict[str, Any] | None
    calibration_step: dict[str, Any] | None


class _ModelSummary(TypedDict):
    name: str
    latest_version: int
    versions: list[int]
    aliases: dict[str, int]


class ModelSummary(_ModelSummary, total=False):
    integrity_error: str


class _VersionSummary(TypedDict):
    version: int


class VersionSummary(_VersionSummary, total=False):
    """A version in a model's listing; one whose record cannot be read has ``integrity_error`` instead."""

    created_at: str
    converged: bool
    n_samples: int
    aliases: list[str]
    threshold: float | None
    description: str | None
    tags: dict[str, str]
    integrity_error: str


class ModelCard(TypedDict, total=False):
    """A version's stored record without its validation sample; a store written by an older release may lack
    some fields."""

    name: str
    version: int
    created_at: str
    sha256: str
    artefact: str
    checksum: str | None
    signature: str | None
    classes: list[Label]
    feature_names: list[str]
    model: str | None
    n_samples: int | None
    n_train: int | None
    n_validation: int | None
    converged: bool | None
    n_iter: int | None
    warnings: list[str]
    train_metrics: Evaluation | None
    validation_metrics: Evaluation | None
    loss_history: list[float]
    calibration: dict[str, Any] | None
    duration_seconds: float | None
    params: dict[str, Any]
    validation_fraction: float | None
    description: str | None
    tags: dict[str, str]
    coefficients: dict[str, dict[str, float]] | None
    intercepts: dict[str, float] | None
    feature_means: list[float] | None
    feature_stds: list[float] | None
    feature_statistics: dict[str, Any] | None
    alpha: float | None
    standardization: dict[str, list[float]] | None
    encoding: dict[str, Any] | None
    trained_on: dict[str, Any] | None
    validation_sample_rows: int | None
    aliases: list[str]
    threshold: float | None


class AliasChange(TypedDict):
    name: str
    alias: str
    version: int
    previous_version: int | None


class ThresholdChange(TypedDict):
    name: str
    version: int
    threshold: float | None


class _ThresholdChoice(TypedDict):
    model: str
    version: int
    positive_class: Label
    source: Literal["validation_sample", "posted"]
    current_threshold: float | None
    objective: str
    threshold: float
    value: float
    n_samples: int
    n_positive: int
    n_candidates: int
    metrics: dict[str, Any]
    curve: dict[str, list[float]]
    stored: bool


class ThresholdChoice(_ThresholdChoice, total=False):
    """``threshold:optimize``: the threshold, the objective's value, the metrics there and the curve."""

    sampled: bool


class _Drift(TypedDict):
    model: str
    version: int
    scope: str
    pid: int
    window_size: int
    window_rows: int
    rows_seen: int
    psi: dict[str, float | None]
    psi_thresholds: dict[str, float]
    drifted_features: list[str]
    out_of_range: dict[str, Any]
    training: dict[str, Any] | None


class Drift(_Drift, total=False):
    """A version's drift as the answering worker sees it."""

    unknown_categories: dict[str, Any]


class Health(TypedDict):
    status: str
    pid: int


class Ready(TypedDict):
    status: str
    model_store: str


# -- errors -------------------------------------------------------------------------------------------------
class LogregAPIError(Exception):
    """The base of every error of this client: the server's ``status_code`` (0 when it did not answer), error
    ``type``, ``message`` and ``details``; ``retry_after`` (seconds) when the server said when to retry; ``job``
    when a background training ended without a report."""

    def __init__(self, status_code: int, type: str, message: str, details: Any = None, *,
                 retry_after: float | None = None, job: Job | None = None) -> None:
        super().__init__(f"{status_code} {type}: {message}" if status_code else f"{type}: {message}")
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.job = job


class Unauthorized(LogregAPIError):
    """401 or 403: the route needs an API key, or the key is not one of the server's."""


class NotFound(LogregAPIError):
    """404: a model, version, alias or job that does not exist."""


class Conflict(LogregAPIError):
    """409: the request contradicts the registry's state, or the job already ended or was cancelled."""


class InvalidInput(LogregAPIError):
    """400 or 422: the request's content cannot be used; the message says what and where."""


class TooLarge(LogregAPIError):
    """413: the body or batch is over the server's limits."""


class RateLimited(LogregAPIError):
    """429: too many requests or trainings; still so after the retries."""


class ServiceUnavailable(LogregAPIError):
    """502, 503, 504: the server (or a proxy before it) cannot serve now; still so after the retries."""


class ConnectionFailed(LogregAPIError, httpx.TransportError):
    """No answer: the connection was refused, broken or timed out. It is also an ``httpx.TransportError``, which
    code written for the first version of this client catches."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        LogregAPIError.__init__(self, 0, "connection_failed", message)
        self._request = request


class JobTimeout(LogregAPIError, TimeoutError):
    """A background job had not ended after the time the caller was willing to wait (it goes on running)."""


#: Error class of each status; other statuses raise the base class.
_STATUS_CLASS: dict[int, type[LogregAPIError]] = {
    400: InvalidInput, 401: Unauthorized, 403: Unauthorized, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: InvalidInput, 429: RateLimited, 502: ServiceUnavailable, 503: ServiceUnavailable, 504: ServiceUnavailable,
}
#: The status a failed job's error ``type`` would have had as an answer (service.api.errors.ERROR_STATUS).
_KIND_STATUS = {
    "unauthorized": 401, "forbidden": 403, "data_access_denied": 403, "not_found": 404, "cancelled": 409,
    "conflict": 409, "integrity_error": 409, "limit_exceeded": 413, "invalid_input": 422, "validation_error": 422,
    "time_limit_exceeded": 422, "too_many_trainings": 429, "registry_unavailable": 503,
    "source_unavailable": 503, "interrupted": 503,
}


def error_for(status: int, type: str, message: str, details: Any = None, **extra: Any) -> LogregAPIError:
    """The exception of the tree for an error answer of ``status``."""
    return _STATUS_CLASS.get(status, LogregAPIError)(status, type, message, details, **extra)


def _error_of_response(response: httpx.Response) -> LogregAPIError:
    retry_after = _retry_after(response)
    try:
        err = response.json()["error"]
        return error_for(response.status_code, err.get("type", "error"), err.get("message", ""), err.get("details"),
                         retry_after=retry_after)
    except (ValueError, KeyError, TypeError, AttributeError):  # not the service's error shape (a proxy's page)
        text = " ".join(response.text.split())[:500] or response.reason_phrase
        return error_for(response.status_code, "http_error", text, retry_after=retry_after)


def job_error(job: Job) -> LogregAPIError:
    """The exception a job that ended without a report (failed or cancelled) stands for."""
    err = job.get("error") or {}
    kind = err.get("type") or ("cancelled" if job["state"] == "cancelled" else "error")
    message = err.get("message") or f"job {job['id']} {job['state']}"
    return error_for(_KIND_STATUS.get(kind, 500), kind, f"background training {job['id']}: {message}",
                     err.get("details"), job=job)


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- retries ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Retry:
    """How a call that may be repeated is retried: at most ``attempts`` more times, after ``backoff`` seconds
    doubled each time (with jitter, at most ``max_backoff``), or after the answer's ``Retry-After`` when it
    gives one. A ``Retry-After`` over ``max_retry_after`` is not waited for: its error is raised at once.
    ``Retry(attempts=0)`` (or ``retries=0`` on the client) turns retrying off."""

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 502, 503, 504}))

    def delay(self, call: _Call, attempt: int, response: httpx.Response | None = None,
              error: httpx.TransportError | None = None) -> float | None:
        """Seconds to wait before trying ``call`` again after its ``attempt``-th try (0 the first) answered
        ``response`` or failed with ``error``; None: do not retry."""
        if attempt >= self.attempts:
            return None
        if error is not None:
            unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            if not (unsent or call.idempotent):
                return None
            return self._backoff(attempt)
        assert response is not None
        if response.status_code not in self.statuses or not call.idempotent:
            return None
        after = _retry_after(response)
        if after is None:
            return self._backoff(attempt)
        return after if after <= self.max_retry_after else None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)


# -- the calls, written once for both clients ----------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    """One HTTP request; ``upload``: (form field, path, content type) of a file sent as multipart."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    data: Mapping[str, str] | None = None
    upload: tuple[str, Path, str] | None = None
    headers: Mapping[str, str] | None = None
    idempotent: bool = False

    @contextlib.contextmanager
    def arguments(self) -> Iterator[dict[str, Any]]:
        """httpx's keyword arguments, with the upload's file opened anew (so a retry sends it from the start)."""
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if self.data is not None:
            kwargs["data"] = self.data
        if self.upload is None:
            yield kwargs
            return
        name, path, content_type = self.upload
        with path.open("rb") as fh:
            yield {**kwargs, "files": {name: (path.name, fh, content_type)}}


@dataclass(frozen=True)
class _Pause:
    seconds: float


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: Any


T = TypeVar("T")
P = ParamSpec("P")
#: A call written once: a generator that yields requests (and pauses) and gets their answers back.
Steps = Generator[_Call | _Pause, _Answer | None, T]

_FINISHED = ("succeeded", "failed", "cancelled")


def _rows(features: Any, records: Records | None) -> dict[str, Any]:
    if (features is None) == (records is None):
        raise ValueError("give exactly one of features and records")
    if features is not None:
        rows = features.tolist() if hasattr(features, "tolist") else [list(r) for r in features]
        return {"features": rows}
    return {"records": [dict(r) for r in records or []]}


def _list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _without_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


class _Calls:
    """The service's calls as :data:`Steps`; each client runs them with its own I/O (``_drive``)."""

    # -- training -----------------------------------------------------------------------------------------
    def _train_options(self, params: Mapping[str, Any] | None, encoding: Mapping[str, Any] | None,
                       validation_fraction: float, calibration: str, description: str | None,
                       tags: Mapping[str, str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"params": dict(params or {}), "validation_fraction": validation_fraction,
                                "calibration": calibration, "tags": dict(tags or {})}
        if encoding:
            body["encoding"] = dict(encoding)
        if description is not None:
            body["description"] = description
        return body

    @staticmethod
    def _train_call(background: bool | None, idempotency_key: str | None, **kwargs: Any) -> _Call:
        return _Call("POST", "/train", params=None if background is None else {"background": str(background).lower()},
                     headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
                     idempotent=idempotency_key is not None, **kwargs)

    def _rows_call(self, model: str, labels: Sequence[Label], features: Any, records: Records | None,
                   feature_names: Sequence[str] | None, background: bool | None, idempotency_key: str | None,
                   **options: Any) -> _Call:
        body = {"model": model, **_rows(features, records), "labels": _list(labels), **self._train_options(**options)}
        if feature_names is not None:
            body["feature_names"] = list(feature_names)
        return self._train_call(background, idempotency_key, json=body)

    def _csv_call(self, model: str, path: str | Path, target: str, background: bool | None,
                  idempotency_key: str | None, params: Mapping[str, Any] | None, encoding: Mapping[str, Any] | None,
                  validation_fraction: float, calibration: str, description: str | None) -> _Call:
        data = {"model": model, "target": target, "validation_fraction": str(validation_fraction),
                "calibration": calibration}
        if params:
            data["params"] = json.dumps(dict(params))
        if encoding:
            data["encoding"] = json.dumps(dict(encoding))
        if description is not None:
            data["description"] = description
        return self._train_call(background, idempotency_key, data=data, upload=("file", Path(path), "text/csv"))

    def _uri_call(self, model: str, uri: str, target: str, format: str | None, columns: Sequence[str] | None,
                  background: bool | None, idempotency_key: str | None, **options: Any) -> _Call:
        data = _without_none({"uri": uri, "target": target, "format": format,
                              "features": list(columns) if columns is not None else None})
        return self._train_call(background, idempotency_key, json={"model": model, "data": data,
                                                                   **self._train_options(**options)})

    def _report(self, call: _Call, wait_timeout: float, progress: Callable[[Job], None] | None) -> Steps[TrainReport]:
        """The training report of ``call``: its answer, or the result of the job it started (or, for a retried
        synchronous training under an Idempotency-Key whose first try is still running, of that try)."""
        try:
            answer = yield call
        except Conflict as exc:
            first = exc.details.get("job") if isinstance(exc.details, dict) else None
            if not (call.idempotent and isinstance(first, str)):
                raise
            return (yield from self._job_report(first, wait_timeout, progress))
        assert answer is not None
        if answer.status != 202:
            return answer.body
        return (yield from self._job_report(answer.body["id"], wait_timeout, progress))

    def _started(self, call: _Call) -> Steps[Job]:
        answer = yield call
        assert answer is not None
        return answer.body

    def _train(
        self, model: str, *, labels: Sequence[Label], features: Rows | None = None, records: Records | None = None,
        feature_names: Sequence[str] | None = None, params: Mapping[str, Any] | None = None,
        encoding: Mapping[str, Any] | None = None, validation_fraction: float = 0.2, description: str | None = None,
        tags: Mapping[str, str] | None = None, calibration: str = "none", background: bool | None = None,
        idempotency_key: str | None = None, wait_timeout: float = 3600.0,
        progress: Callable[[Job], None] | None = None,
    ) -> Steps[TrainReport]:
        """Train a new version from rows or records and return its report. ``calibration``: ``"platt"`` or
        ``"isotonic"`` calibrates a binary model's probabilities on the validation split. ``background``:
        ask for a background job (default: the server decides by size); either way the report is returned,
        polled from the job for at most ``wait_timeout`` seconds (``progress`` sees the job at each poll).
        An ``idempotency_key`` makes the call safe to retry."""
        call = self._rows_call(model, labels, features, records, feature_names, background, idempotency_key,
                               params=params, encoding=encoding, validation_fraction=validation_fraction,
                               calibration=calibration, description=description, tags=tags)
        return (yield from self._report(call, wait_timeout, progress))

    def _train_background(
        self, model: str, *, labels: Sequence[Label], features: Rows | None = None, records: Records | None = None,
        feature_names: Sequence[str] | None = None, params: Mapping[str, Any] | None = None,
        encoding: Mapping[str, Any] | None = None, validation_fraction: float = 0.2, description: str | None = None,
        tags: Mapping[str, str] | None = None, calibration: str = "none", idempotency_key: str | None = None,
    ) -> Steps[Job]:
        """Start a background training job (``train``'s options) and return the job; follow it with ``job``,
        ``wait_for_job`` or ``job_report``."""
        call = self._rows_call(model, labels, features, records, feature_names, True, idempotency_key,
                               params=params, encoding=encoding, validation_fraction=validation_fraction,
                               calibration=calibration, description=description, tags=tags)
        return (yield from self._started(call))

    def _train_csv(
        self, model: str, path: str | Path, target: str, *, params: Mapping[str, Any] | None = None,
        encoding: Mapping[str, Any] | None = None, validation_fraction: float = 0.2, calibration: str = "none",
        description: str | None = None, background: bool | None = None, idempotency_key: str | None = None,
        wait_timeout: float = 3600.0, progress: Callable[[Job], None] | None = None,
    ) -> Steps[TrainReport]:
        """Train a new version from a local CSV file with a header row (uploaded); ``target`` names the label
        column. Returns the report, waiting for a background job as ``train`` does."""
        call = self._csv_call(model, path, target, background, idempotency_key, params, encoding,
                              validation_fraction, calibration, description)
        return (yield from self._report(call, wait_timeout, progress))

    def _train_csv_background(
        self, model: str, path: str | Path, target: str, *, params: Mapping[str, Any] | None = None,
        encoding: Mapping[str, Any] | None = None, validation_fraction: float = 0.2, calibration: str = "none",
        description: str | None = None, idempotency_key: str | None = None,
    ) -> Steps[Job]:
        """Upload a CSV file and train on it as a background job; returns the job."""
        call = self._csv_call(model, path, target, True, idempotency_key, params, encoding, validation_fraction,
                              calibration, description)
        return (yield from self._started(call))

    def _train_uri(
        self, model: str, uri: str, target: str, *, format: str | None = None, columns: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None, encoding: Mapping[str, Any] | None = None,
        validation_fraction: float = 0.2, description: str | None = None, tags: Mapping[str, str] | None = None,
        calibration: str = "none", background: bool | None = None, idempotency_key: str | None = None,
        wait_timeout: float = 3600.0, progress: Callable[[Job], None] | None = None,
    ) -> Steps[TrainReport]:
        """Train on a CSV or Parquet table the server reads itself: a path under its LOGREG_DATA_ROOTS or an
        ``s3://`` URI (a glob or prefix reads every part); ``columns``: the feature columns (default: all but
        ``target``). Returns the report, waiting for a background job as ``train`` does."""
        call = self._uri_call(model, uri, target, format, columns, background, idempotency_key, params=params,
                              encoding=encoding, validation_fraction=validation_fraction, calibration=calibration,
                              description=description, tags=tags)
        return (yield from self._report(call, wait_timeout, progress))

    def _train_uri_background(
        self, model: str, uri: str, target: str, *, format: str | None = None, columns: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None, encoding: Mapping[str, Any] | None = None,
        validation_fraction: float = 0.2, description: str | None = None, tags: Mapping[str, str] | None = None,
        calibration: str = "none", idempotency_key: str | None = None,
    ) -> Steps[Job]:
        """``train_uri`` as a background job; returns the job."""
        call = self._uri_call(model, uri, target, format, columns, True, idempotency_key, params=params,
                              encoding=encoding, validation_fraction=validation_fraction, calibration=calibration,
                              description=description, tags=tags)
        return (yield from self._started(call))

    # -- jobs ---------------------------------------------------------------------------------------------
    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Steps[Any]:
        answer = yield _Call("GET", path, params=params, idempotent=True)
        assert answer is not None
        return answer.body

    def _job(self, job_id: str) -> Steps[Job]:
        """A background job's state, progress and, once it succeeded, its training report."""
        return (yield from self._get(f"/jobs/{job_id}"))

    def _cancel_job(self, job_id: str) -> Steps[CancelAnswer]:
        """Ask a background job to stop (it ends ``cancelled`` and stores nothing); Conflict when it had ended."""
        answer = yield _Call("DELETE", f"/jobs/{job_id}", idempotent=True)
        assert answer is not None
        return answer.body

    def _wait(self, job_id: str, timeout: float, poll: float,
              progress: Callable[[Job], None] | None = None) -> Steps[Job]:
        deadline = time.monotonic() + timeout
        interval = min(0.05, poll)
        while True:
            job: Job = yield from self._job(job_id)
            if progress is not None:
                progress(job)
            if job["state"] in _FINISHED:
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(0, "job_timeout", f"job {job_id} still {job['state']} after {timeout:g} s",
                                 {"job": job_id}, job=job)
            yield _Pause(min(interval, left))
            interval = min(poll, interval * 1.5)

    def _wait_for_job(self, job_id: str, timeout: float = 600.0, poll: float = 0.5,
                      progress: Callable[[Job], None] | None = None) -> Steps[Job]:
        """Poll a job (every ``poll`` seconds at most) until it ends, succeeded, failed or cancelled, and return it;
        JobTimeout (a TimeoutError) when it is still running after ``timeout`` seconds."""
        return (yield from self._wait(job_id, timeout, poll, progress))

    def _job_report(self, job_id: str, timeout: float = 3600.0,
                    progress: Callable[[Job], None] | None = None) -> Steps[TrainReport]:
        """Wait for a job and return its training report; a failed or cancelled job raises its error."""
        job = yield from self._wait(job_id, timeout, 1.0, progress)
        if job["state"] != "succeeded" or job["result"] is None:
            raise job_error(job)
        return job["result"]

    # -- serving ------------------------------------------------------------------------------------------
    def _scoring(self, path: str, model: str, features: Any, records: Records | None, csv: str | bytes | None,
                 version: int | str | None, params: dict[str, Any]) -> Steps[Any]:
        if csv is not None:
            if features is not None or records is not None:
                raise ValueError("give one of features, records and csv")
            call = _Call("POST", path, params={"model": model, **_without_none({"version": version}), **params},
                         content=csv.encode() if isinstance(csv, str) else csv,
                         headers={"Content-Type": "text/csv"}, idempotent=True)
        else:
            call = _Call("POST", path, params=params or None, idempotent=True,
                         json={"model": model, "version": version, **_rows(features, records)})
        answer = yield call
        assert answer is not None
        return answer.body

    def _predict_proba(
        self, model: str, *, features: Rows | None = None, records: Records | None = None,
        csv: str | bytes | None = None, version: int | str | None = None, explain: bool = False,
    ) -> Steps[Probabilities]:
        """Probabilities per class, columns in the order of ``classes`` (and ``explanations`` per row with
        ``explain=True``). Rows come as ``features``, ``records`` or ``csv`` text with a header row naming the
        model's features (no other columns)."""
        return (yield from self._scoring("/predict_proba", model, features, records, csv, version,
                                         {"explain": "true"} if explain else {}))

    def _predict(
        self, model: str, *, features: Rows | None = None, records: Records | None = None,
        csv: str | bytes | None = None, version: int | str | None = None, threshold: float | None = None,
        explain: bool = False,
    ) -> Steps[Predictions]:
        """Class labels and the threshold used (and ``explanations`` per row with ``explain=True``: contributions
        to the logit, top reasons, single-feature flips). Rows as for ``predict_proba``."""
        params = _without_none({"threshold": threshold, "explain": "true" if explain else None})
        return (yield from self._scoring("/predict", model, features, records, csv, version, params))

    def _metrics(
        self, model: str, *, labels: Sequence[Label], features: Rows | None = None, records: Records | None = None,
        version: int | str | None = None, threshold: float | None = None,
    ) -> Steps[EvaluationReport]:
        """Evaluation metrics of a version on labelled rows."""
        body = {"model": model, "version": version, **_rows(features, records), "labels": _list(labels),
                **_without_none({"threshold": threshold})}
        answer = yield _Call("POST", "/metrics", json=body, idempotent=True)
        assert answer is not None
        return answer.body

    def _stored_metrics(self, model: str, version: int | str | None = None) -> Steps[StoredMetrics]:
        """The metrics recorded on the validation split when the version was trained."""
        return (yield from self._get("/metrics", {"model": model, **_without_none({"version": version})}))

    # -- registry -----------------------------------------------------------------------------------------
    def _models(self) -> Steps[list[ModelSummary]]:
        """Every model with its latest version, versions and aliases."""
        return (yield from self._get("/models"))["models"]

    def _versions(self, model: str) -> Steps[list[VersionSummary]]:
        """The versions of one model."""
        return (yield from self._get(f"/models/{model}"))["versions"]

    def _model_card(self, model: str, version: int | str) -> Steps[ModelCard]:
        """Hyperparameters, coefficients, metrics and provenance of a version (a number or an alias)."""
        return (yield from self._get(f"/models/{model}/versions/{version}"))

    def _drift(self, model: str, version: int | str) -> Steps[Drift]:
        """PSI per feature over recent predictions and out-of-range counts, as the answering worker sees them."""
        return (yield from self._get(f"/models/{model}/versions/{version}/drift"))

    def _set_alias(self, model: str, alias: str, version: int) -> Steps[AliasChange]:
        """Point ``alias`` (e.g. ``"production"``) at ``version``."""
        answer = yield _Call("PUT", f"/models/{model}/aliases/{alias}", json={"version": version}, idempotent=True)
        assert answer is not None
        return answer.body

    def _delete_alias(self, model: str, alias: str) -> Steps[None]:
        yield _Call("DELETE", f"/models/{model}/aliases/{alias}", idempotent=True)

    def _set_threshold(self, model: str, version: int, threshold: float | None) -> Steps[ThresholdChange]:
        """Store a binary version's default decision threshold (None restores 0.5)."""
        answer = yield _Call("PUT", f"/models/{model}/versions/{version}/threshold", json={"threshold": threshold},
                             idempotent=True)
        assert answer is not None
        return answer.body

    def _optimize_threshold(
        self, model: str, version: int | str, objective: str, *, cost: Mapping[str, float] | None = None,
        target: float | None = None, labels: Sequence[Label] | None = None, features: Rows | None = None,
        records: Records | None = None, store: bool = False,
    ) -> Steps[ThresholdChoice]:
        """The best decision threshold for ``objective`` (``f1``, ``youden``, ``cost``, ``min_recall``,
        ``min_precision``) on the stored validation split, or on ``labels`` with ``features``/``records``;
        ``store=True`` also makes it the version's default."""
        body: dict[str, Any] = {"objective": objective, "store": store}
        if cost is not None:
            body["cost"] = dict(cost)
        if target is not None:
            body["target"] = target
        if labels is not None:
            body["data"] = {**_rows(features, records), "labels": _list(labels)}
        answer = yield _Call("POST", f"/models/{model}/versions/{version}/threshold:optimize", json=body,
                             idempotent=True)
        assert answer is not None
        return answer.body

    def _delete_version(self, model: str, version: int) -> Steps[None]:
        yield _Call("DELETE", f"/models/{model}/versions/{version}", idempotent=True)

    def _health(self) -> Steps[Health]:
        """The liveness answer, ``{"status": "ok", "pid": ...}``; raises when the server does not answer."""
        return (yield from self._get("/healthz"))

    def _ready(self) -> Steps[Ready]:
        """The readiness answer; ServiceUnavailable when the registry cannot be read or written."""
        return (yield from self._get("/readyz"))


def _blocking(steps: Callable[Concatenate[Any, P], Steps[T]]) -> Callable[Concatenate[LogregClient, P], T]:
    @functools.wraps(steps)
    def method(self: LogregClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._drive(steps(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = steps.__name__.lstrip("_")
    return method


def _awaitable(
    steps: Callable[Concatenate[Any, P], Steps[T]],
) -> Callable[Concatenate[AsyncLogregClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(steps)
    async def method(self: AsyncLogregClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._drive(steps(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = steps.__name__.lstrip("_")
    return method


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _answer(response: httpx.Response) -> _Answer:
    if response.status_code >= 400:
        raise _error_of_response(response)
    try:
        body = response.json() if response.content else None
    except ValueError:
        raise error_for(response.status_code, "http_error", "the answer is not JSON: "
                        + " ".join(response.text.split())[:200]) from None
    return _Answer(response.status_code, response.headers, body)


def _connection_failed(exc: httpx.TransportError, base_url: httpx.URL) -> ConnectionFailed:
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    detail = str(exc) or type(exc).__name__
    return ConnectionFailed(f"the connection to {base_url} {what}: {detail}", request=getattr(exc, "_request", None))


def _retries(retries: int | Retry) -> Retry:
    return retries if isinstance(retries, Retry) else Retry(attempts=retries)


class LogregClient(_Calls):
    """Calls a logreg-service over HTTP: ``LogregClient("http://127.0.0.1:8000").predict("m", features=...)``.

    ``retries``: how many times a call that is safe to repeat is retried (or a :class:`Retry`); ``timeout``:
    seconds for each request (a synchronous training included).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int | Retry = 3,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(api_key), transport=transport)
        self.retry = _retries(retries)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LogregClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drive(self, steps: Steps[T]) -> T:
        step: _Call | _Pause = next(steps)
        while True:
            try:
                if isinstance(step, _Pause):
                    time.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    answer = self._send(step)
                except LogregAPIError as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(answer)
            except StopIteration as stop:
                return stop.value

    def _send(self, call: _Call) -> _Answer:
        attempt = 0
        while True:
            try:
                with call.arguments() as kwargs:
                    response = self._http.request(call.method, call.path, **kwargs)
            except httpx.TransportError as exc:
                delay = self.retry.delay(call, attempt, error=exc)
                if delay is None:
                    raise _connection_failed(exc, self._http.base_url) from exc
            else:
                delay = self.retry.delay(call, attempt, response=response)
                if delay is None:
                    return _answer(response)
            time.sleep(delay)
            attempt += 1

    train = _blocking(_Calls._train)
    train_background = _blocking(_Calls._train_background)
    train_csv = _blocking(_Calls._train_csv)
    train_csv_background = _blocking(_Calls._train_csv_background)
    train_uri = _blocking(_Calls._train_uri)
    train_uri_background = _blocking(_Calls._train_uri_background)
    job = _blocking(_Calls._job)
    cancel_job = _blocking(_Calls._cancel_job)
    wait_for_job = _blocking(_Calls._wait_for_job)
    job_report = _blocking(_Calls._job_report)
    predict_proba = _blocking(_Calls._predict_proba)
    predict = _blocking(_Calls._predict)
    metrics = _blocking(_Calls._metrics)
    stored_metrics = _blocking(_Calls._stored_metrics)
    models = _blocking(_Calls._models)
    versions = _blocking(_Calls._versions)
    model_card = _blocking(_Calls._model_card)
    drift = _blocking(_Calls._drift)
    set_alias = _blocking(_Calls._set_alias)
    delete_alias = _blocking(_Calls._delete_alias)
    set_threshold = _blocking(_Calls._set_threshold)
    optimize_threshold = _blocking(_Calls._optimize_threshold)
    delete_version = _blocking(_Calls._delete_version)
    health = _blocking(_Calls._health)
    ready = _blocking(_Calls._ready)


class AsyncLogregClient(_Calls):
    """:class:`LogregClient` on ``httpx.AsyncClient``: the same methods, awaited
    (``async with AsyncLogregClient(url) as client: await client.predict(...)``)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retries: int | Retry = 3,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=_headers(api_key),
                                       transport=transport)
        self.retry = _retries(retries)

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLogregClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _drive(self, steps: Steps[T]) -> T:
        step: _Call | _Pause = next(steps)
        while True:
            try:
                if isinstance(step, _Pause):
                    await anyio.sleep(step.seconds)
                    step = steps.send(None)
                    continue
                try:
                    answer = await self._send(step)
                except LogregAPIError as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(answer)
            except StopIteration as stop:
                return stop.value

    async def _send(self, call: _Call) -> _Answer:
        attempt = 0
        while True:
            try:
                with call.arguments() as kwargs:
                    response = await self._http.request(call.method, call.path, **kwargs)
            except httpx.TransportError as exc:
                delay = self.retry.delay(call, attempt, error=exc)
                if delay is None:
                    raise _connection_failed(exc, self._http.base_url) from exc
            else:
                delay = self.retry.delay(call, attempt, response=response)
                if delay is None:
                    return _answer(response)
            await anyio.sleep(delay)
            attempt += 1

    train = _awaitable(_Calls._train)
    train_background = _awaitable(_Calls._train_background)
    train_csv = _awaitable(_Calls._train_csv)
    train_csv_background = _awaitable(_Calls._train_csv_background)
    train_uri = _awaitable(_Calls._train_uri)
    train_uri_background = _awaitable(_Calls._train_uri_background)
    job = _awaitable(_Calls._job)
    cancel_job = _awaitable(_Calls._cancel_job)
    wait_for_job = _awaitable(_Calls._wait_for_job)
    job_report = _awaitable(_Calls._job_report)
    predict_proba = _awaitable(_Calls._predict_proba)
    predict = _awaitable(_Calls._predict)
    metrics = _awaitable(_Calls._metrics)
    stored_metrics = _awaitable(_Calls._stored_metrics)
    models = _awaitable(_Calls._models)
    versions = _awaitable(_Calls._versions)
    model_card = _awaitable(_Calls._model_card)
    drift = _awaitable(_Calls._drift)
    set_alias = _awaitable(_Calls._set_alias)
    delete_alias = _awaitable(_Calls._delete_alias)
    set_threshold = _awaitable(_Calls._set_threshold)
    optimize_threshold = _awaitable(_Calls._optimize_threshold)
    delete_version = _awaitable(_Calls._delete_version)
    health = _awaitable(_Calls._health)
    ready = _awaitable(_Calls._ready)
