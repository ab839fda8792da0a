"""Background training jobs: state, progress, result, cancellation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .bodies import json_response
from .errors import ERROR_RESPONSES
from .security import ReadAccess, WriteAccess

router = APIRouter(prefix="/jobs", tags=["training"])

JobId = Annotated[str, Path(pattern=r"^[a-f0-9]{32}$", description="Job id from the 202 answer's `Location`.")]


@router.get(
    "/{job_id}",
    summary="A background training job",
    description="State (queued, running, succeeded, failed, cancelled), progress (iteration, current loss) and, "
    "when it succeeded, the same report `POST /train` gives. Any worker answers for any job; a job whose "
    "server stopped before it finished is reported as failed.",
    responses=ERROR_RESPONSES,
    dependencies=ReadAccess,
)
async def get_job(job_id: JobId, request: Request) -> Response:
    return json_response(await run_in_threadpool(request.app.state.trainer.jobs.get, job_id))


@router.delete(
    "/{job_id}",
    status_code=202,
    summary="Cancel a background training job",
    description="Asks the job to stop; it ends as `cancelled` and stores nothing. 409 when it already ended.",
    responses=ERROR_RESPONSES,
    dependencies=WriteAccess,
)
async def cancel_job(job_id: JobId, request: Request) -> Response:
    return json_response(await run_in_threadpool(request.app.state.trainer.jobs.cancel, job_id), status_code=202)
