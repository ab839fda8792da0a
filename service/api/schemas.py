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
from . import examples

ModelName = Annotated[
    str,
    StringConstraints(pattern=MODEL_NAME_PATTERN),
    Field(description="Model name: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit.",
          examples=[examples.DEMO_MODEL]),
]
NamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.",
                               examples=[examples.DEMO_MODEL])]
VersionPath = Annotated[str, Path(description="Version number or alias (such as `production`, once set).",
                                  examples=[str(examples.DEMO_VERSION)])]
VersionNumberPath = Annotated[int, Path(ge=1, description="Version number.", examples=[examples.DEMO_VERSION])]
#: The version the delete example removes: the one the `/train` example adds, not the demo's own.
DeletedVersionPath = Annotated[int, Path(ge=1, description="Version number.", examples=[examples.TRAINED_VERSION])]
AliasPath = Annotated[str, Path(pattern=ALIAS_PATTERN, description="Alias name.", examples=["production"])]
JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="Job id from the 202 answer's `Location`.")]
VersionRef = Annotated[
    int | str | None,
    Field(
        description="A version number or an alias such as `production`; omitted: the `production` alias "
        "if set, else the latest version.",
        examples=[examples.DEMO_VERSION],
    ),
]
#: A cell: a number; for a model trained on a mixed-type table also text (a category), a boolean or null (missing).
Cell = float | str | bool | None
FeatureRows = Annotated[
    list[list[Cell]] | None,
    Field(description="Rows of values, one per sample, in the model's feature order: numbers, and for a model "
          "trained on a mixed-type table also text categories, booleans and nulls (missing).",
          examples=[[examples.MALIGNANT_ROW]]),
]
Records = Annotated[
    list[dict[str, Cell]] | None,
    Field(description="Objects `{feature_name: value}`, matched to the model's features by name (values as in "
          "`features`).",
          examples=[[examples.record(examples.BENIGN_ROW)]]),
]


class _Strict(Request):
    model_config = ConfigDict(extra="forbid")


class TrainingData(_Strict):
    """A table to train on, where it lives: a local path (a file, a directory or a glob of part files) under
    `LOGREG_DATA_ROOTS`, or an `s3://` URI."""

    uri: str = Field(min_length=1, max_length=4096, description="A path under LOGREG_DATA_ROOTS, or s3://bucket/key "
                     "(a glob such as `s3://bucket/train/*.parquet`, or a prefix, reads every part).",
                     examples=[examples.DEMO_CSV_URI, "s3://my-bucket/claims/2026/*.parquet"])
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the suffix.")
    target: str = Field(min_length=1, description="The label column.", examples=[examples.DEMO_TARGET])
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
                                       examples=[examples.LABELS])
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

    model_config = ConfigDict(extra="forbid")  # examples: on the route (service.api.examples)


class PredictRequest(_Strict):
    """Rows to score with one model version: give `features` or `records`, not both."""

    model: ModelName
    version: VersionRef = None
    features: FeatureRows = None
    records: Records = None

    model_config = ConfigDict(extra="forbid")  # examples: on the routes (service.api.examples)


class MetricsRequest(PredictRequest):
    """Labelled rows to evaluate one model version on."""

    labels: list[Label] = Field(description="True label of each row.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Binary decision threshold; default: the version's stored one."
    )

    model_config = ConfigDict(extra="forbid")  # examples: on the route (service.api.examples)


# -- answers ----------------------------------------------------------------------------------------------
class _Open(BaseModel):
    """An answer whose documented fields are not all it may hold (reports grow fields; stores written by a newer
    release keep theirs): unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class PrecisionRecallF1(BaseModel):
    precision: float
    recall: float
    f1: float


class ClassMetrics(PrecisionRecallF1):
    support: float = Field(description="Rows of the class (their summed weights when trained with weights).")


class ConfusionMatrix(BaseModel):
    labels: list[Label] = Field(description="The order of the rows (true class) and columns (predicted class).")
    matrix: list[list[float]]


class ThresholdSweep(_Open):
    """Binary models: the metrics at thresholds 0, 0.01, ..., 1 (one list per metric, aligned with `thresholds`)."""

    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    accuracy: list[float]
    tp: list[float]
    fp: list[float]
    fn: list[float]
    tn: list[float]


class BestThreshold(_Open):
    """Binary models: the threshold of maximum F1 and the metrics there."""

    threshold: float
    f1: float
    precision: float
    recall: float


class MetricsReport(_Open):
    """An evaluation: headline metrics (binary: of the positive class; multiclass: macro averages), the confusion
    matrix, per-class metrics and averages; binary models add the threshold sweep and the F1-optimal threshold."""

    n_samples: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    log_loss: float | None
    brier: float | None
    roc_auc: float | None = Field(description="Null when undefined (a class absent from the rows).")
    confusion_matrix: ConfusionMatrix
    support: dict[str, float]
    per_class: dict[str, ClassMetrics]
    macro: PrecisionRecallF1
    weighted: PrecisionRecallF1
    threshold: float | None = Field(description="The decision threshold applied (binary); null for multiclass.")
    positive_class: Label | None = None
    threshold_sweep: ThresholdSweep | None = None
    best_threshold: BestThreshold | None = None


class ReliabilityBin(BaseModel):
    lower: float
    upper: float
    count: int
    mean_predicted: float | None = Field(description="Null for an empty bin.")
    fraction_positive: float | None = Field(description="Null for an empty bin.")


class CalibrationReport(_Open):
    """Brier score, expected and maximum calibration error and reliability bins: of P(positive) for binary models
    (`positive_class`), of the top probability for multiclass ones (`top_label`)."""

    kind: Literal["positive_class", "top_label"]
    n_samples: int
    brier: float | None
    ece: float
    mce: float
    n_bins: int
    bins: list[ReliabilityBin]
    source: str | None = Field(None, description="`GET /metrics`: `validation_sample`, the rows it was computed on.")


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
    train_metrics: MetricsReport
    validation_metrics: MetricsReport | None
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

    model_config = ConfigDict(extra="forbid")  # examples: on the route (service.api.examples)

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


class HealthResponse(BaseModel):
    status: Literal["ok"]
    pid: int = Field(description="The worker process that answered.")


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model_store: str = Field(description="The registry directory.")


class ModelSummary(_Open):
    name: str
    latest_version: int
    versions: list[int]
    aliases: dict[str, int] = Field(description="Alias -> version.")
    integrity_error: str | None = Field(None, description="Present when the model's state file failed its check "
                                        "(its aliases are then not listed).")


class ModelList(BaseModel):
    models: list[ModelSummary] = Field(description="Every model with at least one version, by name.")


class VersionSummary(_Open):
    version: int
    created_at: str | None = None
    converged: bool | None = None
    n_samples: int | None = None
    aliases: list[str] = Field(default_factory=list, description="The aliases that point at this version.")
    threshold: float | None = Field(None, description="The stored decision threshold; null: 0.5.")
    description: str | None = None
    tags: dict[str, str] | None = None
    integrity_error: str | None = Field(None, description="Present when the version's record failed its check "
                                        "(its other fields are then missing).")


class VersionList(BaseModel):
    name: str
    versions: list[VersionSummary] = Field(description="By version number.")


class ModelCard(_Open):
    """Everything stored about a version but its validation rows (`.../validation` has those). Fields of the
    training report are missing for versions stored without them (e.g. by an older release)."""

    name: str
    version: int
    created_at: str
    sha256: str = Field(description="sha256 of the artefact.")
    artefact: str
    checksum: str | None = Field(None, description="sha256 of the version's manifest (absent in old stores).")
    signature: str | None = Field(None, description="HMAC-SHA256 of the manifest, when stored with LOGREG_SIGNING_KEY.")
    classes: list[Label]
    feature_names: list[str]
    model: str | None = None
    n_samples: int | None = None
    n_train: int | None = None
    n_validation: int | None = None
    converged: bool | None = None
    n_iter: int | None = None
    warnings: list[str] = Field(default_factory=list)
    train_metrics: MetricsReport | None = None
    validation_metrics: MetricsReport | None = None
    loss_history: list[float] = Field(default_factory=list)
    calibration: dict[str, Any] | None = Field(None, description="Trained with `calibration`: its report.")
    duration_seconds: float | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="The engine's hyperparameters.")
    validation_fraction: float | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    coefficients: dict[str, dict[str, float]] | None = Field(
        None, description="Per class (binary: the positive class) and feature, on the original feature scale.")
    intercepts: dict[str, float] | None = None
    feature_means: list[float] | None = None
    feature_stds: list[float] | None = None
    feature_statistics: dict[str, Any] | None = Field(None, description="Training deciles per feature (drift).")
    alpha: float | None = None
    standardization: dict[str, list[float]] | None = None
    encoding: dict[str, Any] | None = Field(None, description="A mixed-type table's preprocessing.")
    trained_on: dict[str, Any] | None = Field(
        None, description="Where a version was trained when not in this process: `{compute: dask, workers, "
        "partitions, rows}`.")
    validation_sample_rows: int | None = Field(
        None, description="Rows of the stored validation sample (kept in the version's side file; `.../validation` "
        "gives them).")
    aliases: list[str] = Field(default_factory=list)
    threshold: float | None = Field(None, description="The stored decision threshold; null: 0.5.")


class ValidationRows(BaseModel):
    model: str
    version: int
    classes: list[Label]
    positive_class: Label | None = Field(description="Binary models: the later class; null for multiclass.")
    threshold: float | None = Field(description="The stored decision threshold; null: 0.5.")
    n_validation: int | None
    sampled: bool = Field(description="Whether the rows are a sample of a larger validation split.")
    rows: list[int] = Field(description="Positions in the training set.")
    labels: list[Label]
    probabilities: list[list[float]] = Field(description="Columns in the order of `classes`.")


class AliasResponse(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None = Field(description="Where the alias pointed before; null when it is new.")


class ThresholdResponse(BaseModel):
    name: str
    version: int
    threshold: float | None


class OptimizedMetrics(_Open):
    precision: float
    recall: float
    f1: float
    tpr: float
    fpr: float
    youden_j: float
    accuracy: float
    expected_cost: float | None = Field(description="Objective `cost`: the expected cost per row; else null.")
    tp: int
    fp: int
    fn: int
    tn: int
    confusion_matrix: ConfusionMatrix


class CurvePoint(_Open):
    threshold: float
    precision: float
    recall: float
    f1: float
    tpr: float
    fpr: float
    cost: float | None = Field(None, description="Objective `cost` only.")


class ThresholdOptimizeResponse(_Open):
    model: str
    version: int
    positive_class: Label
    source: Literal["validation_sample", "posted"] = Field(description="The rows tuned on.")
    current_threshold: float | None = Field(description="The version's stored threshold before (null: 0.5).")
    objective: str
    threshold: float
    value: float = Field(description="The objective's value at `threshold`.")
    metrics: OptimizedMetrics
    n_samples: int
    n_positive: int
    n_candidates: int
    curve: list[CurvePoint] = Field(description="At most 201 points, thresholds rising.")
    stored: bool = Field(description="Whether the threshold was stored as the version's default.")
    sampled: bool | None = Field(None, description="Validation split only: whether it is a sample.")


class EvaluationResponse(MetricsReport):
    """`POST /metrics`: the version's metrics on the posted rows."""

    model: str
    version: int
    calibration: CalibrationReport


class StoredMetricsResponse(BaseModel):
    model: str
    version: int
    validation_metrics: MetricsReport | None = Field(description="Null when trained without a validation split.")
    train_metrics: MetricsReport | None
    n_validation: int | None
    calibration: CalibrationReport | None = Field(
        description="Of the stored validation rows, as served; null without a validation split.")
    calibration_step: dict[str, Any] | None = Field(
        description="Trained with `calibration`: its before / after report; else null.")


class OutOfRange(BaseModel):
    rows: int = Field(description="Rows with at least one value outside the training range.")
    values: dict[str, int] = Field(description="Per feature: values outside the training range.")


class DriftResponse(_Open):
    model: str
    version: int
    scope: Literal["worker"] = Field(description="What the window covers: the answering worker process.")
    pid: int
    window_size: int = Field(description="LOGREG_DRIFT_WINDOW_ROWS.")
    window_rows: int = Field(description="Rows in the window now.")
    rows_seen: int
    psi: dict[str, float | None] = Field(description="Per feature; null until the window holds rows.")
    psi_thresholds: dict[str, float]
    drifted_features: list[str]
    out_of_range: OutOfRange
    training: dict[str, Any] | None = Field(description="The training statistics the window is compared with.")
    unknown_categories: dict[str, int] | None = Field(
        None, description="Mixed-type models: cells of categories unseen at training, per column.")


class JobProgress(_Open):
    """Where a background training is: its phase, and the counters of that phase."""

    phase: str | None = Field(None, description="`reading`, `fitting`, `evaluating` or `storing`.")
    eta_seconds: float | None = None
    rows_read: int | None = None
    bytes_read: int | None = None
    bytes_total: int | None = None
    iteration: int | None = None
    max_iter: int | None = None
    loss: float | None = None


class JobError(_Open):
    type: str
    message: str
    details: Any = None


class JobResponse(_Open):
    """A background training job."""

    id: str
    model: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: JobProgress | None = None
    result: TrainResponse | None = Field(None, description="Succeeded: the report `POST /train` gives.")
    error: JobError | None = Field(None, description="Failed or cancelled: why.")
    pid: int | None = Field(None, description="The process that runs (or ran) it.")
    request_digest: str | None = Field(None, description="With an Idempotency-Key: sha256 of the first request.")


class JobCancelResponse(JobResponse):
    cancel_requested: bool


class ErrorBody(BaseModel):
    type: str = Field(description="Machine-readable kind, e.g. `not_found`, `validation_error`.")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorBody
