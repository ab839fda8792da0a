"""The standard serving dialects, beside our own API: clients written for other servers work unchanged.

* **V2 / Open Inference Protocol** over REST (KServe, Triton, MLServer, Seldon): ``GET /v2``, the health
  and readiness probes, model metadata, and ``POST /v2/models/{name}[/versions/{v}]/infer``. A request
  sends one FP/INT tensor of shape ``[rows, features]`` (any name; ``input-0`` in the metadata), nested or
  flat row-major, or one input per feature named by feature name (shape ``[rows]`` or ``[rows, 1]``, the
  pandas codec's layout). Outputs are ``predict`` (labels, at the version's stored threshold unless the
  ``threshold`` request parameter says otherwise) and ``predict_proba`` (``[rows, classes]``, FP64); both
  when ``outputs`` is omitted. Every error answers ``{"error": "<message>"}`` as the protocol says: 400 for
  invalid input, 404 for an unknown model or version, 413 over a limit, 401/403 without a valid key.
* **MLflow scoring server**: ``POST /invocations`` with ``dataframe_split``, ``dataframe_records``,
  ``instances`` or ``inputs`` (JSON) or a ``text/csv`` body, answering ``{"predictions": [...]}``; plus
  ``GET /ping`` and ``GET /health``. The model is ``?model=NAME`` (optional when the registry holds one
  model). Errors keep the service's own shape (MLflow clients look at the status code).

Both go through :mod:`service.operations` like ``/predict``: same threshold, calibration, limits,
monitoring and API keys (``LOGREG_PROTECT_READS`` covers inference and metadata; probes stay open).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, operations
from ..errors import (
    IntegrityError,
    InvalidInputError,
    LimitExceededError,
    LogregError,
    RegistryUnavailableError,
)
from ..schemas import MODEL_NAME_PATTERN, Label
from . import scoring
from .bodies import CSV_BODY, DOCUMENTED_BODIES, is_csv, json_response, read_csv_matrix, read_json_object
from .errors import ERROR_RESPONSES, status_of, validation_problems
from .security import AuthError, ReadAccess

V2_TAG = "open inference protocol (v2)"
MLFLOW_TAG = "mlflow scoring server"

#: The name the model metadata gives the single matrix input (KServe's examples send ``input-0``).
MATRIX_INPUT = "input-0"
PLATFORM = "logreg-service"
OUTPUTS = ("predict", "predict_proba")

#: Request datatypes taken as numbers, and the range of the integer ones.
_INT_TYPES = {f"{p}INT{b}": (np.iinfo(f"{p.lower()}int{b}").min, np.iinfo(f"{p.lower()}int{b}").max)
              for p in ("", "U") for b in (8, 16, 32, 64)}
_FLOAT_TYPES = ("FP16", "FP32", "FP64")
Datatype = Literal["FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"]
Parameters = dict[str, str | float | bool]


# -- V2 schemas (the protocol's JSON, for the OpenAPI page; the bulky `data` is parsed by hand) -----------
class V2Error(BaseModel):
    """The protocol's error answer."""

    error: str = Field(description="What went wrong.", examples=["model 'x' not found"])


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size (the rows).")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="Versions of the model (all of them, or the one asked for).")
    platform: str
    inputs: list[V2MetadataTensor] = Field(
        description=f"One `[-1, features]` tensor (`{MATRIX_INPUT}`; any input name is accepted). Alternatively "
        "send one input per feature, named as in `feature_names`, each of shape `[rows]` or `[rows, 1]`."
    )
    outputs: list[V2MetadataTensor]
    feature_names: list[str] = Field(description="Extension: the model's features, in column order.")
    classes: list[Label] = Field(description="Extension: the class labels, the column order of `predict_proba`.")


class V2RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"`{MATRIX_INPUT}` (any name) for a `[rows, features]` tensor, or a feature name.")
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="`[rows, features]`; per feature `[rows]`.")
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] = Field(description="Numbers, nested as `shape` says or flat in row-major order.")


class V2RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["predict", "predict_proba"]
    parameters: Parameters | None = None


class V2InferenceRequest(BaseModel):
    """An inference request of the V2 protocol."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"inputs": [{"name": MATRIX_INPUT, "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0], [3.0, 0.5]]}]},
            {"id": "42", "inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1.0, 3.0]},
                                    {"name": "b", "shape": [2], "datatype": "FP32", "data": [2.0, 0.5]}],
             "outputs": [{"name": "predict_proba"}]},
        ]},
    )

    id: str | None = Field(None, description="Echoed in the response.")
    parameters: Parameters | None = Field(
        None, description="Extension: `threshold` (0..1) for the `predict` output of a binary model; other "
        "parameters are ignored.",
    )
    inputs: list[V2RequestInput] = Field(min_length=1)
    outputs: list[V2RequestOutput] | None = Field(None, description="Default: `predict` and `predict_proba`.")


class V2ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Label | float] = Field(description="Flat, row-major.")


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str
    parameters: Parameters | None = None
    outputs: list[V2ResponseOutput]


# -- V2 errors: `{"error": "..."}` from every route of the V2 router -------------------------------------
V2_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "model": V2Error}
    for status, text in (
        (400, "Invalid request: the message says what and where"),
        (401, "An API key is required (`Authorization: Bearer <key>`)"),
        (403, "The API key is not valid"),
        (404, "Unknown model, version or alias"),
        (409, "A stored version failed its integrity check"),
        (413, "Batch over the configured limits"),
        (503, "The registry directory cannot be read"),
    )
}


def v2_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status_code=status, headers=headers)


def _as_v2_error(exc: Exception) -> Response | None:
    """The protocol's answer to an exception, or None to let the app's handlers deal with it."""
    if isinstance(exc, AuthError):
        return v2_error(exc.status, exc.message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, LogregError):  # the app's statuses, but the protocol says 400 for invalid input
        status = status_of(exc)
        return v2_error(400 if status == 422 else status, exc.message)
    if isinstance(exc, RequestValidationError):
        return v2_error(400, validation_problems(list(exc.errors()))[1])
    if isinstance(exc, ValidationError):
        return v2_error(400, validation_problems(exc.errors(include_url=False, include_input=False))[1])
    if isinstance(exc, StarletteHTTPException) and exc.status_code < 500:
        return v2_error(400 if exc.status_code == 422 else exc.status_code, str(exc.detail))
    return None  # e.g. the body-size limit's own signal, or a bug: the app answers it


class V2Route(APIRoute):
    """A route whose errors answer ``{"error": "..."}`` (the V2 protocol's shape), not the service's envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def v2_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                answer = _as_v2_error(exc)
                if answer is None:
                    raise
                return answer

        return v2_handler


v2 = APIRouter(prefix="/v2", tags=[V2_TAG], route_class=V2Route)

NamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.", examples=["breast-cancer"])]
VersionPath = Annotated[str, Path(description="Version number or alias.", examples=["1", "production"])]


# -- V2 routes --------------------------------------------------------------------------------------------
@v2.get("", summary="Server metadata (V2)", description="Name, version and protocol extensions of the server.",
        response_model=V2ServerMetadata, responses={k: V2_ERRORS[k] for k in (401, 403)}, dependencies=ReadAccess)
async def v2_server_metadata() -> Response:
    return json_response({"name": PLATFORM, "version": __version__, "extensions": []})


@v2.get("/health/live", summary="Server live (V2)", description="200 while the process answers.",
        response_model=V2Live)
async def v2_live() -> Response:
    return json_response({"live": True})


@v2.get("/health/ready", summary="Server ready (V2)",
        description="200 when the registry directory is readable and writable; 503 otherwise.",
        response_model=V2Ready, responses={503: V2_ERRORS[503]})
async def v2_ready(request: Request) -> Response:
    await run_in_threadpool(request.app.state.registry.check)  # RegistryUnavailableError: 503
    return json_response({"ready": True})


async def _model_ready(request: Request, name: str, version: str | None) -> Response:
    try:
        loaded = await run_in_threadpool(request.app.state.registry.load, name, version)
    except (IntegrityError, RegistryUnavailableError) as exc:
        return v2_error(503, f"model {name!r} is not ready: {exc.message}")
    return json_response({"name": loaded.name, "ready": True})


_READY_DOC = ("200 when the version (default: `production`, else the latest) loads and passes its sha256 check; "
              "404 for an unknown model or version, 503 when it cannot be loaded.")
_READY_ERRORS = {k: V2_ERRORS[k] for k in (400, 401, 403, 404, 503)}


@v2.get("/models/{name}/ready", summary="Model ready (V2)", description=_READY_DOC, response_model=V2ModelReady,
        responses=_READY_ERRORS, dependencies=ReadAccess)
async def v2_model_ready(request: Request, name: NamePath) -> Response:
    return await _model_ready(request, name, None)


@v2.get("/models/{name}/versions/{version}/ready", summary="Model version ready (V2)", description=_READY_DOC,
        response_model=V2ModelReady, responses=_READY_ERRORS, dependencies=ReadAccess)
async def v2_model_version_ready(request: Request, name: NamePath, version: VersionPath) -> Response:
    return await _model_ready(request, name, version)


def _datatype(classes: list[Any]) -> str:
    """The V2 datatype of labels like ``classes``."""
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "INT64"
    return "BYTES"


async def _model_metadata(request: Request, name: str, version: str | None) -> Response:
    registry = request.app.state.registry
    meta = registry.metadata(name, version)
    if version is None:
        versions = [str(m["version"]) for m in await run_in_threadpool(registry.list_versions, name)]
    else:
        versions = [str(meta["version"])]
    names, classes = meta["feature_names"], meta["classes"]
    return json_response({
        "name": name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, len(names)]}],
        "outputs": [{"name": "predict", "datatype": _datatype(classes), "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]}],
        "feature_names": names,
        "classes": classes,
    })


_METADATA_DOC = ("Inputs (`[-1, features]`, or one input per feature), outputs `predict` (labels) and "
                 "`predict_proba` (`[-1, classes]`, columns in the order of `classes`), and the versions. "
                 "Without a version: the `production` alias if set, else the latest.")


@v2.get("/models/{name}", summary="Model metadata (V2)", description=_METADATA_DOC,
        response_model=V2ModelMetadata, responses=V2_ERRORS, dependencies=ReadAccess)
async def v2_model_metadata(request: Request, name: NamePath) -> Response:
    return await _model_metadata(request, name, None)


@v2.get("/models/{name}/versions/{version}", summary="Model version metadata (V2)", description=_METADATA_DOC,
        response_model=V2ModelMetadata, responses=V2_ERRORS, dependencies=ReadAccess)
async def v2_model_version_metadata(request: Request, name: NamePath, version: VersionPath) -> Response:
    return await _model_metadata(request, name, version)


def _tensor(spec: V2RequestInput, data: Any, max_rows: int) -> NDArray[np.float64]:
    """A request input as a float64 array of its declared shape, with errors that name the input."""
    name, shape = spec.name, spec.shape
    where = f"input {name!r}"
    if not shape:
        raise InvalidInputError(f"{where} has an empty shape: send `[rows, features]` or, per feature, `[rows]`")
    if shape[0] > max_rows:
        raise LimitExceededError(
            f"{where} has {shape[0]} rows, over the limit of {max_rows} rows per request; split the batch",
            {"rows": shape[0], "limit": max_rows},
        )
    if not isinstance(data, list):
        raise InvalidInputError(f"{where}: `data` must be a list of numbers (nested or flat)")
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or arr.dtype.kind not in "iuf" or (arr.size == 0 and arr.ndim > 1):
        raise InvalidInputError(
            f"{where}: `data` must hold numbers only ({spec.datatype}), nested as `shape` says or flat"
        )
    expected = math.prod(shape)
    if arr.size != expected:
        raise InvalidInputError(
            f"{where} has {arr.size} values but shape {shape} needs {expected}", {"shape": shape, "values": arr.size}
        )
    if arr.ndim > 1 and list(arr.shape) != shape:
        raise InvalidInputError(f"{where}: the nested data has shape {list(arr.shape)}, not {shape}")
    if spec.datatype in _INT_TYPES:
        low, high = _INT_TYPES[spec.datatype]
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise InvalidInputError(f"{where}: datatype {spec.datatype} needs integers")
        if arr.size and (arr.min() < low or arr.max() > high):
            raise InvalidInputError(f"{where}: values outside the range of {spec.datatype}")
    values = arr.astype(np.float64).reshape(shape)
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{where} holds non-finite numbers")
    return values


def _v2_matrix(
    inputs: list[V2RequestInput], data: list[Any], feature_names: list[str], max_rows: int
) -> NDArray[np.float64]:
    """The rows to score: one ``[rows, features]`` tensor, or one ``[rows]`` / ``[rows, 1]`` input per feature."""
    d = len(feature_names)
    if len(inputs) == 1 and (inputs[0].name not in feature_names or d == 1):
        X = _tensor(inputs[0], data[0], max_rows)
        if X.ndim == 1 and d == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            raise InvalidInputError(
                f"input {inputs[0].name!r} has shape {inputs[0].shape}: send a [rows, {d}] tensor, or one input "
                f"per feature named {feature_names[:5]}{'...' if d > 5 else ''}"
            )
    else:
        columns = []
        for spec, values in zip(inputs, data, strict=True):
            col = _tensor(spec, values, max_rows)
            if col.ndim == 2 and col.shape[1] == 1:
                col = col[:, 0]
            if col.ndim != 1:
                raise InvalidInputError(
                    f"input {spec.name!r} has shape {spec.shape}: with one input per feature, each has shape "
                    "[rows] or [rows, 1]"
                )
            columns.append(col)
        lengths = sorted({c.shape[0] for c in columns})
        if len(lengths) > 1:
            raise InvalidInputError(f"the inputs have different numbers of rows: {lengths}")
        X = operations.order_columns(np.column_stack(columns), [s.name for s in inputs], feature_names, "the inputs")
    if X.shape[0] == 0:
        raise InvalidInputError("the inputs hold no rows")
    return X


def _parse_infer_request(obj: dict[str, Any]) -> tuple[V2InferenceRequest, list[Any]]:
    """The request's light fields validated; the inputs' ``data`` kept aside as sent (not validated item by item)."""
    raw_inputs = obj.get("inputs")
    data: list[Any] = []
    if isinstance(raw_inputs, list):
        light = []
        for i, item in enumerate(raw_inputs):
            if not isinstance(item, dict):
                raise InvalidInputError(f"inputs.{i}: each input must be an object")
            if "data" not in item:
                raise InvalidInputError(f"inputs.{i}: `data` is required")
            data.append(item["data"])
            light.append({**item, "data": []})
        obj = {**obj, "inputs": light}
    request = V2InferenceRequest.model_validate(obj)
    return request, data


def _threshold_parameter(parameters: Parameters | None) -> float | None:
    value = (parameters or {}).get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"parameter `threshold` must be a number from 0 to 1, not {value!r}")
    return float(value)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    app_state = request.app.state
    body, data = _parse_infer_request(await read_json_object(request))
    wanted = [o.name for o in body.outputs] if body.outputs else list(OUTPUTS)
    if len(set(wanted)) != len(wanted):
        raise InvalidInputError(f"`outputs` names an output twice: {wanted}")
    threshold = _threshold_parameter(body.parameters)
    if threshold is not None and "predict" not in wanted:
        raise InvalidInputError("parameter `threshold` applies to the `predict` output, which was not requested")
    loaded = scoring.load_version(app_state, request.scope, name, version)
    X = _v2_matrix(body.inputs, data, loaded.metadata["feature_names"], app_state.settings.max_predict_rows)
    n, classes = X.shape[0], loaded.model.classes_
    outputs: dict[str, dict[str, Any]] = {}
    parameters: Parameters | None = None
    if "predict_proba" in wanted:
        proba = operations.predict_proba(loaded, X)
        index = proba.argmax(axis=1)
        outputs["predict_proba"] = {"name": "predict_proba", "shape": [n, proba.shape[1]], "datatype": "FP64",
                                    "data": proba.ravel()}
    if "predict" in wanted:
        labels, used, index = operations.predict(loaded, X, threshold)
        outputs["predict"] = {"name": "predict", "shape": [n], "datatype": _datatype(classes.tolist()),
                              "data": labels}
        if used is not None:
            parameters = {"threshold": used}
    scoring.observe(app_state, request.scope, loaded, X, index)
    response: dict[str, Any] = {
        "model_name": loaded.name,
        "model_version": str(loaded.version),
        "id": body.id if body.id is not None else request.scope["state"].get("request_id", ""),
    }
    if parameters is not None:
        response["parameters"] = parameters
    response["outputs"] = [outputs[o] for o in wanted]
    return json_response(response)


_INFER_DOC = (
    "An inference request of the V2 / Open Inference Protocol. `inputs`: one FP64/FP32/FP16/INT/UINT tensor of "
    "shape `[rows, features]` (any name; data nested or flat row-major), or one input per feature named by "
    "feature name with shape `[rows]` or `[rows, 1]`. `outputs` (default both): `predict`, the labels (at the "
    "`threshold` request parameter, else the version's stored threshold, else 0.5; multiclass: the most "
    "probable class), and `predict_proba`, `[rows, classes]` in the order of the metadata's `classes`. "
    "Output data is flat, row-major. Without a version: the `production` alias if set, else the latest."
)
_INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": f"#/components/schemas/{V2InferenceRequest.__name__}"}}}}}
DOCUMENTED_BODIES.add(V2InferenceRequest)


@v2.post("/models/{name}/infer", summary="Inference (V2)", description=_INFER_DOC,
         response_model=V2InferenceResponse, responses=V2_ERRORS, dependencies=ReadAccess, openapi_extra=_INFER_BODY)
async def v2_infer(request: Request, name: NamePath) -> Response:
    return await _infer(request, name, None)


@v2.post("/models/{name}/versions/{version}/infer", summary="Inference on a version (V2)", description=_INFER_DOC,
         response_model=V2InferenceResponse, responses=V2_ERRORS, dependencies=ReadAccess, openapi_extra=_INFER_BODY)
async def v2_infer_version(request: Request, name: NamePath, version: VersionPath) -> Response:
    return await _infer(request, name, version)


# -- MLflow scoring server ----------------------------------------------------------------------------
class MlflowDataframeSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = Field(None, description="Feature names (any order); omitted: the model's order.")
    data: list[list[float]] = Field(description="Rows of numbers.")
    index: list[Any] | None = Field(None, description="Ignored.")


class MlflowRequest(BaseModel):
    """An MLflow scoring-server request: exactly one of the four input fields (plus optional `params`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 0.5]]}},
            {"dataframe_records": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 0.5}]},
            {"instances": [[1.0, 2.0], [3.0, 0.5]]},
            {"inputs": {"a": [1.0, 3.0], "b": [2.0, 0.5]}},
        ]},
    )

    dataframe_split: MlflowDataframeSplit | None = Field(None, description="pandas `split` orient.")
    dataframe_records: list[dict[str, float]] | None = Field(None, description="pandas `records` orient.")
    instances: list[list[float]] | list[dict[str, float]] | None = Field(
        None, description="Rows (lists in the model's feature order, or objects by feature name)."
    )
    inputs: list[list[float]] | list[dict[str, float]] | dict[str, list[float]] | None = Field(
        None, description="Rows as `instances`, or columns: `{feature: [values]}`."
    )
    params: dict[str, Any] | None = Field(None, description="Accepted and ignored, as MLflow does for models "
                                          "without a params schema.")


class MlflowResponse(BaseModel):
    predictions: list[Label] | list[list[float]] = Field(
        description="Labels, or with `output=predict_proba` one row of class probabilities per input row."
    )


MLFLOW_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _columns_matrix(columns: Any, feature_names: list[str], max_rows: int) -> NDArray[np.float64]:
    """Rows from ``{feature: [values]}`` (the columnar ``inputs`` of MLflow's TF-serving format)."""
    if not columns:
        raise InvalidInputError("`inputs` has no columns")
    names = list(columns)
    X = operations.rows_to_matrix([columns[n] for n in names], field="inputs").T  # columns must be equally long
    if X.shape[0] > max_rows:
        raise LimitExceededError(
            f"{X.shape[0]} rows exceed the limit of {max_rows} rows per request; split the batch",
            {"field": "inputs", "rows": X.shape[0], "limit": max_rows},
        )
    return operations.order_columns(np.ascontiguousarray(X), names, feature_names, "the columns of `inputs`")


def _mlflow_matrix(obj: dict[str, Any], feature_names: list[str], max_rows: int) -> NDArray[np.float64]:
    """The rows of an MLflow JSON body, as MLflow's scoring server reads them."""
    given = [k for k in MLFLOW_FIELDS if k in obj]
    unknown = sorted(set(obj) - {*MLFLOW_FIELDS, "params"})
    if len(given) != 1 or unknown:
        raise InvalidInputError(
            "the body must be a JSON object with exactly one of the fields "
            f"{', '.join(MLFLOW_FIELDS)} (and optionally `params`); got {sorted(obj)}",
            {"accepted": list(MLFLOW_FIELDS)},
        )
    if obj.get("params") is not None and not isinstance(obj["params"], dict):
        raise InvalidInputError("`params` must be an object")
    field = given[0]
    value = obj[field]
    if field == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value or set(value) - {"columns", "data", "index"}:
            raise InvalidInputError("`dataframe_split` must be an object with `data` (rows) and optionally "
                                    "`columns` and `index`", {"field": field})
        X = operations.rows_to_matrix(value["data"], max_rows, field="dataframe_split.data")
        columns = value.get("columns")
        if columns is None:
            return X
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInputError("`dataframe_split.columns` must be a list of names", {"field": field})
        if len(columns) != X.shape[1]:
            raise InvalidInputError(
                f"`dataframe_split` names {len(columns)} columns but its rows have {X.shape[1]} values",
                {"field": field},
            )
        return operations.order_columns(X, columns, feature_names, "`dataframe_split.columns`")
    if field == "inputs" and isinstance(value, dict):
        return _columns_matrix(value, feature_names, max_rows)
    if field == "dataframe_records" or (isinstance(value, list) and value and isinstance(value[0], dict)):
        try:
            return operations.records_to_matrix(value, feature_names, max_rows)
        except InvalidInputError as exc:  # name the field the client used, not our own `records`
            raise InvalidInputError(exc.message.replace("`records`", f"`{field}`"), exc.details) from None
    return operations.rows_to_matrix(value, max_rows, field=field)


mlflow = APIRouter(tags=[MLFLOW_TAG])

_MLFLOW_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": f"#/components/schemas/{MlflowRequest.__name__}"}},
    "text/csv": CSV_BODY,
}}}
DOCUMENTED_BODIES.add(MlflowRequest)


@mlflow.post(
    "/invocations",
    summary="Score like MLflow's scoring server",
    description="Drop-in for MLflow's `POST /invocations`: a JSON body with exactly one of `dataframe_split` "
    "(`{columns, data}`), `dataframe_records` (`[{feature: value}]`), `instances` (rows, or objects by feature "
    "name) and `inputs` (the same, or columns `{feature: [values]}`), or a `text/csv` body with a header row. "
    "Answers `{\"predictions\": [...]}`: the labels (at `threshold`, else the version's stored threshold), or "
    "with `output=predict_proba` the class probabilities (columns in the order of the model's classes). Columns "
    "are matched by name when named; unnamed rows are in the model's feature order.",
    response_model=MlflowResponse,
    responses=ERROR_RESPONSES,
    dependencies=ReadAccess,
    openapi_extra=_MLFLOW_BODY,
)
async def invocations(
    request: Request,
    model: Annotated[str | None, Query(
        pattern=MODEL_NAME_PATTERN, examples=["breast-cancer"],
        description="Model to score with; may be omitted when the registry holds exactly one model.")] = None,
    version: Annotated[str | None, Query(max_length=64, description="Version number or alias (default: "
                                         "`production`, else the latest).")] = None,
    threshold: Annotated[float | None, Query(ge=0, le=1, description="Binary models, labels only: positive when "
                                             "P(positive) >= threshold.")] = None,
    output: Annotated[Literal["predict", "predict_proba"], Query(
        description="`predict`: labels (MLflow's answer for a classifier); `predict_proba`: probabilities.")]
    = "predict",
) -> Response:
    app_state = request.app.state
    if threshold is not None and output != "predict":
        raise InvalidInputError("`threshold` applies to labels (`output=predict`)", {"field": "threshold"})
    if model is None:
        models = await run_in_threadpool(app_state.registry.list_models)
        if len(models) != 1:
            raise InvalidInputError(
                f"name the model: `/invocations?model=NAME` (the registry holds {len(models)} models)",
                {"field": "model"},
            )
        model = str(models[0]["name"])
    obj = None if is_csv(request) else await read_json_object(request)
    loaded = scoring.load_version(app_state, request.scope, model, version)
    names, max_rows = loaded.metadata["feature_names"], app_state.settings.max_predict_rows
    if obj is None:
        X = await read_csv_matrix(request, names, max_rows)
    else:
        X = _mlflow_matrix(obj, names, max_rows)
    if output == "predict_proba":
        proba = scoring.proba_answer(app_state, request.scope, loaded, X)["probabilities"]
        return json_response({"predictions": proba})
    answer, _ = scoring.labels_answer(app_state, request.scope, loaded, X, threshold)
    return json_response({"predictions": answer["predictions"]})


class MlflowPing(BaseModel):
    status: str


@mlflow.get("/ping", summary="Ping (MLflow)", response_model=MlflowPing, responses={503: ERROR_RESPONSES[503]},
            description="MLflow's liveness/readiness probe: 200 when the registry is readable, else 503.")
async def ping(request: Request) -> Response:
    await run_in_threadpool(request.app.state.registry.check)
    return json_response({"status": "ok"})


@mlflow.get("/health", summary="Health (MLflow)", response_model=MlflowPing, responses={503: ERROR_RESPONSES[503]},
            description="The same as `/ping`, MLflow's other probe path.")
async def health(request: Request) -> Response:
    return await ping(request)


@mlflow.get("/version", summary="Version (MLflow)", response_class=PlainTextResponse,
            responses={k: ERROR_RESPONSES[k] for k in (401, 403)}, dependencies=ReadAccess,
            description="The server's version as plain text, like MLflow's `/version`.")
async def version_text() -> PlainTextResponse:
    return PlainTextResponse(__version__)


router = APIRouter()
router.include_router(v2)
router.include_router(mlflow)
