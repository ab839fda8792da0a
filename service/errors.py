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
