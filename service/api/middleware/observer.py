"""ASGI middleware: a request id in and out, one access-log line and the request metrics per request."""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...observability.logging import access_log
from ...observability.prometheus import UNCOUNTED, Monitoring

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Header with the number of rows of a scoring request that have a feature outside the training range
#: (``out_of_range_rows`` in the request's log fields, set by the scoring service).
OUT_OF_RANGE_HEADER = b"x-out-of-range-rows"
#: Mixed-type models: cells with a category training never saw, in all and per column ("3; plan=2, state=1").
UNKNOWN_CATEGORIES_HEADER = b"x-unknown-categories"


class RequestObserver:
    """ASGI middleware: request id in and out, one JSON log line and the metrics per request."""

    def __init__(self, app: ASGIApp, monitoring: Monitoring) -> None:
        self.app = app
        self.monitoring = monitoring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        # Else 32 random hex digits, like uuid4().hex at a quarter of its cost.
        request_id = given if given and _REQUEST_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                out_of_range = scope.get("state", {}).get("out_of_range_rows")
                if out_of_range is not None and status < 400:
                    message["headers"].append((OUT_OF_RANGE_HEADER, b"%d" % out_of_range))
                unknown = scope.get("state", {}).get("unknown_categories")
                if unknown is not None and status < 400:
                    # the cells in all, then per column: "3; plan=2, state=1"
                    value = "; ".join([str(sum(unknown.values())), *([", ".join(
                        f"{name}={count}" for name, count in unknown.items())] if unknown else [])])
                    message["headers"].append((UNKNOWN_CATEGORIES_HEADER, value.encode("latin-1", "replace")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template not in UNCOUNTED:
                self.monitoring.request_observed(scope["method"], template, status, elapsed)
            state = scope.get("state", {})
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={"fields": {
                        "method": scope["method"], "path": scope["path"], "status": status,
                        "duration_ms": round(elapsed * 1000, 3), "model": state.get("model"),
                        "version": state.get("version"), "rows": state.get("rows"), "request_id": request_id,
                    }},
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
