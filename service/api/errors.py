"""The one place where domain errors and validation failures become HTTP answers, in both error dialects.

The service's own shape is ``{"error": {"type", "message", "details"}}``; the V2 / Open Inference
Protocol's is ``{"error": "<message>"}``, with 400 where the service says 422. Both take their status
codes and headers from :data:`ERROR_STATUS` and :func:`error_headers`. Which shape an answer takes
depends on the path alone (:func:`speaks_v2`): every answer under ``/v2``, routing 404s and 405s,
middleware refusals and unexpected failures included, is the protocol's (:func:`error_answer`).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from ..errors import (
    AuthenticationError,
    BusyError,
    ClusterUnavailableError,
    ConflictError,
    DataAccessError,
    IntegrityError,
    InvalidInputError,
    JobCancelledError,
    LimitExceededError,
    LogregError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RegistryUnavailableError,
    RequestTimeoutError,
    SourceUnavailableError,
    TimeLimitError,
)
from .schemas import ErrorResponse

log = logging.getLogger("service.api")

#: Status code of each domain error; the first matching class wins. The ``type`` is the error's ``kind``.
ERROR_STATUS: list[tuple[type[LogregError], int]] = [
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (DataAccessError, 403),
    (NotFoundError, 404),
    (JobCancelledError, 409),
    (TimeLimitError, 422),
    (RequestTimeoutError, 408),
    (ConflictError, 409),
    (IntegrityError, 409),
    (LimitExceededError, 413),
    (InvalidInputError, 422),
    (OverloadedError, 503),
    (BusyError, 429),
    (RegistryUnavailableError, 503),
    (SourceUnavailableError, 503),
    (ClusterUnavailableError, 503),
]

#: Every documented error answer, for the OpenAPI page; each operation lists those it can give
#: (:func:`error_responses`). Refusals any request may meet before it reaches a route are told once, in the
#: API's description: 421 (a ``Host`` that is not this service's), 408 (a body that stalls) and 503 (too many
#: bodies being read at once).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "model": ErrorResponse}
    for status, text in (
        (401, "An API key is required (`Authorization: Bearer <key>`)"),
        (403, "The API key is not valid, a state change from another site's page, or a data source the service "
              "may not read (LOGREG_DATA_ROOTS, S3)"),
        (404, "Unknown model, version, alias or job"),
        (409, "Conflict with the registry's state, or a stored version failed its integrity check"),
        (413, "Body or batch over the configured limits"),
        (415, "A body of a type the route does not read (`text/plain`, a form), or a `Content-Encoding` other "
              "than gzip or deflate"),
        (422, "Invalid input: the message says what and where"),
        (429, "Too many trainings running; retry after `Retry-After` seconds"),
        (503, "The registry directory cannot be read or written, a data source does not answer, or a Dask "
              "training cannot run (Dask not installed, its scheduler unreachable, its workers lost)"),
    )
}
ERROR_RESPONSES[429]["headers"] = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
}

#: The error statuses of the usual kinds of operation: any route behind an API key; a route that reads a model
#: (or a job) from the registry, named in its path or query; a route that reads a body.
KEYED = (401, 403)
REGISTRY = (404, 409, 422, 503)
BODY = (413, 415, 422)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation that can answer ``statuses`` (in order, once each)."""
    return {status: ERROR_RESPONSES[status] for status in sorted(set(statuses))}


def status_of(exc: LogregError) -> int:
    """The HTTP status of a domain error (400 when no class of ``ERROR_STATUS`` matches)."""
    return next((status for cls, status in ERROR_STATUS if isinstance(exc, cls)), 400)


def error_headers(exc: LogregError) -> dict[str, str] | None:
    """Headers an error answer carries: how to authenticate, when to retry."""
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, BusyError):
        return {"Retry-After": str(exc.retry_after)}
    return None


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
    return error_response(status_of(exc), exc.kind, exc.message, exc.details, headers=error_headers(exc))


def body_validation_response(exc: ValidationError) -> Response:
    """The answer to a body that failed its pydantic model (as for :func:`domain_error_response`)."""
    details, summary = validation_problems(exc.errors(include_url=False, include_input=False), ("body",))
    return error_response(422, "validation_error", summary, details)


# -- the V2 dialect ---------------------------------------------------------------------------------------
#: The path prefix of the V2 / Open Inference Protocol, whose answers take its error shape.
V2_PREFIX = "/v2"

INTERNAL_ERROR = "internal server error; the server log has the details"


def speaks_v2(path: str) -> bool:
    """Whether errors on ``path`` answer in the V2 protocol's shape: ``/v2`` and everything under it."""
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def v2_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer in the V2 protocol's shape."""
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json",
                    headers=headers)


def v2_error_response(exc: Exception) -> Response | None:
    """The V2 protocol's answer to an exception (the service's statuses, 400 for invalid input), or None
    when it is not one the service raises on purpose (a bug: :func:`error_answer` makes it a 500)."""
    if isinstance(exc, LogregError):
        status = status_of(exc)
        return v2_error(400 if status == 422 else status, exc.message, headers=error_headers(exc))
    if isinstance(exc, RequestValidationError):
        return v2_error(400, validation_problems(list(exc.errors()))[1])
    if isinstance(exc, ValidationError):
        return v2_error(400, validation_problems(exc.errors(include_url=False, include_input=False))[1])
    if isinstance(exc, StarletteHTTPException):
        return v2_error(400 if exc.status_code == 422 else exc.status_code, str(exc.detail),
                        headers=getattr(exc, "headers", None))
    return None


# -- both dialects ----------------------------------------------------------------------------------------
def service_error_response(exc: Exception) -> Response | None:
    """The service's answer to an exception, or None when it is not one the service raises on purpose."""
    if isinstance(exc, LogregError):
        return domain_error_response(exc)
    if isinstance(exc, RequestValidationError):
        details, summary = validation_problems(list(exc.errors()))
        return error_response(422, "validation_error", summary, details)
    if isinstance(exc, ValidationError):
        return body_validation_response(exc)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 400:  # a body FastAPI could not decode: the same answer our own parsing gives
            return error_response(422, "invalid_input", f"the body cannot be parsed: {exc.detail}")
        kind = {403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "limit_exceeded",
                415: "unsupported_media_type", 421: "misdirected_request"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, str(exc.detail), headers=getattr(exc, "headers", None))
    return None


def error_answer(scope: Scope, exc: Exception) -> Response:
    """The answer to ``exc`` for the request of ``scope``, in the error shape of its path's dialect; a 500 for
    anything the service does not raise on purpose (the caller logs it)."""
    path = scope["path"]
    if isinstance(exc, StarletteHTTPException) and exc.detail == HTTPStatus(exc.status_code).phrase:
        if exc.status_code == 404:  # the router's: no route has this path
            exc = StarletteHTTPException(404, f"no route {path} (see /docs)")
        elif exc.status_code == 405:  # the router's: a route has this path, with other methods
            allowed = (exc.headers or {}).get("Allow", "")
            exc = StarletteHTTPException(405, f"method {scope['method']} is not allowed on {path} (allowed: "
                                         f"{allowed})", headers=exc.headers)
    if speaks_v2(path):
        return v2_error_response(exc) or v2_error(500, INTERNAL_ERROR)
    return service_error_response(exc) or error_response(500, "internal_error", INTERNAL_ERROR)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so no error leaves the app in any other shape."""

    async def answer(request: Request, exc: Exception) -> Response:
        return error_answer(request.scope, exc)

    for cls in (LogregError, RequestValidationError, ValidationError, StarletteHTTPException):
        app.add_exception_handler(cls, answer)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_answer(request.scope, exc)
