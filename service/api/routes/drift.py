"""``GET /models/{name}/versions/{version}/drift``: a version's drift as the answering worker sees it."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..deps import DriftDep, RegistryDep
from ..errors import KEYED, REGISTRY, error_responses
from ..payloads import json_response
from ..schemas import DriftResponse, NamePath, VersionPath
from ..security import ReadAccess

router = APIRouter(prefix="/models", tags=["registry"])


@router.get(
    "/{name}/versions/{version}/drift",
    summary="Feature drift of a version",
    description="As seen by the worker process that answers (each worker keeps its own window): the population "
    "stability index per feature over its most recent predicted rows (`LOGREG_DRIFT_WINDOW_ROWS`; training "
    "deciles as bins; below 0.1 stable, 0.1-0.25 moderate, above 0.25 significant), the rows and values it "
    "saw outside the training range, and the training statistics. 404 for versions trained before "
    "statistics were recorded.",
    response_model=DriftResponse,
    responses=error_responses(*KEYED, *REGISTRY),
    dependencies=ReadAccess,
)
async def version_drift(name: NamePath, version: VersionPath, registry: RegistryDep, drift: DriftDep) -> Response:
    meta = await run_in_threadpool(partial(registry.metadata, name, version, full=True))
    return json_response(await run_in_threadpool(drift.report, name, meta.version, meta))
