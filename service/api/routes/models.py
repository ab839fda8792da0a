"""Registry routes: list models and versions, model cards, aliases, thresholds, deletes."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...data.matrix import labels_array
from ...errors import InvalidInputError
from ...services import thresholds
from ...services.scoring import predict_proba, validation_sample
from .. import examples
from ..deps import RegistryDep, ScorerDep
from ..errors import BODY, KEYED, REGISTRY, error_responses
from ..payloads import json_response, openapi_body, read_json_object, validate_envelope
from ..schemas import (
    AliasPath,
    AliasRequest,
    AliasResponse,
    DeletedVersionPath,
    ModelCard,
    ModelList,
    NamePath,
    ThresholdCost,
    ThresholdData,
    ThresholdOptimizeRequest,
    ThresholdOptimizeResponse,
    ThresholdRequest,
    ThresholdResponse,
    ValidationRows,
    VersionList,
    VersionNumberPath,
    VersionPath,
)
from ..security import Credentials, ReadAccess, WriteAccess, require_write_key

router = APIRouter(prefix="/models", tags=["registry"])

#: A route that reads a model named in its path; one that also reads a body.
READ_ERRORS = error_responses(*KEYED, *REGISTRY)
BODY_ERRORS = error_responses(*KEYED, *REGISTRY, *BODY)


@router.get(
    "", summary="List models", description="Every model with its latest version, versions and aliases.",
    dependencies=ReadAccess, response_model=ModelList, responses=error_responses(*KEYED, 503),
)
async def list_models(registry: RegistryDep) -> Response:
    return json_response({"models": await run_in_threadpool(registry.list_models)})


@router.get("/{name}", summary="List a model's versions", response_model=VersionList, responses=READ_ERRORS,
            dependencies=ReadAccess)
async def list_versions(name: NamePath, registry: RegistryDep) -> Response:
    versions = await run_in_threadpool(registry.list_versions, name)
    return json_response(
        {
            "name": name,
            "versions": [
                {k: v.get(k) for k in ("version", "created_at", "converged", "n_samples", "aliases", "threshold",
                                       "description", "tags", "integrity_error") if k in v}
                for v in versions
            ],
        }
    )


@router.get(
    "/{name}/versions/{version}",
    summary="Model card",
    description="Hyperparameters, classes, feature names, coefficients by class and feature, intercepts, "
    "training metrics, loss history, created time and the artefact's sha256.",
    response_model=ModelCard,
    responses=READ_ERRORS,
    dependencies=ReadAccess,
)
async def model_card(name: NamePath, version: VersionPath, registry: RegistryDep) -> Response:
    meta = await run_in_threadpool(partial(registry.metadata, name, version, full=True))
    return json_response(await run_in_threadpool(meta.card))


@router.get(
    "/{name}/versions/{version}/validation",
    summary="Validation labels and probabilities",
    description="The held-out validation rows of a version as stored at training time (a seeded sample of at "
    "most 5000): their positions in the training set (`rows`), true `labels` and predicted `probabilities` "
    "(columns in the order of `classes`). The dashboard's threshold explorer computes its confusion matrix "
    "from these; the numbers equal `POST /metrics` on the same rows at the same threshold.",
    response_model=ValidationRows,
    responses=READ_ERRORS,
    dependencies=ReadAccess,
)
async def validation(name: NamePath, version: VersionPath, registry: RegistryDep) -> Response:
    return json_response(validation_sample(await run_in_threadpool(partial(registry.metadata, name, version,
                                                                           full=True))))


@router.delete(
    "/{name}/versions/{version}",
    status_code=204,
    summary="Delete a version",
    description="Removes the version; refused with 409 while an alias points at it. Numbers are never reused.",
    responses=READ_ERRORS,
    dependencies=WriteAccess,
)
async def delete_version(name: NamePath, version: DeletedVersionPath, registry: RegistryDep) -> Response:
    await run_in_threadpool(registry.delete_version, name, version)
    return Response(status_code=204)


@router.put(
    "/{name}/aliases/{alias}",
    summary="Point an alias at a version",
    description="Creates or moves the alias (e.g. `production`, which unversioned requests use).",
    response_model=AliasResponse,
    responses=BODY_ERRORS,
    dependencies=WriteAccess,
)
async def set_alias(
    name: NamePath, alias: AliasPath, body: Annotated[AliasRequest, Body(openapi_examples=examples.ALIAS)],
    registry: RegistryDep,
) -> Response:
    return json_response(await run_in_threadpool(registry.set_alias, name, alias, body.version))


@router.delete(
    "/{name}/aliases/{alias}", status_code=204, summary="Remove an alias", responses=READ_ERRORS,
    dependencies=WriteAccess,
)
async def delete_alias(name: NamePath, alias: AliasPath, registry: RegistryDep) -> Response:
    await run_in_threadpool(registry.delete_alias, name, alias)
    return Response(status_code=204)


@router.put(
    "/{name}/versions/{version}/threshold",
    summary="Store a version's decision threshold",
    description="The default threshold `/predict` uses for this binary version; null restores 0.5.",
    response_model=ThresholdResponse,
    responses=BODY_ERRORS,
    dependencies=WriteAccess,
)
async def set_threshold(
    name: NamePath, version: VersionNumberPath,
    body: Annotated[ThresholdRequest, Body(openapi_examples=examples.THRESHOLD)], registry: RegistryDep,
) -> Response:
    meta = await run_in_threadpool(registry.metadata, name, version)
    if body.threshold is not None and len(meta.classes) > 2:
        raise InvalidInputError("a decision threshold applies to binary models only")
    return json_response(await run_in_threadpool(registry.set_threshold, name, version, body.threshold))


@router.post(
    "/{name}/versions/{version}/threshold:optimize",
    summary="Choose a binary version's decision threshold for an objective",
    description="Exact over the distinct predicted probabilities of labelled rows: the posted `data`, else the "
    "validation split stored at training. Objectives: `f1`, `youden` (TPR - FPR), `cost` (minimum expected cost "
    "from `cost.fp` and `cost.fn`), `min_recall` (maximum precision with recall >= `target`), `min_precision` "
    "(maximum recall with precision >= `target`). Returns the threshold, the objective's value, the metrics "
    "there and the curve (at most 201 points). Computing is a read; `store: true` also makes it the version's "
    "default threshold and then needs write access (an API key whenever keys are configured).",
    response_model=ThresholdOptimizeResponse,
    responses=BODY_ERRORS,
    dependencies=ReadAccess,
    openapi_extra=openapi_body(ThresholdOptimizeRequest, json_examples=examples.THRESHOLD_OPTIMIZE),
)
async def optimize_threshold(
    name: NamePath, version: VersionPath, request: Request, registry: RegistryDep, scorer: ScorerDep,
    credentials: Credentials,
) -> Response:
    obj = await read_json_object(request)
    data = obj.pop("data", None)
    envelope, _ = validate_envelope(ThresholdOptimizeRequest, obj)
    if envelope.store:
        await require_write_key(request, credentials)
    meta = await run_in_threadpool(partial(registry.metadata, name, version, full=True))
    classes = meta.classes
    if len(classes) != 2:
        raise InvalidInputError(f"a decision threshold applies to binary models only; {name!r} has {len(classes)} "
                                "classes", {"classes": classes})
    if data is None:
        sample = validation_sample(meta)
        source, labels = "validation_sample", sample["labels"]
        scores = np.asarray(sample["probabilities"], dtype=np.float64)[:, 1]
    else:
        if not isinstance(data, dict):
            raise InvalidInputError("`data` must be an object with `features` or `records`, and `labels`")
        _, bulk = validate_envelope(ThresholdData, data)
        loaded = await run_in_threadpool(registry.load, name, meta.version)
        X = scorer.json_rows(loaded, bulk)
        labels = labels_array(bulk.get("labels"), X.shape[0]).tolist()
        source, scores = "posted", predict_proba(loaded, X)[:, 1]
    y_pos = thresholds.positive_mask(labels, classes)
    cost = envelope.cost or ThresholdCost()
    result = await run_in_threadpool(
        thresholds.optimize_threshold, y_pos, scores, envelope.objective, cost_fp=cost.fp, cost_fn=cost.fn,
        target=envelope.target,
    )
    out = {"model": name, "version": meta.version, "positive_class": classes[1], "source": source,
           "current_threshold": meta.threshold, **result, "stored": False}
    out["metrics"]["confusion_matrix"] = {
        "labels": classes,
        "matrix": [[out["metrics"]["tn"], out["metrics"]["fp"]], [out["metrics"]["fn"], out["metrics"]["tp"]]],
    }
    if source == "validation_sample":
        out["sampled"] = sample["sampled"]
    if envelope.store:
        await run_in_threadpool(registry.set_threshold, name, meta.version, result["threshold"])
        out["stored"] = True
    return json_response(out)
