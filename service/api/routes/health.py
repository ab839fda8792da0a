"""Liveness and readiness probes."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...errors import RegistryUnavailableError
from ..deps import RegistryDep
from ..errors import error_response, error_responses
from ..payloads import json_response
from ..schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process answers; `pid` tells which worker process answered.",
    response_model=HealthResponse,
)
async def healthz() -> Response:
    return json_response({"status": "ok", "pid": os.getpid()})


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the registry directory is readable and writable; 503 with the reason otherwise.",
    response_model=ReadyResponse,
    responses=error_responses(503),
)
async def readyz(registry: RegistryDep) -> Response:
    try:
        await run_in_threadpool(registry.check)
    except RegistryUnavailableError as exc:
        return error_response(503, "registry_unavailable", exc.message, exc.details)
    return json_response({"status": "ready", "model_store": str(registry.root)})
