"""Liveness and readiness probes."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...errors import RegistryUnavailableError
from ..deps import RegistryDep
from ..errors import ERROR_RESPONSES, error_response
from ..payloads import json_response

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process answers; `pid` tells which worker process answered.",
)
async def healthz() -> Response:
    return json_response({"status": "ok", "pid": os.getpid()})


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the registry directory is readable and writable; 503 with the reason otherwise.",
    responses={503: ERROR_RESPONSES[503]},
)
async def readyz(registry: RegistryDep) -> Response:
    try:
        await run_in_threadpool(registry.check)
    except RegistryUnavailableError as exc:
        return error_response(503, "registry_unavailable", exc.message, exc.details)
    return json_response({"status": "ready", "model_store": str(registry.root)})
