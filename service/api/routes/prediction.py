"""Scoring routes: probabilities, labels at a threshold, and evaluation metrics."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...domain import MAX_EXPLAIN_ROWS, MAX_EXPLAIN_VALUES, MODEL_NAME_PATTERN
from ...errors import InvalidInputError
from ...services.explain import explain_off_loop
from ...services.scoring import LoadedModel, Scorer, decision_threshold, model_columns, predicted_index
from ...services.scoring import evaluate as evaluate_rows
from ...services.thresholds import stored_calibration
from .. import examples
from ..deps import RegistryDep, ScorerDep, log_fields, route_path
from ..errors import BODY, KEYED, REGISTRY, error_responses
from ..payloads import is_csv, json_response, openapi_body, read_csv_matrix, read_json_object, validate_envelope
from ..schemas import (
    EvaluationResponse,
    MetricsRequest,
    PredictProbaResponse,
    PredictRequest,
    PredictResponse,
    StoredMetricsResponse,
    VersionRef,
)
from ..security import ReadAccess

router = APIRouter(tags=["prediction"], dependencies=ReadAccess)

ThresholdQuery = Annotated[
    float | None,
    Query(ge=0, le=1, description="Binary models: positive when P(positive) >= threshold. Default: the "
          "version's stored threshold (0.5 unless set). Not allowed for multiclass models."),
]
#: How the query parameters that go with a ``text/csv`` body only begin their description.
CSV_ONLY = "With a `text/csv` body only"
CsvModelQuery = Annotated[
    str | None,
    Query(pattern=MODEL_NAME_PATTERN, description=f"{CSV_ONLY} (JSON bodies name it in `model`): the model to "
          "score with.", examples=[examples.DEMO_MODEL]),
]
CsvVersionQuery = Annotated[
    str | None,
    Query(max_length=64, description=f"{CSV_ONLY}: version number or alias (default: `production`, else the "
          "latest)."),
]
ExplainQuery = Annotated[
    bool,
    Query(description="Add `explanations`, one per row: each feature's contribution to the logit (per class for "
          "multiclass models), the baseline, the top reasons and, for binary models, the change of each single "
          f"feature that flips the decision at the threshold in use. At most {MAX_EXPLAIN_ROWS} rows and "
          f"{MAX_EXPLAIN_VALUES} values (rows x features x classes, 3 per feature for binary models); 413 beyond."),
]
#: The error answers of a route that scores posted rows with a model of the registry.
SCORING_ERRORS = error_responses(*KEYED, *REGISTRY, *BODY)
CSV_NOTE = (" Rows come as JSON (`features` or `records`) or as `text/csv`: a header row naming the model's "
            "features (any order, no other columns) and one row of numbers per sample, with the model named in "
            "the query (`?model=NAME&version=`).")


async def _scoring_input(
    request: Request, scorer: Scorer, model: type[PredictRequest],
    csv_query: tuple[str | None, str | None] | None = None,
) -> tuple[LoadedModel, Any, dict[str, Any], PredictRequest]:
    """Parse and check a scoring body and load its version: the shared first half of the scoring routes.

    Routes that take CSV pass the ``(model, version)`` query parameters as ``csv_query``.
    """
    fields = log_fields(request.scope)
    if csv_query is not None and is_csv(request):
        if csv_query[0] is None:
            raise InvalidInputError("a text/csv body names its model in the query: `?model=NAME` (and "
                                    "optionally `&version=`)", {"field": "model"})
        envelope = model.model_validate({"model": csv_query[0], "version": csv_query[1]})
        loaded = await scorer.load(fields, envelope.model, envelope.version)
        X = await read_csv_matrix(request, loaded.metadata.feature_names, scorer.max_predict_rows,
                                  model_columns(loaded))
        return loaded, X, {}, envelope
    if csv_query is not None and csv_query != (None, None):
        raise InvalidInputError("the `model` and `version` query parameters go with a text/csv body; a JSON "
                                "body names them in its own `model` and `version` fields", {"field": "model"})
    envelope, bulk = validate_envelope(model, await read_json_object(request))
    loaded = await scorer.load(fields, envelope.model, envelope.version)
    return loaded, scorer.json_rows(loaded, bulk), bulk, envelope


@router.post(
    "/predict_proba",
    summary="Class probabilities",
    description="Probabilities per class (columns in the order of `classes`; rows sum to 1) for each row."
    + CSV_NOTE,
    response_model=PredictProbaResponse,
    responses=SCORING_ERRORS,
    openapi_extra=openapi_body(PredictRequest, csv=True, json_examples=examples.PREDICT),
)
async def predict_proba(
    request: Request, scorer: ScorerDep, model: CsvModelQuery = None, version: CsvVersionQuery = None,
    explain: ExplainQuery = False,
) -> Response:
    loaded, X, _, _ = await _scoring_input(request, scorer, PredictRequest, (model, version))
    payload = scorer.proba_answer(log_fields(request.scope), route_path(request.scope), loaded, X)
    if explain:  # flips at the stored threshold (0.5 unless set), /predict's default
        t = decision_threshold(loaded, None)
        payload["explanations"] = await explain_off_loop(loaded, X, predicted_index(payload["probabilities"], t), t)
    return json_response(payload)


@router.post(
    "/predict",
    summary="Class labels",
    description="Predicted labels, as trained. Binary models use `threshold` (query), else the version's "
    "stored threshold, else 0.5; multiclass models predict the most probable class." + CSV_NOTE,
    response_model=PredictResponse,
    responses=SCORING_ERRORS,
    openapi_extra=openapi_body(PredictRequest, csv=True, json_examples=examples.PREDICT),
)
async def predict(
    request: Request, scorer: ScorerDep, threshold: ThresholdQuery = None,
    model: CsvModelQuery = None, version: CsvVersionQuery = None, explain: ExplainQuery = False,
) -> Response:
    loaded, X, _, _ = await _scoring_input(request, scorer, PredictRequest, (model, version))
    payload, index = scorer.labels_answer(log_fields(request.scope), route_path(request.scope), loaded, X, threshold)
    if explain:
        payload["explanations"] = await explain_off_loop(loaded, X, index, payload["threshold"])
    return json_response(payload)


@router.post(
    "/metrics",
    summary="Evaluate a version on labelled rows",
    description="Accuracy, precision, recall, F1, confusion matrix (with its label order), log-loss, Brier, "
    "ROC AUC and support; per-class and macro/weighted averages; for binary models also the threshold "
    "sweep and the F1-optimal threshold; `calibration`: expected calibration error and reliability bins (10 "
    "equal-width bins of P(positive), or of the top probability for multiclass).",
    response_model=EvaluationResponse,
    responses=SCORING_ERRORS,
    openapi_extra=openapi_body(MetricsRequest, json_examples=examples.METRICS),
)
async def evaluate(request: Request, scorer: ScorerDep) -> Response:
    loaded, X, bulk, envelope = await _scoring_input(request, scorer, MetricsRequest)
    assert isinstance(envelope, MetricsRequest)
    answer = evaluate_rows(loaded, X, bulk.get("labels"), envelope.threshold)
    scorer.observe(log_fields(request.scope), route_path(request.scope), loaded, X, None)  # not traffic
    return json_response(answer)


@router.get(
    "/metrics",
    summary="Metrics stored at training time",
    description="The validation-split metrics (and training metrics) recorded when the version was trained, the "
    "calibration report (Brier, ECE, reliability bins) of the stored validation split, and, for a version "
    "trained with `calibration`, its effect (`calibration_step`: before / after).",
    response_model=StoredMetricsResponse,
    responses=error_responses(*KEYED, *REGISTRY),
)
async def stored_metrics(
    registry: RegistryDep,
    model: Annotated[str, Query(description="Model name.", examples=[examples.DEMO_MODEL])],
    version: Annotated[str | None, Query(description="Version number or alias (default: `production`, else the "
                                         "latest).", examples=[str(examples.DEMO_VERSION)])] = None,
) -> Response:
    ref: VersionRef = version
    meta = await run_in_threadpool(partial(registry.metadata, model, ref, full=True))
    calibration = await run_in_threadpool(stored_calibration, meta)  # of the stored validation sample, as served
    return json_response(
        {
            "model": model,
            "version": meta.version,
            "validation_metrics": meta.validation_metrics,
            "train_metrics": meta.train_metrics,
            "n_validation": meta.n_validation,
            "calibration": calibration,
            "calibration_step": meta.calibration,  # trained with calibration: its before/after report
        }
    )
