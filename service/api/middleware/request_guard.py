"""ASGI middleware that refuses what a browser can be made to send on a user's behalf.

* ``Host`` must name this service (``LOGREG_ALLOWED_HOSTS``; bound to loopback, the localhost names only), else
  421 Misdirected Request:
  a page that makes its own domain resolve to 127.0.0.1 (DNS rebinding) cannot read or write through it.
* A state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as coming from another site
  (``Origin`` of another host, or ``Sec-Fetch-Site: cross-site``) is refused unless that origin is listed in
  ``LOGREG_ALLOWED_ORIGINS``: another site's page cannot train, store a threshold or move an alias on a
  service the user can reach, keys or no keys.
* Such a request's body must not be ``text/plain`` or a URL-encoded form, the types a page may send to any
  site without asking first; multipart forms only to ``POST /train`` (the upload), where the origin check
  applies too. Clients that send no ``Content-Type`` at all (tritonclient) are taken as JSON.

Refusals answer in the error shape of the path's dialect.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import error_answer

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Content types a page may send cross-site without a preflight; never a body this service reads.
_SIMPLE_TYPES = ("text/plain", "application/x-www-form-urlencoded")
#: The one route that takes a multipart form (a CSV upload).
_MULTIPART_PATHS = frozenset({"/train"})


def _host_name(value: str) -> str:
    """The host of a ``Host`` header or an origin, lower-case, without port or brackets."""
    if value.count(":") > 1 and "[" not in value:  # a bare IPv6 address
        return value.lower()
    host = urlsplit(f"//{value}").hostname if "://" not in value else urlsplit(value).hostname
    return (host or "").lower()


class RequestGuard:
    """Refuse foreign ``Host`` headers, cross-site state changes and bodies of the types forms send."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] | None, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = None if allowed_hosts is None else {_host_name(h) for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _READ}
        host = headers.get(b"host", "")
        refusal = None
        if self.hosts is not None and _host_name(host) not in self.hosts:
            refusal = HTTPException(421, f"Host {host!r} is not a name this service answers to "
                                    "(LOGREG_ALLOWED_HOSTS)")
        elif scope["method"] in UNSAFE_METHODS:
            refusal = self._cross_site(headers, host) or self._body_type(headers, scope["path"])
        if refusal is not None:
            answer = error_answer(scope, refusal)
            answer.headers["connection"] = "close"
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: dict[bytes, str], host: str) -> HTTPException | None:
        origin = headers.get(b"origin")
        if origin is not None and origin.rstrip("/").lower() not in self.origins:
            parts = urlsplit(origin)
            same = origin != "null" and f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}" == (
                host.lower())
            if not same:
                return HTTPException(403, f"a request from another site (Origin {origin!r}) may not change anything "
                                     "here; list the origin in LOGREG_ALLOWED_ORIGINS to allow it")
        if origin is None and headers.get(b"sec-fetch-site") == "cross-site":
            return HTTPException(403, "a request from another site may not change anything here")
        return None

    def _body_type(self, headers: dict[bytes, str], path: str) -> HTTPException | None:
        media = headers.get(b"content-type", "").split(";", 1)[0].strip().lower()
        if media in _SIMPLE_TYPES or (media == "multipart/form-data" and path not in _MULTIPART_PATHS):
            return HTTPException(415, f"Content-Type {media!r} is not a body this route reads: send "
                                 "application/json (text/csv where documented)")
        return None


_READ = frozenset({b"host", b"origin", b"sec-fetch-site", b"content-type"})
