"""Scoring routes: probabilities, labels at a threshold, and evaluation metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from .. import operations
from ..registry import LoadedModel, ModelRegistry
from ..schemas import MetricsRequest, PredictProbaResponse, PredictRequest, PredictResponse, VersionRef
from .bodies import json_response, openapi_body, read_json_object, validate_envelope
from .deps import RegistryDep, SettingsDep
from .errors import ERROR_RESPONSES
from .security import ReadAccess

router = APIRouter(tags=["prediction"], dependencies=ReadAccess)

ThresholdQuery = Annotated[
    float | None,
    Query(ge=0, le=1, description="Binary models: positive when P(positive) >= threshold. Default: the "
          "version's stored threshold (0.5 unless set). Not allowed for multiclass models."),
]


async def _scoring_input(
    request: Request, registry: ModelRegistry, max_rows: int, model: type[PredictRequest]
) -> tuple[LoadedModel, Any, dict[str, Any], PredictRequest]:
    obj = await read_json_object(request)
    envelope, bulk = validate_envelope(model, obj)
    request.state.model = envelope.model
    loaded = registry.load(envelope.model, envelope.version)
    request.state.version = loaded.version
    X = operations.input_matrix(
        bulk.get("features"), bulk.get("records"), loaded.metadata.get("feature_names"), max_rows
    )
    request.state.rows = int(X.shape[0])
    monitoring = request.app.state.monitoring
    monitoring.rows.labels(request.url.path).observe(X.shape[0])
    monitoring.observe_registry(registry)
    return loaded, X, bulk, envelope


@router.post(
    "/predict_proba",
    summary="Class probabilities",
    description="Probabilities per class (columns in the order of `classes`; rows sum to 1) for each row.",
    response_model=PredictProbaResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(PredictRequest),
)
async def predict_proba(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    loaded, X, _, _ = await _scoring_input(request, registry, settings.max_predict_rows, PredictRequest)
    proba = operations.predict_proba(loaded, X)
    monitoring = request.app.state.monitoring
    monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, proba.argmax(axis=1))
    return json_response(
        {"model": loaded.name, "version": loaded.version, "classes": loaded.model.classes_.tolist(),
         "probabilities": proba}
    )


@router.post(
    "/predict",
    summary="Class labels",
    description="Predicted labels, as trained. Binary models use `threshold` (query), else the version's "
    "stored threshold, else 0.5; multiclass models predict the most probable class.",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(PredictRequest),
)
async def predict(
    request: Request, registry: RegistryDep, settings: SettingsDep, threshold: ThresholdQuery = None
) -> Response:
    loaded, X, _, _ = await _scoring_input(request, registry, settings.max_predict_rows, PredictRequest)
    labels, used, index = operations.predict(loaded, X, threshold)
    request.app.state.monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, index)
    return json_response({"model": loaded.name, "version": loaded.version, "predictions": labels, "threshold": used})


@router.post(
    "/metrics",
    summary="Evaluate a version on labelled rows",
    description="Accuracy, precision, recall, F1, confusion matrix (with its label order), log-loss, Brier, "
    "ROC AUC and support; per-class and macro/weighted averages; for binary models also the threshold "
    "sweep and the F1-optimal threshold.",
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(MetricsRequest),
)
async def evaluate(request: Request, registry: RegistryDep, settings: SettingsDep) -> Response:
    loaded, X, bulk, envelope = await _scoring_input(request, registry, settings.max_predict_rows, MetricsRequest)
    assert isinstance(envelope, MetricsRequest)
    return json_response(operations.evaluate(loaded, X, bulk.get("labels"), envelope.threshold))


@router.get(
    "/metrics",
    summary="Metrics stored at training time",
    description="The validation-split metrics (and training metrics) recorded when the version was trained.",
    responses=ERROR_RESPONSES,
)
async def stored_metrics(
    registry: RegistryDep,
    model: Annotated[str, Query(description="Model name.", examples=["breast-cancer"])],
    version: Annotated[str | None, Query(description="Version number or alias.")] = None,
) -> Response:
    ref: VersionRef = version
    meta = registry.metadata(model, ref)
    return json_response(
        {
            "model": model,
            "version": meta["version"],
            "validation_metrics": meta.get("validation_metrics"),
            "train_metrics": meta.get("train_metrics"),
            "n_validation": meta.get("n_validation"),
        }
    )
