"""ASGI middleware for request bodies: a ``Content-Encoding`` of gzip or deflate is decoded as the body streams
in, and a body over its size limit is refused (413) before it is read whole, counting the decoded bytes: a small
compressed body that inflates past the limit (a gzip bomb) is refused once the limit is passed, never inflated
in full. Multipart training uploads (spooled to disk by the route) have their own, larger limit.

Against senders that stall or hold many bodies open (the uploads aside, which are spooled to disk): a body
that pauses longer than ``LOGREG_BODY_IDLE_SECONDS``, or that arrives slower than
``LOGREG_BODY_MIN_BYTES_PER_SECOND`` on average once that long has passed, is a 408; a worker reads at most
``LOGREG_MAX_OPEN_BODIES`` bodies at once, holding at most ``LOGREG_MAX_BODY_BYTES_IN_FLIGHT`` bytes of them,
and answers 503 with ``Retry-After`` beyond either. Headers have their own limit (:mod:`service.api.protocol`).

Refusals answer in the error shape of the path's dialect (:func:`service.api.errors.error_answer`).
"""

from __future__ import annotations

import asyncio
import time
import zlib

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import InvalidInputError, LimitExceededError, LogregError, OverloadedError, RequestTimeoutError
from ..errors import error_answer

#: The routes that take uploads (spooled to disk, never read whole); every other body keeps the body limit.
UPLOAD_PATHS = frozenset({"/train"})
#: Content codings of request bodies that are decoded (``deflate`` is zlib's format, as HTTP says; a raw deflate
#: stream, which some clients send instead, is read too).
REQUEST_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})
#: Most decoded bytes handed on per message, so that one small compressed chunk never inflates at once.
DECODED_CHUNK = 256 * 1024


class BodySizeLimit:
    """Decode gzip/deflate request bodies; 413 when ``Content-Length`` says the body is too large, or once the
    (decoded) body streamed so far passes the limit; 415 for another content coding."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None,
                 idle_seconds: float | None = None, max_open_bodies: int | None = None,
                 max_bytes_in_flight: int | None = None, min_bytes_per_second: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes if max_upload_bytes is not None else max_bytes
        self.idle_seconds = idle_seconds
        self.max_open_bodies = max_open_bodies
        self.max_bytes_in_flight = max_bytes_in_flight
        self.min_bytes_per_second = min_bytes_per_second
        self.open_bodies = 0  # bodies this worker is reading now (uploads spooled to disk aside)
        self.bytes_in_flight = 0  # what those bodies have delivered so far

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.max_bytes, "LOGREG_MAX_BODY_BYTES"
        upload_route = scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS
        length = encoding = None
        chunked = upload = False
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                length = value
            elif key == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif key == b"content-type" and upload_route and value[:19].lower() == b"multipart/form-data":
                limit, setting = self.max_upload_bytes, "LOGREG_MAX_UPLOAD_BYTES"
                upload = True
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _refuse(scope, receive, send, _too_large(limit, setting, size=int(length)))
                return
        if encoding not in (None, "", "identity"):
            if encoding not in REQUEST_ENCODINGS:
                refusal = HTTPException(415, f"Content-Encoding {encoding!r} is not supported: send the body as is, "
                                        "or compressed with gzip or deflate")
                await _refuse(scope, receive, send, refusal)
                return
            decoder = _Decoder(encoding)
            # The app sees the decoded body: neither the coding nor the encoded length applies to it. (The scope is
            # changed in place: the request observer reads the route the router sets in it.)
            scope["headers"] = [(k, v) for k, v in scope["headers"]
                                if k not in (b"content-encoding", b"content-length")]
            receive = decoder.wrap(receive)
        received = 0
        started = False
        has_body = chunked or (length is not None and length.strip() not in (b"", b"0"))
        counted = has_body and not upload and self.max_open_bodies is not None
        if counted:
            if self.open_bodies >= self.max_open_bodies:  # type: ignore[operator]
                await _refuse(scope, receive, send, OverloadedError(
                    f"this worker is reading {self.open_bodies} request bodies already (LOGREG_MAX_OPEN_BODIES); "
                    "retry in a moment", retry_after=1))
                return
            self.open_bodies += 1
        reading = has_body

        held = 0  # this body's bytes counted in bytes_in_flight
        started_at = time.monotonic()

        def release() -> None:
            nonlocal counted, held
            if counted:
                counted = False
                self.open_bodies -= 1
                self.bytes_in_flight -= held
                held = 0

        async def limited_receive() -> Message:
            nonlocal received, reading, held
            if reading and self.idle_seconds is not None:
                try:
                    message = await asyncio.wait_for(receive(), self.idle_seconds)
                except TimeoutError:
                    raise _RefusedError(RequestTimeoutError(
                        f"the request body stopped arriving for {self.idle_seconds:g} s "
                        "(LOGREG_BODY_IDLE_SECONDS)")) from None
            else:
                message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                elapsed = time.monotonic() - started_at
                if (reading and self.min_bytes_per_second and self.idle_seconds is not None
                        and elapsed > self.idle_seconds and received < self.min_bytes_per_second * elapsed):
                    raise _RefusedError(RequestTimeoutError(
                        f"the request body arrives at {received / elapsed:.0f} bytes/s, slower than "
                        f"{self.min_bytes_per_second:g} (LOGREG_BODY_MIN_BYTES_PER_SECOND)"))
                if received > limit:
                    raise _RefusedError(_too_large(limit, setting, encoding=encoding))
                if counted and self.max_bytes_in_flight is not None:
                    held += size
                    self.bytes_in_flight += size
                    if self.bytes_in_flight > self.max_bytes_in_flight:
                        raise _RefusedError(OverloadedError(
                            f"this worker holds {self.bytes_in_flight} bytes of request bodies being read, over "
                            f"{self.max_bytes_in_flight} (LOGREG_MAX_BODY_BYTES_IN_FLIGHT); retry in a moment",
                            retry_after=1))
                if not message.get("more_body", False):
                    reading = False
            else:
                reading = False
            if not reading:
                release()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _RefusedError as exc:
            if not started:
                await _refuse(scope, receive, send, exc.error)
        finally:
            release()  # the app answered without reading the whole body, or it was refused


def _too_large(limit: int, setting: str, *, size: int | None = None, encoding: str | None = None
               ) -> LimitExceededError:
    """The 413's error, naming the setting to raise: ``size`` as the Content-Length says, else counted as the
    (decoded) body arrived."""
    what = f"request body of {size} bytes" if size is not None else f"request body of more than {limit} bytes"
    if size is None and encoding not in (None, "", "identity"):
        what += f" once decoded ({encoding})"
    return LimitExceededError(f"{what} is over the limit of {limit} bytes ({setting})", {"limit": limit})


async def _refuse(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
    """The refusal, in the shape of the path's dialect; the connection closes (the body was not read)."""
    answer = error_answer(scope, error)
    answer.headers["connection"] = "close"
    await answer(scope, receive, send)


class _RefusedError(Exception):
    """A body refused while the app reads it: the middleware answers ``error``."""

    def __init__(self, error: LogregError) -> None:
        super().__init__(error.message)
        self.error = error


class _Decoder:
    """A request body's content coding undone as the body streams in, at most ``DECODED_CHUNK`` bytes at a time."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.gzip = encoding != "deflate"
        self._z: zlib._Decompress | None = None
        self._pending = b""  # input not inflated yet, kept to bound each message's output

    def _inflate(self, data: bytes) -> bytes:
        if self._z is None:  # deflate: zlib's format, else a raw stream (told apart by the zlib header)
            raw = not self.gzip and len(data) >= 2 and (data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31)
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if self.gzip else -zlib.MAX_WBITS if raw
                                         else zlib.MAX_WBITS)
        try:
            out = self._z.decompress(data, DECODED_CHUNK)
            self._pending = self._z.unconsumed_tail
            if self._z.eof and self._z.unused_data:
                if not self.gzip or self._pending:
                    raise zlib.error("data after the end of the compressed stream")
                self._pending, self._z = self._z.unused_data, None  # gzip: another member follows
        except zlib.error as exc:
            raise _RefusedError(InvalidInputError(
                f"the request body is not valid {self.encoding} data (Content-Encoding: {self.encoding}): {exc}"
            )) from None
        return out

    def _finish(self) -> None:
        if self._z is None or not self._z.eof:
            raise _RefusedError(InvalidInputError(
                f"the request body ends before its {self.encoding} stream does (Content-Encoding: {self.encoding})"))

    def wrap(self, receive: Receive) -> Receive:
        """``receive`` giving the decoded body."""
        upstream_done = False

        async def decoded() -> Message:
            nonlocal upstream_done
            if self._pending:
                out = self._inflate(self._pending)
            elif not upstream_done:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                upstream_done = not message.get("more_body", False)
                out = self._inflate(message.get("body", b""))
            else:
                return await receive()  # after the end: whatever the connection says next (a disconnect)
            done = upstream_done and not self._pending
            if done:
                self._finish()
            return {"type": "http.request", "body": out, "more_body": not done}

        return decoded
