"""API keys: Bearer tokens checked in constant time; mutating routes always, reads when configured."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import State

from ..errors import LogregError

bearer = HTTPBearer(auto_error=False, description="An API key from LOGREG_API_KEYS, sent as a Bearer token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class AuthError(LogregError):
    """Missing (401) or wrong (403) API key."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    if credentials is None or not credentials.credentials:
        raise AuthError("this route needs an API key: send `Authorization: Bearer <key>`", 401)
    if not key_valid(keys, credentials.credentials):
        raise AuthError("the API key is not valid", 403)


def key_valid(keys: list[bytes], token: str) -> bool:
    """Whether ``token`` is one of the keys (given as sha256 digests), compared in constant time."""
    given = hashlib.sha256(token.encode()).digest()
    matched = False
    for key in keys:  # digests of equal length, each compared: timing tells neither the key nor its length
        matched |= hmac.compare_digest(given, key)
    return matched


def read_allowed(state: State, authorization: str | None) -> bool:
    """Whether a read route may answer a request with this ``Authorization`` header: the scoring fast
    path's check (when it says no, the route's dependency answers the 401 or 403 that says why)."""
    keys: list[bytes] = state.api_keys
    if not keys or not state.settings.protect_reads:
        return True
    scheme, token = get_authorization_scheme_param(authorization)
    return scheme.lower() == "bearer" and bool(token) and key_valid(keys, token)


async def require_write_key(request: Request, credentials: Credentials) -> None:
    """Mutating routes: a key is required whenever keys are configured."""
    _check(request, credentials)


async def require_read_key(request: Request, credentials: Credentials) -> None:
    """Prediction and read routes: a key is required only with ``LOGREG_PROTECT_READS=true``."""
    if request.app.state.settings.protect_reads:
        _check(request, credentials)


WriteAccess = [Depends(require_write_key)]
ReadAccess = [Depends(require_read_key)]
