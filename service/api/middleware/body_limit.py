"""ASGI middleware that refuses bodies over the configured size before reading them whole: multipart training
uploads (spooled to disk by the route) have their own, larger limit."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The routes that take uploads (spooled to disk, never read whole); every other body keeps the body limit.
UPLOAD_PATHS = frozenset({"/train"})


class BodySizeLimit:
    """413 when ``Content-Length`` says the body is too large, or once a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes if max_upload_bytes is not None else max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.max_bytes, "LOGREG_MAX_BODY_BYTES"
        upload_route = scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS
        length = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                length = value
            elif key == b"content-type" and upload_route and value[:19].lower() == b"multipart/form-data":
                limit, setting = self.max_upload_bytes, "LOGREG_MAX_UPLOAD_BYTES"
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _refuse(send, int(length), limit, setting)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLargeError(received)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLargeError as exc:
            if not started:
                await _refuse(send, exc.size, limit, setting)


async def _refuse(send: Send, size: int, limit: int, setting: str) -> None:
    """The 413, naming the setting to raise."""
    body = orjson.dumps(
        {
            "error": {
                "type": "limit_exceeded",
                "message": f"request body of {size} bytes is over the limit of {limit} bytes ({setting})",
                "details": {"limit": limit},
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
