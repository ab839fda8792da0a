"""POST /train: JSON rows or records, or a CSV upload; training runs in a worker thread or as a job."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...data.csv_text import read_labelled_csv
from ...data.matrix import input_matrix, labels_array
from ...domain import TrainParams
from ...errors import InvalidInputError
from ...services.training import JobControl, check_training_limits, train_and_store
from ..deps import RegistryDep, SettingsDep, TrainerDep, log_fields
from ..errors import ERROR_RESPONSES
from ..payloads import json_response, openapi_body, read_json_object, validate_envelope
from ..schemas import TrainRequest, TrainResponse
from ..security import WriteAccess

router = APIRouter(tags=["training"], dependencies=WriteAccess)

_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file", "target", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV with a header row."},
        "target": {"type": "string", "description": "Name of the label column."},
        "model": {"type": "string", "description": "Model name."},
        "params": {"type": "string", "description": "Engine hyperparameters as a JSON object."},
        "validation_fraction": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.2},
        "calibration": {"type": "string", "enum": ["none", "platt", "isotonic"], "default": "none",
                        "description": "Calibrate binary probabilities on the validation split."},
        "description": {"type": "string"},
    },
}


@router.post(
    "/train",
    status_code=201,
    summary="Train a new model version",
    responses={**ERROR_RESPONSES, 202: {"description": "Accepted as a background job; see `Location`."},
               429: {"description": "Too many trainings running; retry after `Retry-After` seconds."}},
    description=(
        "Fits a logistic-regression model and stores it as the next version of `model`. Send JSON with "
        "`features` (rows) or `records` (objects by feature name) and `labels`, or `multipart/form-data` "
        "with a CSV `file`, its `target` column and `model` (`curl -F file=@data.csv -F target=y -F "
        "model=m`). A stratified `validation_fraction` is held out for validation metrics. Convergence "
        "warnings are returned in `warnings`. Training runs in a worker thread: predictions keep flowing."
    ),
    response_model=TrainResponse,
    openapi_extra=openapi_body(TrainRequest, multipart=_MULTIPART_SCHEMA),
)
async def train(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    trainer: TrainerDep,
    background: Annotated[
        bool | None,
        Query(description="Run as a background job (202 + `Location: /jobs/{id}`). Default: only for training "
              "sets over LOGREG_BACKGROUND_TRAIN_CELLS values."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=200,
               description="Background jobs: a retried request with the same key returns the first job."),
    ] = None,
) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        job = await _from_csv_form(request)
    else:
        obj = await read_json_object(request)
        envelope, bulk = validate_envelope(TrainRequest, obj)
        job = await run_in_threadpool(_from_json, envelope, bulk)
    name, X, y = job.pop("name"), job.pop("X"), job.pop("y")
    fields = log_fields(request.scope)
    fields["model"], fields["rows"] = name, int(X.shape[0])
    trainer.monitoring.rows_observed("/train", X.shape[0])
    check_training_limits(X, job["params"], settings.max_train_cells, settings.max_iter_limit)

    def work(control: JobControl) -> dict[str, Any]:
        return train_and_store(registry, name, X, y, callback=control, **job)

    in_background = background if background is not None else X.size > settings.background_train_cells
    if in_background:
        record, created = await run_in_threadpool(trainer.jobs.create, name, idempotency_key)
        if created:
            trainer.start_job(record.id, name, work)
        return json_response(record.model_dump(mode="json"), status_code=202,
                             headers={"Location": f"/jobs/{record.id}"})
    report = await run_in_threadpool(trainer.run_now, name, work)
    fields["version"] = report["version"]
    return json_response(report, status_code=201)


def _from_json(envelope: TrainRequest, bulk: dict[str, Any]) -> dict[str, Any]:
    """The training job from a validated JSON body: numbers to numpy, off the event loop."""
    names = envelope.feature_names or _record_names(bulk.get("records"))
    X = input_matrix(bulk.get("features"), bulk.get("records"), names)
    return {
        "name": envelope.model,
        "X": X,
        "y": labels_array(bulk.get("labels"), X.shape[0]),
        "feature_names": names,
        "params": envelope.params.model_dump(),
        "validation_fraction": envelope.validation_fraction,
        "calibration": envelope.calibration,
        "description": envelope.description,
        "tags": envelope.tags,
    }


def _record_names(records: Any) -> list[str] | None:
    """Feature names taken from the first record, in its key order (records train by name)."""
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return list(records[0].keys())
    return None


async def _from_csv_form(request: Request) -> dict[str, Any]:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInputError("multipart training needs a CSV `file` field", {"field": "file"})
    target = form.get("target")
    name = form.get("model")
    if not isinstance(target, str) or not target:
        raise InvalidInputError("multipart training needs a `target` field naming the label column")
    raw_params = form.get("params")
    try:
        given = orjson.loads(raw_params) if isinstance(raw_params, str) and raw_params else {}
        params = TrainParams.model_validate(given)
        envelope = TrainRequest.model_validate(
            {
                "model": name,
                "features": [],
                "labels": [],
                "validation_fraction": float(form.get("validation_fraction") or 0.2),
                "calibration": form.get("calibration") or "none",
                "description": form.get("description") or None,
            }
        )
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"`params` is not a JSON object: {exc}") from None
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise InvalidInputError(f"`validation_fraction` must be a number: {exc}") from None
    X, y, names = await run_in_threadpool(read_labelled_csv, await upload.read(), target)
    return {
        "name": envelope.model,
        "X": X,
        "y": y,
        "feature_names": names,
        "params": params.model_dump(),
        "validation_fraction": envelope.validation_fraction,
        "calibration": envelope.calibration,
        "description": envelope.description,
        "tags": {"source": upload.filename or "upload.csv"},
    }
