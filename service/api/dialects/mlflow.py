"""MLflow's scoring server: ``POST /invocations`` with ``dataframe_split``, ``dataframe_records``, ``instances``
or ``inputs`` (JSON) or a ``text/csv`` body, answering ``{"predictions": [...]}``; plus ``GET /ping``,
``GET /health`` and ``GET /version``. The model is ``?model=NAME``, else ``LOGREG_INVOCATIONS_MODEL``, else the
registry's only model (MLflow's clients know only the URL). Errors keep the service's own shape (MLflow clients look
at the status code).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...config import Settings
from ...data.columns import Columns
from ...data.matrix import columns_to_matrix, order_columns, records_to_matrix, rows_to_matrix
from ...domain import MODEL_NAME_PATTERN, Label, parse_model_reference
from ...errors import InvalidInputError
from ...services.scoring import model_columns
from ...store.registry import ModelRegistry
from .. import examples
from ..deps import RegistryDep, ScorerDep, SettingsDep, log_fields, route_path
from ..errors import BODY, KEYED, REGISTRY, error_responses
from ..payloads import CSV_BODY, DOCUMENTED_BODIES, is_csv, json_response, read_csv_matrix, read_json_object
from ..security import ReadAccess

MLFLOW_TAG = "mlflow scoring server"


class MlflowDataframeSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = Field(None, description="Feature names (any order); omitted: the model's order.")
    data: list[list[float]] = Field(description="Rows of numbers.")
    index: list[Any] | None = Field(None, description="Ignored.")


class MlflowRequest(BaseModel):
    """An MLflow scoring-server request: exactly one of the four input fields (plus optional `params`)."""

    model_config = ConfigDict(extra="forbid")  # examples: on the route (service.api.examples)

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


def _mlflow_matrix(obj: dict[str, Any], feature_names: list[str], max_rows: int,
                   kinds: Columns | None = None) -> NDArray[np.float64]:
    """The rows of an MLflow JSON body, as MLflow's scoring server reads them (``kinds``: a mixed-type model's
    columns, whose cells may be text, booleans or nulls)."""
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
        columns = value.get("columns")
        if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise InvalidInputError("`dataframe_split.columns` must be a list of names", {"field": field})
        if kinds is not None and columns is not None:
            rows = value["data"]
            if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
                raise InvalidInputError(f"`dataframe_split.data` must be rows of {len(columns)} values, one per "
                                        "named column", {"field": field})
            by_name = {c: [r[j] for r in rows] for j, c in enumerate(columns)}
            if len(by_name) != len(columns):
                raise InvalidInputError("`dataframe_split.columns` repeats a name", {"field": field})
            return columns_to_matrix(by_name, feature_names, max_rows, field="dataframe_split", kinds=kinds)
        X = rows_to_matrix(value["data"], max_rows, field="dataframe_split.data", columns=kinds)
        if columns is None:
            return X
        if len(columns) != X.shape[1]:
            raise InvalidInputError(
                f"`dataframe_split` names {len(columns)} columns but its rows have {X.shape[1]} values",
                {"field": field},
            )
        return order_columns(X, columns, feature_names, "`dataframe_split.columns`")
    if field == "inputs" and isinstance(value, dict):
        return columns_to_matrix(value, feature_names, max_rows, kinds=kinds)
    if field == "dataframe_records" or (isinstance(value, list) and value and isinstance(value[0], dict)):
        return records_to_matrix(value, feature_names, max_rows, field=field, columns=kinds)
    return rows_to_matrix(value, max_rows, field=field, columns=kinds)


async def _bare_invocations_model(registry: ModelRegistry, settings: Settings, version: str | None
                                  ) -> tuple[str, str | None]:
    """The model (and version) ``/invocations`` serves without ``?model=``: ``LOGREG_INVOCATIONS_MODEL`` (its
    version unless the query names one), else the registry's only model."""
    if settings.invocations_model is not None:
        name, configured = parse_model_reference(settings.invocations_model)
        return name, version if version is not None else configured
    models = await run_in_threadpool(registry.list_models)
    if len(models) != 1:
        raise InvalidInputError(
            f"name the model: `/invocations?model=NAME`, or set LOGREG_INVOCATIONS_MODEL to the model a bare "
            f"`/invocations` serves (the registry holds {len(models)} models)",
            {"field": "model", "setting": "LOGREG_INVOCATIONS_MODEL"},
        )
    return str(models[0]["name"]), version


router = APIRouter(tags=[MLFLOW_TAG])

_MLFLOW_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": f"#/components/schemas/{MlflowRequest.__name__}"},
                         "examples": examples.MLFLOW},
    "text/csv": CSV_BODY,
}}}
DOCUMENTED_BODIES.add(MlflowRequest)


@router.post(
    "/invocations",
    summary="Score like MLflow's scoring server",
    description="Drop-in for MLflow's `POST /invocations`: a JSON body with exactly one of `dataframe_split` "
    "(`{columns, data}`), `dataframe_records` (`[{feature: value}]`), `instances` (rows, or objects by feature "
    "name) and `inputs` (the same, or columns `{feature: [values]}`), or a `text/csv` body with a header row. "
    "Answers `{\"predictions\": [...]}`: the labels (at `threshold`, else the version's stored threshold), or "
    "with `output=predict_proba` the class probabilities (columns in the order of the model's classes). Columns "
    "are matched by name when named; unnamed rows are in the model's feature order.",
    response_model=MlflowResponse,
    responses=error_responses(*KEYED, *REGISTRY, *BODY),
    dependencies=ReadAccess,
    openapi_extra=_MLFLOW_BODY,
)
async def invocations(
    request: Request,
    registry: RegistryDep,
    scorer: ScorerDep,
    settings: SettingsDep,
    model: Annotated[str | None, Query(
        pattern=MODEL_NAME_PATTERN, examples=[examples.DEMO_MODEL],
        description="Model to score with; may be omitted when `LOGREG_INVOCATIONS_MODEL` is set (that model) or "
        "the registry holds exactly one model.")] = None,
    version: Annotated[str | None, Query(max_length=64, description="Version number or alias (default: "
                                         "`production`, else the latest).")] = None,
    threshold: Annotated[float | None, Query(ge=0, le=1, description="Binary models, labels only: positive when "
                                             "P(positive) >= threshold.")] = None,
    output: Annotated[Literal["predict", "predict_proba"], Query(
        description="`predict`: labels (MLflow's answer for a classifier); `predict_proba`: probabilities.")]
    = "predict",
) -> Response:
    if threshold is not None and output != "predict":
        raise InvalidInputError("`threshold` applies to labels (`output=predict`)", {"field": "threshold"})
    if model is None:
        model, version = await _bare_invocations_model(registry, settings, version)
    obj = None if is_csv(request) else await read_json_object(request)
    fields, route = log_fields(request.scope), route_path(request.scope)
    loaded = await scorer.load(fields, model, version)
    names, max_rows = loaded.metadata.feature_names, scorer.max_predict_rows
    kinds = model_columns(loaded)
    if obj is None:
        X = await read_csv_matrix(request, names, max_rows, kinds)
    else:
        X = _mlflow_matrix(obj, names, max_rows, kinds)
    if output == "predict_proba":
        proba = scorer.proba_answer(fields, route, loaded, X)["probabilities"]
        return json_response({"predictions": proba})
    answer, _ = scorer.labels_answer(fields, route, loaded, X, threshold)
    return json_response({"predictions": answer["predictions"]})


class MlflowPing(BaseModel):
    status: str


@router.get("/ping", summary="Ping (MLflow)", response_model=MlflowPing, responses=error_responses(503),
            description="MLflow's liveness/readiness probe: 200 when the registry is readable, else 503.")
async def ping(registry: RegistryDep) -> Response:
    await run_in_threadpool(registry.check)
    return json_response({"status": "ok"})


@router.get("/health", summary="Health (MLflow)", response_model=MlflowPing, responses=error_responses(503),
            description="The same as `/ping`, MLflow's other probe path.")
async def health(registry: RegistryDep) -> Response:
    return await ping(registry)


@router.get("/version", summary="Version (MLflow)", response_class=Response,
            responses={200: {"description": "The version.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                       **error_responses(*KEYED)},  # errors: JSON, as everywhere
            dependencies=ReadAccess,
            description="The server's version as plain text, like MLflow's `/version`.")
async def version_text() -> PlainTextResponse:
    return PlainTextResponse(__version__)
