"""The V2 routes. Each model route answers both ``/models/{name}/...`` (the ``production`` alias, else the
latest version) and ``/models/{name}/versions/{version}/...`` through one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .... import __version__
from ....errors import IntegrityError, RegistryUnavailableError
from ....services.scoring import Scorer
from ... import examples
from ...deps import RegistryDep, ScorerDep, log_fields, route_path
from ...errors import V2_PREFIX, v2_error
from ...payloads import DOCUMENTED_BODIES, json_response
from ...schemas import NamePath, VersionPath
from ...security import ReadAccess
from .binary import EXTENSION, HEADER
from .inference import check_model_fields, infer_answer, read_infer_request, request_rows, score
from .schemas import (
    MATRIX_INPUT,
    PLATFORM,
    V2_ERRORS,
    V2_TAG,
    V2InferenceRequest,
    V2InferenceResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from .tensors import label_datatype

router = APIRouter(prefix=V2_PREFIX, tags=[V2_TAG])

Handler = Callable[..., Awaitable[Response]]


def model_route(
    method: str, tail: str, names: tuple[str, str], summaries: tuple[str, str], **kwargs: Any
) -> Callable[[Handler], Handler]:
    """Register ``handler(request, name, version, registry, scorer)`` on the model path and on the version
    path, with their ``names`` (the OpenAPI operation ids) and ``summaries``."""

    def register(handler: Handler) -> Handler:
        async def unversioned(request: Request, name: NamePath, registry: RegistryDep, scorer: ScorerDep) -> Response:
            return await handler(request, name, None, registry, scorer)

        async def versioned(request: Request, name: NamePath, version: VersionPath, registry: RegistryDep,
                            scorer: ScorerDep) -> Response:
            return await handler(request, name, version, registry, scorer)

        for path, endpoint, route_name, title in (
            (f"/models/{{name}}{tail}", unversioned, names[0], summaries[0]),
            (f"/models/{{name}}/versions/{{version}}{tail}", versioned, names[1], summaries[1]),
        ):
            router.add_api_route(path, endpoint, methods=[method], name=route_name, summary=title,
                                 dependencies=ReadAccess, **kwargs)
        return handler

    return register


@router.get("", summary="Server metadata (V2)", description="Name, version and protocol extensions of the server.",
            response_model=V2ServerMetadata, responses={k: V2_ERRORS[k] for k in (401, 403)},
            dependencies=ReadAccess)
async def v2_server_metadata() -> Response:
    return json_response({"name": PLATFORM, "version": __version__, "extensions": [EXTENSION]})


@router.get("/health/live", summary="Server live (V2)", description="200 while the process answers.",
            response_model=V2Live)
async def v2_live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", summary="Server ready (V2)",
            description="200 when the registry directory is readable and writable; 503 otherwise.",
            response_model=V2Ready, responses={503: V2_ERRORS[503]})
async def v2_ready(registry: RegistryDep) -> Response:
    await run_in_threadpool(registry.check)  # RegistryUnavailableError: 503
    return json_response({"ready": True})


@model_route(
    "GET", "/ready", ("v2_model_ready", "v2_model_version_ready"), ("Model ready (V2)", "Model version ready (V2)"),
    response_model=V2ModelReady,
    responses={k: V2_ERRORS[k] for k in (400, 401, 403, 404, 503)},
    description="200 when the version (default: `production`, else the latest) loads and passes its sha256 check; "
    "404 for an unknown model or version, 503 when it cannot be loaded.",
)
async def model_ready(request: Request, name: str, version: str | None, registry: RegistryDep,
                      scorer: Scorer) -> Response:
    try:
        loaded = await run_in_threadpool(registry.load, name, version)
    except (IntegrityError, RegistryUnavailableError) as exc:  # a probe: not ready, rather than a conflict
        return v2_error(503, f"model {name!r} is not ready: {exc.message}")
    return json_response({"name": loaded.name, "ready": True})


@model_route(
    "GET", "", ("v2_model_metadata", "v2_model_version_metadata"),
    ("Model metadata (V2)", "Model version metadata (V2)"), response_model=V2ModelMetadata,
    responses={k: V2_ERRORS[k] for k in (400, 401, 403, 404, 409, 503)},
    description="Inputs (`[-1, features]`, or one input per feature), outputs `predict` (labels) and "
    "`predict_proba` (`[-1, classes]`, columns in the order of `classes`), and the versions. "
    "Without a version: the `production` alias if set, else the latest.",
)
async def model_metadata(request: Request, name: str, version: str | None, registry: RegistryDep,
                         scorer: Scorer) -> Response:
    meta = await run_in_threadpool(registry.metadata, name, version)
    if version is None:
        versions = [str(m["version"]) for m in await run_in_threadpool(registry.list_versions, name)]
    else:
        versions = [str(meta.version)]
    names, classes = meta.feature_names, meta.classes
    if meta.encoding is None:
        inputs = [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, len(names)]}]
    else:  # a mixed-type table: one input per column, typed as its kind
        datatype = {"numeric": "FP64", "boolean": "BOOL", "categorical": "BYTES"}
        inputs = [{"name": c["name"], "datatype": datatype[c["kind"]], "shape": [-1]}
                  for c in meta.encoding["columns"]]
    return json_response({
        "name": name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": [{"name": "predict", "datatype": label_datatype(classes), "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]}],
        "feature_names": names,
        "classes": classes,
    })


DOCUMENTED_BODIES.add(V2InferenceRequest)


@model_route(
    "POST", "/infer", ("v2_infer", "v2_infer_version"), ("Inference (V2)", "Inference on a version (V2)"),
    response_model=V2InferenceResponse, responses=V2_ERRORS,  # every one: it reads a body and a model
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{V2InferenceRequest.__name__}"},
                             "examples": examples.V2_INFER}}}},
    description="An inference request of the V2 / Open Inference Protocol. `inputs`: one FP64/FP32/FP16/INT/UINT "
    "tensor of shape `[rows, features]` (any name; data nested or flat row-major), or one input per feature named "
    "by feature name with shape `[rows]` or `[rows, 1]`. `outputs` (default both): `predict`, the labels (at the "
    "`threshold` request parameter, else the version's stored threshold, else 0.5; multiclass: the most "
    "probable class), and `predict_proba`, `[rows, classes]` in the order of the metadata's `classes`. "
    "Output data is flat, row-major. Without a version: the `production` alias if set, else the latest. "
    "Binary tensor data extension: inputs with the `binary_data_size` parameter take their bytes from after the "
    "JSON object, whose length the `Inference-Header-Content-Length` header gives; outputs come back so when "
    "their `binary_data` parameter (or the request's `binary_data_output`) is true. `model_name` and "
    "`model_version`, when given, must match the path; other unknown top-level fields are ignored.",
)
async def infer(request: Request, name: str, version: str | None, registry: RegistryDep, scorer: Scorer) -> Response:
    asked = await read_infer_request(await request.body(), request.headers.get(HEADER), scorer.max_predict_rows)
    fields = log_fields(request.scope)
    loaded = await scorer.load(fields, name, version)
    await check_model_fields(asked.body, name, version, loaded, registry)
    X = request_rows(asked, loaded, scorer.max_predict_rows)
    outputs, parameters, index = score(asked, loaded, X)
    scorer.observe(fields, route_path(request.scope), loaded, X, index)
    response: dict[str, Any] = {
        "model_name": loaded.name,
        "model_version": str(loaded.version),
        "id": asked.body.id if asked.body.id is not None else fields.get("request_id", ""),
    }
    if parameters is not None:
        response["parameters"] = parameters
    response["outputs"] = outputs
    return infer_answer(response, asked.binary)
