"""The V2 routes. Each model route answers both ``/models/{name}/...`` (the ``production`` alias, else the
latest version) and ``/models/{name}/versions/{version}/...`` through one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from .... import __version__
from ....errors import IntegrityError, InvalidInputError, RegistryUnavailableError
from ....services.scoring import Scorer, model_columns, predict, predict_proba
from ...deps import RegistryDep, ScorerDep, log_fields, route_path
from ...errors import v2_error, v2_error_response
from ...payloads import DOCUMENTED_BODIES, json_response, read_json_object
from ...schemas import NamePath, VersionPath
from ...security import ReadAccess
from .schemas import (
    MATRIX_INPUT,
    OUTPUTS,
    PLATFORM,
    V2_ERRORS,
    V2_TAG,
    Parameters,
    V2InferenceRequest,
    V2InferenceResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from .tensors import input_matrix, label_datatype, mixed_input_matrix, parse_infer_request


class V2Route(APIRoute):
    """A route whose errors answer ``{"error": "..."}`` (the V2 protocol's shape), not the service's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def v2_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                answer = v2_error_response(exc)
                if answer is None:
                    raise
                return answer

        return v2_handler


router = APIRouter(prefix="/v2", tags=[V2_TAG], route_class=V2Route)

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
    return json_response({"name": PLATFORM, "version": __version__, "extensions": []})


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
    ("Model metadata (V2)", "Model version metadata (V2)"), response_model=V2ModelMetadata, responses=V2_ERRORS,
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


def _threshold_parameter(parameters: Parameters | None) -> float | None:
    value = (parameters or {}).get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"parameter `threshold` must be a number from 0 to 1, not {value!r}")
    return float(value)


DOCUMENTED_BODIES.add(V2InferenceRequest)


@model_route(
    "POST", "/infer", ("v2_infer", "v2_infer_version"), ("Inference (V2)", "Inference on a version (V2)"),
    response_model=V2InferenceResponse, responses=V2_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{V2InferenceRequest.__name__}"}}}}},
    description="An inference request of the V2 / Open Inference Protocol. `inputs`: one FP64/FP32/FP16/INT/UINT "
    "tensor of shape `[rows, features]` (any name; data nested or flat row-major), or one input per feature named "
    "by feature name with shape `[rows]` or `[rows, 1]`. `outputs` (default both): `predict`, the labels (at the "
    "`threshold` request parameter, else the version's stored threshold, else 0.5; multiclass: the most "
    "probable class), and `predict_proba`, `[rows, classes]` in the order of the metadata's `classes`. "
    "Output data is flat, row-major. Without a version: the `production` alias if set, else the latest.",
)
async def infer(request: Request, name: str, version: str | None, registry: RegistryDep, scorer: Scorer) -> Response:
    body, data = parse_infer_request(await read_json_object(request))
    wanted = [o.name for o in body.outputs] if body.outputs else list(OUTPUTS)
    if len(set(wanted)) != len(wanted):
        raise InvalidInputError(f"`outputs` names an output twice: {wanted}")
    threshold = _threshold_parameter(body.parameters)
    if threshold is not None and "predict" not in wanted:
        raise InvalidInputError("parameter `threshold` applies to the `predict` output, which was not requested")
    fields = log_fields(request.scope)
    loaded = await scorer.load(fields, name, version)
    kinds = model_columns(loaded)
    if kinds is None:
        X = input_matrix(body.inputs, data, loaded.metadata.feature_names, scorer.max_predict_rows)
    else:
        X = mixed_input_matrix(body.inputs, data, kinds, scorer.max_predict_rows)
    n, classes = X.shape[0], loaded.model.classes_
    outputs: dict[str, dict[str, Any]] = {}
    parameters: Parameters | None = None
    if "predict_proba" in wanted:
        proba = predict_proba(loaded, X)
        index = proba.argmax(axis=1)
        outputs["predict_proba"] = {"name": "predict_proba", "shape": [n, proba.shape[1]], "datatype": "FP64",
                                    "data": proba.ravel()}
    if "predict" in wanted:
        labels, used, index = predict(loaded, X, threshold)
        outputs["predict"] = {"name": "predict", "shape": [n], "datatype": label_datatype(classes.tolist()),
                              "data": labels}
        if used is not None:
            parameters = {"threshold": used}
    scorer.observe(fields, route_path(request.scope), loaded, X, index)
    response: dict[str, Any] = {
        "model_name": loaded.name,
        "model_version": str(loaded.version),
        "id": body.id if body.id is not None else fields.get("request_id", ""),
    }
    if parameters is not None:
        response["parameters"] = parameters
    response["outputs"] = [outputs[o] for o in wanted]
    return json_response(response)
