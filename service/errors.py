"""Domain errors of the service, as one tree; no HTTP status codes live here.

::

    LogregError                      every error the service raises on purpose (message + details)
    ├── NotFoundError                a model, version, alias or job that does not exist
    ├── ConflictError                the request contradicts the current state (an alias on a deleted version)
    ├── InvalidInputError            content that cannot be used: shape, names, values, types
    ├── IntegrityError               a stored artefact or record fails its checksum or schema; never loaded
    ├── LimitExceededError           over a configured limit: rows, body size, bytes of a training set
    ├── RegistryUnavailableError     the registry directory cannot be read or written
    ├── BusyError                    too many trainings at once; retry after ``retry_after`` seconds
    │   └── OverloadedError          too many request bodies being read at once; retry after ``retry_after``
    ├── RequestTimeoutError          a request body stopped arriving (a sender that stalls)
    ├── TimeLimitError               a training went over its wall-clock limit; nothing was stored
    ├── JobCancelledError            a background training was cancelled; nothing was stored
    ├── AuthenticationError          a protected route was called without an API key
    ├── PermissionDeniedError        the API key given is not one of the configured keys
    ├── DataAccessError              a data source the service may not read (outside the data roots, S3 refused)
    ├── SourceUnavailableError       a data source that cannot be reached now (an S3 endpoint down)
    └── ClusterUnavailableError      training on Dask cannot run: Dask not installed, the scheduler unreachable,
                                     no workers, or workers lost mid-fit; nothing was stored

``service.api.errors`` maps each class to a response in one place. Each class names its ``kind``: the
machine-readable ``type`` clients see in every error body and in a failed background job's ``error``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LogregError(Exception):
    """Base of every error the service raises on purpose; carries a message and optional details."""

    kind: ClassVar[str] = "error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(LogregError):
    """A model, version, alias or job that does not exist."""

    kind: ClassVar[str] = "not_found"


class ConflictError(LogregError):
    """The request contradicts the current state (e.g. an alias pointing at a deleted version)."""

    kind: ClassVar[str] = "conflict"


class InvalidInputError(LogregError):
    """The request is well-formed but its content cannot be used (shape, names, values)."""

    kind: ClassVar[str] = "invalid_input"


class IntegrityError(LogregError):
    """An artefact or record on disk does not match its checksum or schema; it is never loaded."""

    kind: ClassVar[str] = "integrity_error"


class LimitExceededError(LogregError):
    """A configured limit (rows, body size, bytes of a training set) was exceeded."""

    kind: ClassVar[str] = "limit_exceeded"


class RegistryUnavailableError(LogregError):
    """The registry directory cannot be read or written."""

    kind: ClassVar[str] = "registry_unavailable"


class BusyError(LogregError):
    """Too many trainings run at once; the caller should retry after ``retry_after`` seconds."""

    kind: ClassVar[str] = "too_many_trainings"

    def __init__(self, message: str, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class OverloadedError(BusyError):
    """Too many request bodies are being read at once by this worker; retry after ``retry_after`` seconds."""

    kind: ClassVar[str] = "overloaded"


class RequestTimeoutError(LogregError):
    """A request body paused longer than the body idle limit; the connection is closed."""

    kind: ClassVar[str] = "request_timeout"


class TimeLimitError(LogregError):
    """A training run went over its wall-clock limit and was stopped; nothing was stored."""

    kind: ClassVar[str] = "time_limit_exceeded"


class JobCancelledError(LogregError):
    """A background training job was cancelled; nothing was stored."""

    kind: ClassVar[str] = "cancelled"


class AuthenticationError(LogregError):
    """A route that needs an API key was called without one."""

    kind: ClassVar[str] = "unauthorized"


class PermissionDeniedError(LogregError):
    """The API key sent is not one of the configured keys."""

    kind: ClassVar[str] = "forbidden"


class DataAccessError(LogregError):
    """A data source the service may not read: a path outside the configured data roots, or S3 refusing access."""

    kind: ClassVar[str] = "data_access_denied"


class SourceUnavailableError(LogregError):
    """A data source that cannot be reached now (an object store that does not answer)."""

    kind: ClassVar[str] = "source_unavailable"


class ClusterUnavailableError(LogregError):
    """Training on a Dask cluster cannot run now: Dask is not installed in the service, the scheduler does not
    answer, it has no workers, or they died mid-fit. Nothing was stored."""

    kind: ClassVar[str] = "cluster_unavailable"
