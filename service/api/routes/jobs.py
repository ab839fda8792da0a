"""Background training jobs: state, progress, result, cancellation."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..deps import TrainerDep
from ..errors import KEYED, REGISTRY, error_responses
from ..payloads import json_response
from ..schemas import JobCancelResponse, JobIdPath, JobResponse
from ..security import ReadAccess, WriteAccess

router = APIRouter(prefix="/jobs", tags=["training"])


@router.get(
    "/{job_id}",
    summary="A background training job",
    description="State (queued, running, succeeded, failed, cancelled), progress (the phase: reading, fitting, "
    "evaluating or storing; rows and bytes read of the total; the iteration of at most `max_iter` and the loss; "
    "the time left) and, "
    "when it succeeded, the same report `POST /train` gives. Any worker answers for any job; a job whose "
    "server stopped before it finished is reported as failed.",
    response_model=JobResponse,
    responses=error_responses(*KEYED, *REGISTRY),
    dependencies=ReadAccess,
)
async def get_job(job_id: JobIdPath, trainer: TrainerDep) -> Response:
    job = await run_in_threadpool(trainer.jobs.get, job_id)
    return json_response(job.model_dump(mode="json"))


@router.delete(
    "/{job_id}",
    status_code=202,
    summary="Cancel a background training job",
    description="Asks the job to stop; it ends as `cancelled` and stores nothing. 409 when it already ended.",
    response_model=JobCancelResponse,
    responses=error_responses(*KEYED, *REGISTRY),
    dependencies=WriteAccess,
)
async def cancel_job(job_id: JobIdPath, trainer: TrainerDep) -> Response:
    return json_response(await run_in_threadpool(trainer.jobs.cancel, job_id), status_code=202)
