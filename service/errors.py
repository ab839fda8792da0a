"""Domain errors of the service, as a small tree.

No HTTP status codes live here: ``service.api.errors`` maps each class to a response in one place.
Each class names its ``kind``, the machine-readable ``type`` clients see in every error body (and in a
failed background job's ``error``).
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
    """The request is well-formed JSON but its content cannot be used (shape, names, values)."""

    kind: ClassVar[str] = "invalid_input"


class IntegrityError(LogregError):
    """An artefact on disk does not match its recorded checksum or metadata; it is never loaded."""

    kind: ClassVar[str] = "integrity_error"


class LimitExceededError(LogregError):
    """A configured limit (rows, body size, concurrent trainings) was exceeded."""

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


class TimeLimitError(LogregError):
    """A training run went over its wall-clock limit and was stopped; nothing was stored."""

    kind: ClassVar[str] = "time_limit_exceeded"


class CancelledError(LogregError):
    """A background training job was cancelled; nothing was stored."""

    kind: ClassVar[str] = "cancelled"
