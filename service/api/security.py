"""API keys: Bearer tokens checked in constant time; mutating routes always, reads when configured."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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
    given = hashlib.sha256(credentials.credentials.encode()).digest()
    matched = False
    for key in keys:  # digests of equal length, each compared: timing tells neither the key nor its length
        matched |= hmac.compare_digest(given, key)
    if not matched:
        raise AuthError("the API key is not valid", 403)


async def require_write_key(request: Request, credentials: Credentials) -> None:
    """Mutating routes: a key is required whenever keys are configured."""
    _check(request, credentials)


async def require_read_key(request: Request, credentials: Credentials) -> None:
    """Prediction and read routes: a key is required only with ``LOGREG_PROTECT_READS=true``."""
    if request.app.state.settings.protect_reads:
        _check(request, credentials)


WriteAccess = [Depends(require_write_key)]
ReadAccess = [Depends(require_read_key)]
