"""POST /train: JSON rows or records, or a CSV upload; training runs in a worker thread or as a job."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ...config import Settings
from ...data.matrix import check_matrix_size, has_mixed_cells, input_matrix, labels_array, training_columns
from ...data.sources import open_files
from ...data.tables import Limits, read_csv_stream, stream_opener
from ...domain import JobState, TrainParams
from ...errors import ConflictError, InvalidInputError
from ...services.distributed import check_cluster_request, require_dask, train_on_cluster
from ...services.training import (
    JobControl,
    TrainingProgress,
    TrainingSet,
    check_iteration_budget,
    read_training_table,
    train_and_store,
)
from ...store.registry import ModelRegistry
from .. import examples
from ..deps import RegistryDep, SettingsDep, TrainerDep, log_fields
from ..errors import BODY, KEYED, error_responses
from ..payloads import json_response, openapi_body, read_json_object, validate_envelope
from ..schemas import JobResponse, TrainRequest, TrainResponse
from ..security import WriteAccess

router = APIRouter(tags=["training"], dependencies=WriteAccess)

#: The form fields besides the file, as the JSON body's (its names, bounds, defaults and descriptions).
_FORM_FIELDS = ("model", "validation_fraction", "calibration", "description")
_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file", "target", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV with a header row."},
        "target": {"type": "string", "description": "Name of the label column."},
        "params": {"type": "string", "description": "Engine hyperparameters as a JSON object."},
        "encoding": {"type": "string", "description": "How a mixed-type table is encoded, as a JSON object "
                     "(see `encoding` in the JSON body)."},
        **{name: TrainRequest.model_json_schema()["properties"][name] for name in _FORM_FIELDS},
    },
}


@router.post(
    "/train",
    status_code=201,
    summary="Train a new model version",
    responses={
        202: {"description": "Accepted as a background job: `GET /jobs/{id}` (the `Location`) follows it.",
              "model": JobResponse,
              "headers": {"Location": {"description": "`/jobs/{id}`", "schema": {"type": "string"}}}},
        # 409: the first request with the same Idempotency-Key still runs; 503: the registry or a data source.
        **error_responses(*KEYED, *BODY, 409, 429, 503),
    },
    description=(
        "Fits a logistic-regression model and stores it as the next version of `model`. Send JSON with "
        "`features` (rows) or `records` (objects by feature name) and `labels`; or JSON with `data`: the `uri` of "
        "a CSV or Parquet table (a path under LOGREG_DATA_ROOTS, or `s3://bucket/key`, a glob or a prefix of part "
        "files), its `target` column and optionally `format` and `features` (with LOGREG_DASK_SCHEDULER set, or "
        "`\"compute\": \"dask\"`, the table trains on the Dask cluster, whose workers read it); or "
        "`multipart/form-data` with a CSV `file`, its `target` column and `model` (`curl -F file=@data.csv "
        "-F target=y -F model=m`; the upload is spooled to disk, up to LOGREG_MAX_UPLOAD_BYTES). A stratified "
        "`validation_fraction` is held out for validation metrics. Convergence warnings are returned in "
        "`warnings`. Training runs in a worker thread: predictions keep flowing; large sets and every `data` "
        "source that is large run as background jobs, whose progress (`phase`, rows and bytes read, iteration, "
        "loss, time left) `GET /jobs/{id}` shows."
    ),
    response_model=TrainResponse,
    openapi_extra=openapi_body(TrainRequest, multipart=_MULTIPART_SCHEMA, json_examples=examples.TRAIN),
)
async def train(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    trainer: TrainerDep,
    background: Annotated[
        bool | None,
        Query(description="Run as a background job (202 + `Location: /jobs/{id}`). Default: only for training "
              "sets over LOGREG_BACKGROUND_TRAIN_CELLS values (for a `data` URI: its size in bytes / 8)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=200,
               description="A retried request with the same key returns the first one's job (background) or "
               "report (synchronous, with `Idempotent-Replayed: true`) instead of training again; the same key "
               "with another request is a 422."),
    ] = None,
) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        spec = await _from_csv_form(request, settings, digest=idempotency_key is not None)
    else:
        obj = await read_json_object(request)
        envelope, bulk = validate_envelope(TrainRequest, obj)
        if envelope.data is not None:
            spec = await run_in_threadpool(_from_uri, envelope, bulk, settings)
        else:
            spec = await run_in_threadpool(_from_json, envelope, bulk)
        if idempotency_key is not None:
            spec.digest = await run_in_threadpool(json_digest, obj)
    fields = log_fields(request.scope)
    fields["model"] = spec.name
    if spec.X is not None:  # already read: refused now if too large, before any job is made
        fields["rows"] = int(spec.X.shape[0])
        trainer.monitoring.rows_observed("/train", spec.X.shape[0])
        check_matrix_size(*spec.X.shape, settings.max_train_bytes)
    check_iteration_budget(spec.options["params"], settings.max_iter_limit)

    def work(control: JobControl) -> dict[str, Any]:
        if spec.run is not None:  # on a cluster: the data never comes here
            report = spec.run(registry, control)
            trainer.monitoring.rows_observed("/train", report["n_samples"])
            return report
        data = spec.load(control)
        try:
            if spec.X is None:
                trainer.monitoring.rows_observed("/train", data.X.shape[0])
            return train_and_store(registry, spec.name, data.X, data.y, feature_names=data.names,
                                   progress=control, columns=data.columns, **spec.options)
        finally:
            data.close()

    in_background = background if background is not None else spec.cells > settings.background_train_cells
    if in_background:
        record, created = await run_in_threadpool(trainer.jobs.create, spec.name, idempotency_key, spec.digest)
        if created:
            trainer.start_job(record.id, spec.name, work)
        return json_response(record.model_dump(mode="json"), status_code=202,
                             headers={"Location": f"/jobs/{record.id}"})
    job_id = None
    if idempotency_key is not None:  # a retried synchronous training answers with the first one's report
        record, created = await run_in_threadpool(trainer.jobs.create, spec.name, idempotency_key, spec.digest,
                                                  JobState.RUNNING)
        if not created:
            if record.state is JobState.SUCCEEDED and record.result is not None:
                return json_response(record.result, status_code=201, headers={"Idempotent-Replayed": "true"})
            raise ConflictError(f"the first request with this Idempotency-Key is still running (job {record.id}); "
                                "retry once it has finished", {"job": record.id})
        job_id = record.id
    report = await run_in_threadpool(trainer.run_now, spec.name, work, job_id)
    fields["version"], fields["rows"] = report["version"], report["n_samples"]
    return json_response(report, status_code=201)


@dataclass
class _Training:
    """What to train: the model's name, the engine and report options, and how to get the data (already read,
    or read inside the training, where its progress is seen)."""

    name: str
    options: dict[str, Any]
    load: Callable[[TrainingProgress], TrainingSet]
    cells: int  # the size that decides on a background job
    X: Any = field(default=None)
    digest: str | None = None  # of the request, kept with an Idempotency-Key
    run: Callable[[ModelRegistry, TrainingProgress], dict[str, Any]] | None = None  # trains elsewhere (Dask)


def _options(envelope: TrainRequest, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "params": envelope.params.model_dump() if params is None else params,
        "validation_fraction": envelope.validation_fraction,
        "calibration": envelope.calibration,
        "description": envelope.description,
        "tags": envelope.tags,
        "encoding": envelope.encoding,
        **extra,
    }


def _in_memory(name: str, options: dict[str, Any], data: TrainingSet) -> _Training:
    return _Training(name, options, lambda _: data, int(data.X.size), data.X)


def _from_json(envelope: TrainRequest, bulk: dict[str, Any]) -> _Training:
    """The training from a validated JSON body of rows: numbers to numpy, off the event loop. Rows of plain
    numbers train as they are; text, booleans or nulls make a mixed-type table (as does an `encoding`)."""
    if envelope.compute == "dask":
        raise InvalidInputError("\"compute\": \"dask\" trains a table at a `data` URI, which the Dask workers read "
                                "themselves; rows in the body train in this service", {"field": "compute"})
    if "labels" not in bulk:
        raise InvalidInputError("`labels` is required: one label per row", {"field": "labels"})
    names = envelope.feature_names or _record_names(bulk.get("records"))
    features, records = bulk.get("features"), bulk.get("records")
    columns = None
    if envelope.encoding.given():
        X, names, columns = training_columns(features, records, names, envelope.encoding.declared())
    else:
        try:
            X = input_matrix(features, records, names)
        except InvalidInputError:
            if not has_mixed_cells(features if features is not None else records):
                raise  # not a table of other kinds of cells: the error of plain numbers says what is wrong
            X, names, columns = training_columns(features, records, names, envelope.encoding.declared())
    y = labels_array(bulk.get("labels"), X.shape[0])
    names = names or [f"x{i}" for i in range(X.shape[1])]
    return _in_memory(envelope.model, _options(envelope), TrainingSet(X, y, names, columns))


def _from_uri(envelope: TrainRequest, bulk: dict[str, Any], settings: Settings) -> _Training:
    """The training from a `data` URI: the source is resolved (and its access checked) now, read in the job."""
    data = envelope.data
    assert data is not None
    if bulk or envelope.feature_names is not None:
        raise InvalidInputError("give `data` or rows (`features`/`records` with `labels`), not both",
                                {"field": "data"})
    on_dask = _on_dask(envelope, settings)
    files = open_files(data.uri, data.format, roots=settings.data_root_paths(),
                       s3_endpoint_url=settings.s3_endpoint_url)
    tags = {"source": data.uri, **envelope.tags}
    if on_dask:
        assert settings.dask_scheduler is not None
        options = _options(envelope, tags=tags)
        check_cluster_request(options["params"], envelope.encoding)  # refused now, not in a job

        def run(registry: ModelRegistry, progress: TrainingProgress) -> dict[str, Any]:
            return train_on_cluster(registry, envelope.model, files, data.target, data.features,
                                    scheduler=settings.dask_scheduler, s3_endpoint_url=settings.s3_endpoint_url,
                                    connect_timeout=settings.dask_connect_timeout_seconds,
                                    max_iter_limit=settings.max_iter_limit, progress=progress, **options)

        return _Training(envelope.model, options, _not_here, files.total_bytes // 8, run=run)

    def load(progress: TrainingProgress) -> TrainingSet:
        return read_training_table(files, data.target, data.features, settings.max_train_bytes, progress,
                                   envelope.encoding, settings.train_memory_bytes, settings.scratch_path())

    return _Training(envelope.model, _options(envelope, tags=tags), load, files.total_bytes // 8)


def _on_dask(envelope: TrainRequest, settings: Settings) -> bool:
    """Whether a `data` training runs on the Dask cluster: asked for, or the default where one is configured.
    Asked for without a scheduler is a 422; with one but without Dask installed, a 503 saying how to install it."""
    if envelope.compute == "local" or (envelope.compute == "auto" and not settings.dask_scheduler):
        return False
    if not settings.dask_scheduler:
        raise InvalidInputError("\"compute\": \"dask\" needs a Dask cluster, and this service has none: set "
                                "LOGREG_DASK_SCHEDULER to its scheduler's address (tcp://host:8786)",
                                {"field": "compute", "setting": "LOGREG_DASK_SCHEDULER"})
    require_dask()
    return True


def _not_here(progress: TrainingProgress) -> TrainingSet:
    raise AssertionError("a training on the cluster reads no rows here")


def _record_names(records: Any) -> list[str] | None:
    """Feature names taken from the first record, in its key order (records train by name)."""
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return list(records[0].keys())
    return None


async def _from_csv_form(request: Request, settings: Settings, digest: bool = False) -> _Training:
    """The training from a multipart upload: the CSV is read from the spooled file (never whole in memory),
    now, since the upload is removed once the form is closed. ``digest``: also hash the request (its fields
    and the file's bytes), for an Idempotency-Key."""
    async with request.form() as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("multipart training needs a CSV `file` field", {"field": "file"})
        fields: dict[str, str] = {}
        for name in ("target", "params", "encoding", *_FORM_FIELDS):
            value = form.get(name)
            if isinstance(value, UploadFile):
                raise InvalidInputError(f"`{name}` must be a plain form field, not a file", {"field": name})
            if value:
                fields[name] = value
        target = fields.pop("target", None)
        if not target:
            raise InvalidInputError("multipart training needs a `target` field naming the label column")
        try:
            params = TrainParams.model_validate(orjson.loads(fields.pop("params", "{}")))
            encoding = orjson.loads(fields.pop("encoding", "{}"))
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"`params` and `encoding` must be JSON objects: {exc}") from None
        # The form's text fields, validated by the JSON body's model (pydantic reads "0.3" as 0.3).
        envelope = TrainRequest.model_validate(
            {**fields, "encoding": encoding, "tags": {"source": Path(upload.filename or "upload.csv").name}}
        )
        limits = Limits(max_bytes=settings.max_train_bytes, memory_bytes=settings.train_memory_bytes,
                        scratch_dir=settings.scratch_path())
        table = await run_in_threadpool(partial(read_csv_stream, plan=envelope.encoding.declared()),
                                        stream_opener(upload.file), upload.size or 0, target=target, limits=limits)
        request_digest = None
        if digest:
            request_digest = await run_in_threadpool(
                form_digest, {**fields, "target": target, "params": params.model_dump_json()}, upload.file)
    assert table.labels is not None
    data = TrainingSet(table.X, table.labels, table.feature_names, table.columns, table.scratch)
    spec = _in_memory(envelope.model, _options(envelope, params.model_dump()), data)
    spec.digest = request_digest
    return spec


def json_digest(obj: dict[str, Any]) -> str:
    """sha256 of a JSON request, the same whatever the order of its keys."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def form_digest(fields: dict[str, Any], file: Any) -> str:
    """sha256 of a multipart request: its fields, then its file's bytes (read again from the start)."""
    h = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    file.seek(0)
    while chunk := file.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()
