"""Request and response models of the HTTP API (pydantic v2), one family per resource.

Names, patterns and hyperparameters come from :mod:`service.domain`, where each rule is written once.

Large numeric payloads (``features``, ``records``) are declared here for the OpenAPI page but parsed
straight into numpy by :mod:`service.api.payloads`, never element by element through pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..domain import (
    ALIAS_PATTERN,
    JOB_ID_PATTERN,
    MODEL_NAME_PATTERN,
    EncodingParams,
    Label,
    Request,
    TrainParams,
)

ModelName = Annotated[
    str,
    StringConstraints(pattern=MODEL_NAME_PATTERN),
    Field(description="Model name: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit.",
          examples=["breast-cancer"]),
]
NamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.", examples=["breast-cancer"])]
VersionPath = Annotated[str, Path(description="Version number or alias.", examples=["1", "production"])]
VersionNumberPath = Annotated[int, Path(ge=1, description="Version number.")]
AliasPath = Annotated[str, Path(pattern=ALIAS_PATTERN, description="Alias name.", examples=["production"])]
JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="Job id from the 202 answer's `Location`.")]
VersionRef = Annotated[
    int | str | None,
    Field(
        description="A version number or an alias such as `production`; omitted: the `production` alias "
        "if set, else the latest version.",
        examples=[1, "production"],
    ),
]
#: A cell: a number; for a model trained on a mixed-type table also text (a category), a boolean or null (missing).
Cell = float | str | bool | None
FeatureRows = Annotated[
    list[list[Cell]] | None,
    Field(description="Rows of values, one per sample, in the model's feature order: numbers, and for a model "
          "trained on a mixed-type table also text categories, booleans and nulls (missing).",
          examples=[[[1.0, 2.0, 3.0]]]),
]
Records = Annotated[
    list[dict[str, Cell]] | None,
    Field(description="Objects `{feature_name: value}`, matched to the model's features by name (values as in "
          "`features`).",
          examples=[[{"radius": 14.1, "texture": 19.3}]]),
]


class _Strict(Request):
    model_config = ConfigDict(extra="forbid")


class TrainingData(_Strict):
    """A table to train on, where it lives: a local path (a file, a directory or a glob of part files) under
    `LOGREG_DATA_ROOTS`, or an `s3://` URI."""

    uri: str = Field(min_length=1, max_length=4096, description="A path under LOGREG_DATA_ROOTS, or s3://bucket/key "
                     "(a glob such as `s3://bucket/train/*.parquet`, or a prefix, reads every part).",
                     examples=["s3://my-bucket/claims/2026/*.parquet", "/data/train.csv"])
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the suffix.")
    target: str = Field(min_length=1, description="The label column.", examples=["label"])
    features: list[str] | None = Field(
        None, description="The feature columns, in this order; default: every column but the target."
    )


class TrainRequest(_Strict):
    """A labelled training set (rows and labels, or a table at a `data` URI) and how to train on it."""

    model: ModelName
    data: TrainingData | None = Field(None, description="Train on a CSV or Parquet table read from a path or an "
                                      "s3:// URI, instead of rows in the body.")
    features: FeatureRows = None
    records: Records = None
    labels: list[Label] | None = Field(None, description="One label per row: ints, bools or strings.",
                                       examples=[[0, 1]])
    feature_names: list[str] | None = Field(
        None, description="Names of the columns of `features` (default x0, x1, ...)."
    )
    params: TrainParams = Field(default_factory=TrainParams)
    encoding: EncodingParams = Field(
        default_factory=EncodingParams,
        description="Mixed-type tables: how text categories, booleans and missing cells are encoded. A table with "
        "any of them is encoded with the defaults; plain numbers train as they are unless a field here is set.")
    validation_fraction: float = Field(
        0.2, ge=0, le=0.9, description="Stratified, seeded hold-out share for validation metrics; 0 disables."
    )
    compute: Literal["auto", "local", "dask"] = Field(
        "auto", description="Where a `data` table trains: `dask` on the Dask cluster of LOGREG_DASK_SCHEDULER (its "
        "workers read the table; full-batch solvers only; plain number tables only), `local` in this service, "
        "`auto` on Dask when a scheduler is configured. Rows in the body always train here.",
    )
    calibration: Literal["none", "platt", "isotonic"] = Field(
        "none", description="Binary models: calibrate the probabilities on the validation split (Platt scaling or "
        "isotonic regression of the logit); needs validation_fraction > 0. The report shows its effect.",
    )
    description: str | None = Field(None, max_length=2000)
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels for the version.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "demo",
                    "features": [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0], [0.5, 0.2], [2.5, 2.0]],
                    "labels": [0, 0, 1, 1, 0, 1],
                    "feature_names": ["a", "b"],
                    "validation_fraction": 0,
                }
            ]
        },
    )


class PredictRequest(_Strict):
    """Rows to score with one model version: give `features` or `records`, not both."""

    model: ModelName
    version: VersionRef = None
    features: FeatureRows = None
    records: Records = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "demo", "features": [[1.0, 2.0]]}]},
    )


class MetricsRequest(PredictRequest):
    """Labelled rows to evaluate one model version on."""

    labels: list[Label] = Field(description="True label of each row.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Binary decision threshold; default: the version's stored one."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "demo", "features": [[1.0, 2.0], [0.0, 0.0]], "labels": [1, 0]}]},
    )


class TrainResponse(BaseModel):
    """What a training run produced."""

    model: str
    version: int
    classes: list[Label]
    feature_names: list[str]
    n_samples: int
    n_train: int
    n_validation: int
    converged: bool
    n_iter: int
    warnings: list[str]
    train_metrics: dict[str, Any]
    validation_metrics: dict[str, Any] | None
    loss_history: list[float] = Field(description="Objective per iteration/epoch, at most 200 points.")
    duration_seconds: float
    calibration: dict[str, Any] | None = Field(
        None, description="With `calibration`: the method, its parameters, and Brier / ECE / reliability bins on the "
        "validation split before and after it (in-sample, optimistic) and cross-fitted over 5 folds.",
    )
    trained_on: dict[str, Any] | None = Field(
        None, description="Trained on Dask: `compute` (`dask`), `workers`, `partitions`, `rows`. Its metrics are "
        "computed on at most 100 000 rows of each split, sampled on the cluster.",
    )


class PredictProbaResponse(BaseModel):
    model: str
    version: int
    classes: list[Label]
    probabilities: list[list[float]] = Field(description="n x k, columns in the order of `classes`.")
    explanations: list[dict[str, Any]] | None = Field(
        None, description="With `explain=true`: per row, each feature's contribution to the logit (per class for "
        "multiclass), the baseline, the top reasons and, for binary models, the single-feature flips.",
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Label]
    threshold: float | None = Field(description="Threshold used (binary models); null for multiclass.")
    explanations: list[dict[str, Any]] | None = Field(
        None, description="With `explain=true`: per row, each feature's contribution to the logit (per class for "
        "multiclass), the baseline, the top reasons and, for binary models, the single-feature flips.",
    )


class AliasRequest(_Strict):
    version: int = Field(ge=1, description="Version the alias points to.")


class ThresholdRequest(_Strict):
    threshold: float | None = Field(ge=0, le=1, description="Decision threshold; null restores 0.5.")


class ThresholdCost(_Strict):
    fp: float = Field(1.0, ge=0, le=1e12, description="Cost of one false positive.")
    fn: float = Field(1.0, ge=0, le=1e12, description="Cost of one false negative.")


class ThresholdData(_Strict):
    """Labelled rows to tune on instead of the stored validation split: `features` or `records`, and `labels`."""

    features: FeatureRows = None
    records: Records = None
    labels: list[Label] = Field(description="True label of each row.")


class ThresholdOptimizeRequest(_Strict):
    """How to choose a binary version's decision threshold."""

    objective: Literal["f1", "youden", "cost", "min_recall", "min_precision"] = Field(
        description="`f1`: maximum F1; `youden`: maximum TPR - FPR; `cost`: minimum expected cost "
        "(cost.fp * FP + cost.fn * FN) / n; `min_recall`: maximum precision with recall >= target; "
        "`min_precision`: maximum recall with precision >= target."
    )
    cost: ThresholdCost | None = Field(None, description="Objective `cost`: the cost matrix (default 1 and 1).")
    target: float | None = Field(None, ge=0, le=1, description="Objectives `min_recall` / `min_precision`.")
    data: ThresholdData | None = Field(
        None, description="Labelled rows to score; default: the validation split stored at training."
    )
    store: bool = Field(False, description="Store the chosen threshold as the version's default (needs write access).")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"objective": "f1"}, {"objective": "cost", "cost": {"fp": 1, "fn": 5}},
                                        {"objective": "min_recall", "target": 0.95, "store": True}]},
    )

    @model_validator(mode="after")
    def _needs(self) -> ThresholdOptimizeRequest:
        if self.objective in ("min_recall", "min_precision") and self.target is None:
            raise ValueError(f"objective {self.objective!r} needs `target`")
        if self.objective != "cost" and self.cost is not None:
            raise ValueError("`cost` applies to objective 'cost' only")
        if self.objective not in ("min_recall", "min_precision") and self.target is not None:
            raise ValueError("`target` applies to objectives 'min_recall' and 'min_precision' only")
        if self.cost is not None and self.cost.fp == 0 and self.cost.fn == 0:
            raise ValueError("`cost` needs a positive fp or fn")
        return self


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. `not_found`, `validation_error`.")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorBody
