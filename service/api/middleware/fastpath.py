"""The scoring fast path: plain JSON ``POST /predict_proba`` and ``POST /predict`` without the framework.

Scoring one row takes the model a few numpy calls; FastAPI's routing, dependency resolution and
parameter validation around it cost several times that. This middleware answers the plain requests itself (a JSON
body; no query, or only ``threshold`` on ``/predict``) through the same functions as the routes
(:class:`service.services.scoring.Scorer`, :func:`~service.api.payloads.validate_envelope`), checking in the
same order, so both give the same answers, record the same metrics and logs, and fail with the same errors
(made by the same functions as the routes' error handlers). Everything else goes on to the routes: CSV
bodies, ``explain`` and other queries, a missing or wrong API key, and any unexpected failure, with the
body replayed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import LogregError
from ..deps import Services, log_fields
from ..errors import body_validation_response, domain_error_response
from ..payloads import is_csv_type, json_bytes, parse_json_object, validate_envelope
from ..schemas import PredictRequest
from ..security import read_allowed

#: The routes the fast path answers.
FAST_PATHS = ("/predict_proba", "/predict")
#: The one query it reads (on ``/predict``): a plain decimal; anything else is left to the route to validate.
_THRESHOLD_QUERY = re.compile(rb"threshold=([01](?:\.[0-9]{1,32})?)")
_JSON_HEADERS = (b"content-type", b"application/json")


class ScoringFastPath:
    """ASGI middleware: answer plain scoring requests directly; hand every other request to ``app``."""

    def __init__(self, app: ASGIApp, services: Services, routes: Sequence[BaseRoute]) -> None:
        """``routes``: the scoring router's routes, as included in the app (without a prefix)."""
        self.app = app
        self.services = services
        self.routes = {r.path: r for r in routes
                       if isinstance(r, APIRoute) and r.path in FAST_PATHS and "POST" in r.methods}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        plain, threshold = _query(route, scope) if route is not None else (False, None)
        if not plain or not self._plain_body(scope):
            await self.app(scope, receive, send)
            return
        assert route is not None
        scope["route"] = route  # as the router sets it: metrics are labelled by the route's path
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        answer: bytes | None = None
        error: Response | None = None
        try:
            answer = await self._answer(scope, route, body, threshold)
        except LogregError as exc:  # the answer the route's error handlers give: it checks in the same order
            error = domain_error_response(exc)
        except ValidationError as exc:
            error = body_validation_response(exc)
        except Exception:  # anything else (a bug): the route answers, in the service's error shape
            pass
        if error is not None:
            await error(scope, receive, send)
        elif answer is None:  # outside the handler, so the first attempt's frames (and its rows) are freed
            await self.app(scope, _replay(body, receive), send)
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % len(answer)), _JSON_HEADERS]})
            await send({"type": "http.response.body", "body": answer})

    def _plain_body(self, scope: Scope) -> bool:
        """A JSON body (any type but CSV, as the routes read it) from a client allowed to read."""
        content_type = authorization = None
        for key, value in scope["headers"]:
            if key == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
        if content_type is not None and is_csv_type(content_type):
            return False
        return read_allowed(self.services, authorization)

    async def _answer(self, scope: Scope, route: APIRoute, body: bytes, threshold: float | None) -> bytes:
        scorer, fields = self.services.scorer, log_fields(scope)
        envelope, bulk = validate_envelope(PredictRequest, await parse_json_object(body))
        loaded = await scorer.load(fields, envelope.model, envelope.version)
        X = scorer.json_rows(loaded, bulk)
        if route.path == "/predict":
            payload: dict[str, Any] = scorer.labels_answer(fields, route.path, loaded, X, threshold)[0]
        else:
            payload = scorer.proba_answer(fields, route.path, loaded, X)
        return json_bytes(payload)


def _query(route: APIRoute, scope: Scope) -> tuple[bool, float | None]:
    """Whether the query is one the fast path answers (none, or a plain ``threshold`` from 0 to 1 on
    ``/predict``), and that threshold. Other parameters, and their errors, are left to the route."""
    query: bytes = scope["query_string"]
    if not query:
        return True, None
    match = _THRESHOLD_QUERY.fullmatch(query) if route.path == "/predict" else None
    value = float(match.group(1)) if match is not None else math.nan
    return (True, value) if 0.0 <= value <= 1.0 else (False, None)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body (``receive`` enforces the size limit); None when the client disconnects."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` again, then whatever the connection sends next."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
