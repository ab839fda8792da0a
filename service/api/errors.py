"""The one place where domain errors and validation failures become HTTP answers.

Every error has the shape ``{"error": {"type", "message", "details"}}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BusyError,
    CancelledError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LimitExceededError,
    LogregError,
    NotFoundError,
    RegistryUnavailableError,
    TimeLimitError,
)
from ..schemas import ErrorResponse
from .security import AuthError

log = logging.getLogger("service.api")

#: Status code of each domain error; the first matching base class wins. The ``type`` is the error's ``kind``.
ERROR_STATUS: list[tuple[type[LogregError], int]] = [
    (NotFoundError, 404),
    (CancelledError, 409),
    (TimeLimitError, 422),
    (ConflictError, 409),
    (IntegrityError, 409),
    (LimitExceededError, 413),
    (InvalidInputError, 422),
    (RegistryUnavailableError, 503),
]

#: Documented error answers, for the OpenAPI page.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "model": ErrorResponse}
    for status, text in (
        (401, "An API key is required (`Authorization: Bearer <key>`)"),
        (403, "The API key is not valid"),
        (404, "Unknown model, version or alias"),
        (409, "Conflict with the registry's state, or a stored version failed its integrity check"),
        (413, "Body or batch over the configured limits"),
        (422, "Invalid input: the message says what and where"),
        (503, "The registry directory cannot be read or written"),
    )
}


def error_response(
    status: int, kind: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error answer in the service's one error shape."""
    body = {"error": {"type": kind, "message": message, "details": details}}
    try:
        content = orjson.dumps(body, default=str)
    except TypeError:  # e.g. an integer beyond 64 bits echoed back in the details
        content = json.dumps(body, default=str).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def status_of(exc: LogregError) -> int:
    """The HTTP status of a domain error (400 when no class of ``ERROR_STATUS`` matches)."""
    return next((status for cls, status in ERROR_STATUS if isinstance(exc, cls)), 400)


def validation_problems(errors: list[Any], prefix: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], str]:
    """pydantic's errors as JSON-able details (``loc`` under ``prefix``) and a one-line summary of the first."""
    details = [{"loc": [*prefix, *map(str, e.get("loc", ()))], "msg": e.get("msg"), "type": e.get("type")}
               for e in errors]
    first = details[0] if details else {}
    where = ".".join(first.get("loc", [])) or "request"
    more = f" (and {len(details) - 1} more problem(s))" if len(details) > 1 else ""
    return details, f"{where}: {first.get('msg', 'invalid')}{more}"


def domain_error_response(exc: LogregError) -> Response:
    """The answer to a domain error (also given by the scoring fast path, which has no handlers)."""
    if isinstance(exc, AuthError):
        kind = "unauthorized" if exc.status == 401 else "forbidden"
        return error_response(exc.status, kind, exc.message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, BusyError):
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(429, exc.kind, exc.message, exc.details, headers=headers)
    return error_response(status_of(exc), exc.kind, exc.message, exc.details)


def body_validation_response(exc: ValidationError) -> Response:
    """The answer to a body that failed its pydantic model (as for :func:`domain_error_response`)."""
    details, summary = validation_problems(exc.errors(include_url=False, include_input=False), ("body",))
    return error_response(422, "validation_error", summary, details)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so no error leaves the app in any other shape."""

    @app.exception_handler(LogregError)
    async def domain_error(_: Request, exc: LogregError) -> Response:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> Response:
        details, summary = validation_problems(list(exc.errors()))
        return error_response(422, "validation_error", summary, details)

    @app.exception_handler(ValidationError)
    async def body_validation(_: Request, exc: ValidationError) -> Response:
        return body_validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not decode: the same answer our own parsing gives
            return error_response(422, "invalid_input", f"the body cannot be parsed: {exc.detail}")
        kind = {404: "not_found", 405: "method_not_allowed", 413: "limit_exceeded"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error; the server log has the details")
