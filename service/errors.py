"""Domain errors of the service, as a small tree.

No HTTP status codes live here: ``service.api.errors`` maps each class to a response in one place.
"""

from __future__ import annotations

from typing import Any


class LogregError(Exception):
    """Base of every error the service raises on purpose; carries a message and optional details."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFoundError(LogregError):
    """A model, version, alias or job that does not exist."""


class ConflictError(LogregError):
    """The request contradicts the current state (e.g. an alias pointing at a deleted version)."""


class InvalidInputError(LogregError):
    """The request is well-formed JSON but its content cannot be used (shape, names, values)."""


class IntegrityError(LogregError):
    """An artefact on disk does not match its recorded checksum or metadata; it is never loaded."""


class LimitExceededError(LogregError):
    """A configured limit (rows, body size, concurrent trainings) was exceeded."""


class RegistryUnavailableError(LogregError):
    """The registry directory cannot be read or written."""


class BusyError(LogregError):
    """Too many trainings run at once; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class TimeLimitError(LogregError):
    """A training run went over its wall-clock limit and was stopped; nothing was stored."""


class CancelledError(LogregError):
    """A background training job was cancelled; nothing was stored."""
