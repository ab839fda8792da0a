"""API keys: Bearer tokens checked in constant time; mutating routes always, reads and the scrape unless opened."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from ..errors import AuthenticationError, PermissionDeniedError
from .deps import Services, services_of

bearer = HTTPBearer(auto_error=False, description="An API key from LOGREG_API_KEYS, sent as a Bearer token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def key_digests(keys: Sequence[str]) -> tuple[bytes, ...]:
    """How keys are kept in memory: their sha256 digests."""
    return tuple(hashlib.sha256(k.encode()).digest() for k in keys)


def key_valid(keys: Sequence[bytes], token: str) -> bool:
    """Whether ``token`` is one of the keys (given as sha256 digests), compared in constant time."""
    given = hashlib.sha256(token.encode()).digest()
    matched = False
    for key in keys:  # digests of equal length, each compared: timing tells neither the key nor its length
        matched |= hmac.compare_digest(given, key)
    return matched


def _check(services: Services, credentials: HTTPAuthorizationCredentials | None) -> None:
    if not services.api_keys:
        return
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("this route needs an API key: send `Authorization: Bearer <key>`")
    if not key_valid(services.api_keys, credentials.credentials):
        raise PermissionDeniedError("the API key is not valid")


def read_allowed(services: Services, authorization: str | None) -> bool:
    """Whether a read route may answer a request with this ``Authorization`` header: the scoring fast
    path's check (when it says no, the route's dependency answers the 401 or 403 that says why)."""
    if not services.api_keys or not services.protect_reads:
        return True
    scheme, token = get_authorization_scheme_param(authorization)
    return scheme.lower() == "bearer" and bool(token) and key_valid(services.api_keys, token)


async def require_write_key(request: Request, credentials: Credentials) -> None:
    """Mutating routes: a key is required whenever keys are configured."""
    _check(services_of(request), credentials)


async def require_read_key(request: Request, credentials: Credentials) -> None:
    """Prediction and read routes: a key is required whenever keys are set, unless reads were opened
    (``LOGREG_PROTECT_READS=false``)."""
    services = services_of(request)
    if services.protect_reads:
        _check(services, credentials)


async def require_monitoring_key(request: Request, credentials: Credentials) -> None:
    """The Prometheus scrape: as reads, unless ``LOGREG_PROTECT_MONITORING`` says otherwise."""
    services = services_of(request)
    if services.protect_monitoring:
        _check(services, credentials)


WriteAccess = [Depends(require_write_key)]
ReadAccess = [Depends(require_read_key)]
MonitoringAccess = [Depends(require_monitoring_key)]
