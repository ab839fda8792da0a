"""The service's typed records and the rules about names and sizes, each written once.

Imported by the API's schemas, the store, the services and the CLI alike, so a rule (the model-name
pattern, a hyperparameter's range, a stored sample's size) has one home. Records are pydantic models:
what is read from disk is validated on the way in, and a record that does not fit is an integrity error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from .engine.params import CHOICES, INT_MINIMA, RANGES, check_combination
from .errors import InvalidInputError

# -- names --------------------------------------------------------------------------------------------
#: A model name: one path component, so it is safe as a directory name.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: An alias starts with a letter, so it never looks like a version number.
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
#: A background job's id (uuid4 hex).
JOB_ID_PATTERN = r"^[a-f0-9]{32}$"
#: The alias a request without a version uses, when it is set.
PRODUCTION_ALIAS = "production"

#: What every temporary entry's name starts with (a version being written, a scratch matrix, a probe), so a
#: start-up cleanup finds those a crash left behind.
TMP_PREFIX = ".tmp-"

_NAME_RE = re.compile(MODEL_NAME_PATTERN)
_ALIAS_RE = re.compile(ALIAS_PATTERN)
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)

# -- sizes of what a version keeps --------------------------------------------------------------------
#: Points of the loss history kept per version (evenly spaced, first and last included).
MAX_HISTORY_POINTS = 200
#: Validation labels and scores kept per version (for the threshold explorer); a seeded sample beyond it.
MAX_VALIDATION_SAMPLE = 5000
#: Probabilities the stored validation sample holds at most (rows x classes): fewer rows for many classes.
MAX_VALIDATION_VALUES = 1_000_000
#: Training rows the drift reference's deciles are computed from (a seeded sample beyond it).
MAX_REFERENCE_ROWS = 10_000
#: Rows one request may ask explanations for (each row carries a value per feature, twice for binary models).
MAX_EXPLAIN_ROWS = 10_000
#: Values one request's explanations may hold: rows x features x logits (3 per feature and row for a binary
#: model: a contribution and a flip's delta and value). About 30 MB of JSON at most.
MAX_EXPLAIN_VALUES = 1_000_000
#: Items a message lists before it says "and N more".
PREVIEW_ITEMS = 5

Label = int | bool | str


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a boolean (``bool``, ``Label``, ``Any``), looking inside unions."""
    if annotation is bool or annotation is Any:
        return True
    return any(_takes_bool(arg) for arg in get_args(annotation) if not isinstance(arg, (str, int, float)))


class Request(BaseModel):
    """A record read from a request: JSON's ``true`` is not the number 1 in a field that takes numbers
    (pydantic's lax mode would read ``"version": true`` as version 1 and ``"threshold": true`` as 1.0)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = info.field_name
        if isinstance(value, bool) and field is not None and not _takes_bool(cls.model_fields[field].annotation):
            raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value


def is_model_name(name: object) -> bool:
    """Whether ``name`` is a valid model name (and not a dot-only name such as ``..``)."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None and not set(name) <= {"."}


def validate_model_name(name: object) -> str:
    """``name`` if it is a safe model name, else an InvalidInputError that says the rule."""
    if not is_model_name(name):
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit",
            details={"field": "name", "value": repr(name)},
        )
    return name  # type: ignore[return-value]


def is_alias(alias: object) -> bool:
    return isinstance(alias, str) and _ALIAS_RE.fullmatch(alias) is not None


def validate_alias(alias: object) -> str:
    """``alias`` if valid, else an InvalidInputError that says the rule."""
    if not is_alias(alias):
        raise InvalidInputError(
            f"invalid alias {alias!r}: use 1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter",
            details={"field": "alias", "value": repr(alias)},
        )
    return alias  # type: ignore[return-value]


def parse_model_reference(reference: str) -> tuple[str, str | None]:
    """``name``, ``name@alias`` or ``name/version`` as the model name and the version (a number or an alias as
    text; None: the default), or an InvalidInputError that says the forms."""
    name, sep, version = reference.partition("@") if "@" in reference else reference.partition("/")
    validate_model_name(name)
    if sep == "@":
        return name, validate_alias(version)
    if sep == "/" and not (version.isascii() and version.isdigit() and int(version) > 0):
        raise InvalidInputError(f"invalid model reference {reference!r}: after `/` comes a version number; write "
                                "`name`, `name@alias` or `name/version`", {"value": reference})
    return name, version or None


def is_job_id(job_id: str) -> bool:
    return _JOB_ID_RE.fullmatch(job_id) is not None


# -- small shared helpers -----------------------------------------------------------------------------
def preview(items: Sequence[Any], limit: int = PREVIEW_ITEMS) -> str:
    """The first ``limit`` items for a message, then "and N more"."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def label_key(label: Any) -> str:
    """A class label as a JSON object key (coefficients by class, class weights)."""
    return str(label.item() if isinstance(label, np.generic) else label)


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds and a ``Z``, as every record stores it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age_seconds(iso: str) -> float:
    """Seconds since an ISO 8601 time written by :func:`utc_now` (infinite when it cannot be read)."""
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - then).total_seconds()


# -- hyperparameters ----------------------------------------------------------------------------------
def _bounds(name: str, **limits: float) -> dict[str, float]:
    """The engine's range of ``name`` (service.engine.params.RANGES), narrowed by the service's ``limits``."""
    return {**RANGES.get(name, {}), **limits}


class TrainParams(Request):
    """Engine hyperparameters (see `service.engine.LogisticRegression`); every field has a safe default.

    Names, choices and ranges are the engine's own (:mod:`service.engine.params`); the upper limits
    added here keep one request's work bounded.
    """

    model_config = ConfigDict(extra="forbid")

    penalty: Literal[CHOICES["penalty"]] = Field("l2", description="Regularization.")  # type: ignore[valid-type]
    C: float | None = Field(
        None, **_bounds("C", le=1e12),
        description="Inverse regularization strength as in scikit-learn; default 1. Give C or alpha.",
    )
    alpha: float | None = Field(None, **_bounds("alpha", le=1e6), description="Strength per mean loss: 1 / (C * n).")
    l1_ratio: float = Field(0.5, **_bounds("l1_ratio"), description="L1 share of an elastic-net penalty.")
    solver: Literal[CHOICES["solver"]] = Field(  # type: ignore[valid-type]
        "lbfgs", description="`lbfgs`/`newton` need l2 or none; `proximal` or mini-batch solvers for L1."
    )
    max_iter: int | None = Field(None, ge=INT_MINIMA["max_iter"],
                                 description="Iterations (full batch) or epochs; default per solver.")
    tol: float | None = Field(None, **_bounds("tol", le=1), description="Stopping tolerance; default per solver.")
    fit_intercept: bool = True
    standardize: bool = Field(True, description="Learn and apply feature mean/scale inside the model.")
    class_weight: Literal["balanced"] | dict[str, float] | None = Field(
        None, description='`"balanced"` or `{label: weight}` (labels as strings).'
    )
    batch_size: int = Field(32, ge=INT_MINIMA["batch_size"], le=1_000_000)
    learning_rate: float | None = Field(None, **_bounds("learning_rate", le=100))
    lr_schedule: Literal[CHOICES["lr_schedule"]] = "constant"  # type: ignore[valid-type]
    lr_gamma: float = Field(0.5, **_bounds("lr_gamma"))
    lr_step_size: int = Field(50, ge=INT_MINIMA["lr_step_size"])
    lr_decay: float = Field(0.01, **_bounds("lr_decay", le=100))
    lr_min: float = Field(0.0, **_bounds("lr_min"))
    momentum: float = Field(0.9, **_bounds("momentum"))
    beta1: float = Field(0.9, **_bounds("beta1"))
    beta2: float = Field(0.999, **_bounds("beta2"))
    early_stopping: bool = False
    validation_fraction: float = Field(
        0.1, **_bounds("validation_fraction"), description="Engine's early-stopping split."
    )
    n_iter_no_change: int = Field(5, ge=INT_MINIMA["n_iter_no_change"], le=10_000)
    random_state: int | None = Field(0, ge=0, le=2**32 - 1, description="Seed of shuffles and splits.")

    @model_validator(mode="after")
    def _combination(self) -> TrainParams:
        check_combination(self.penalty, self.solver, self.alpha, self.C)  # its ValueError becomes a 422
        return self


# -- mixed-type tables -------------------------------------------------------------------------------
#: How a column of the caller's table enters the model.
ColumnKind = Literal["numeric", "boolean", "categorical"]
COLUMN_KINDS: tuple[str, ...] = ("numeric", "boolean", "categorical")
#: Most columns a categorical column may expand to (its levels, plus the infrequent group).
MAX_CATEGORIES_PER_COLUMN = 100_000


class EncodingParams(Request):
    """How a table with text categories, booleans and empty cells becomes the model's input; stored with the
    version and applied to every prediction. Used when the table needs it (a text or boolean column, an empty
    cell) or when any field here is given."""

    model_config = ConfigDict(extra="forbid")

    categorical: list[str] = Field(
        default_factory=list, max_length=10_000,
        description="Columns to read as categories even when they hold numbers (zip codes, product ids).")
    column_types: dict[str, ColumnKind] = Field(
        default_factory=dict, description="Per-column override of the inferred kind: numeric, boolean, categorical.")
    impute: Literal["median", "mean"] = Field(
        "median", description="What a missing number (or boolean) becomes: the training median or mean.")
    missing_indicator: bool = Field(
        False, description="Add a 0/1 column per numeric column that had missing values in training.")
    missing_category: Literal["level", "most_frequent"] = Field(
        "level", description="A missing category: a level of its own, or the most frequent category.")
    min_frequency: float | None = Field(
        None, gt=0, description="Categories seen fewer times (an integer count, or a share below 1) are grouped "
        "into one 'infrequent' column.")
    max_categories: int | None = Field(
        None, ge=2, le=MAX_CATEGORIES_PER_COLUMN,
        description="At most this many columns per categorical column, the 'infrequent' group included.")
    unknown: Literal["ignore", "infrequent"] = Field(
        "ignore", description="A category not seen in training: all zeros, or the 'infrequent' column when there "
        "is one. Either way it is counted in the drift statistics and the X-Unknown-Categories header.")

    @model_validator(mode="after")
    def _consistent(self) -> EncodingParams:
        if self.min_frequency is not None and self.min_frequency >= 1 and self.min_frequency != int(self.min_frequency):
            raise ValueError(f"min_frequency is a count (an integer >= 1) or a share (< 1), got {self.min_frequency}")
        clash = sorted(c for c in self.categorical if self.column_types.get(c, "categorical") != "categorical")
        if clash:
            raise ValueError(f"column(s) {preview(clash)} are both in `categorical` and typed otherwise in "
                             "`column_types`")
        return self

    def declared(self) -> dict[str, str]:
        """The kinds the caller named, per column."""
        return {**dict.fromkeys(self.categorical, "categorical"), **self.column_types}

    def given(self) -> bool:
        """Whether the caller set any field (then the table is encoded even when plain numbers)."""
        return bool(self.model_fields_set)


# -- the registry's records ---------------------------------------------------------------------------
class RegistryState(BaseModel):
    """``<model>/model.json``: the next version number, the aliases and the stored thresholds."""

    model_config = ConfigDict(extra="ignore")

    next_version: int = Field(1, ge=1)
    aliases: dict[Annotated[str, StringConstraints(pattern=ALIAS_PATTERN)], Annotated[int, Field(strict=True)]] = (
        Field(default_factory=dict))
    thresholds: dict[str, float] = Field(default_factory=dict, description="Version number (as text) -> threshold.")


class ValidationSample(BaseModel):
    """The held-out rows a version keeps: positions in the training set, true labels, probabilities."""

    rows: list[int]
    labels: list[Label]
    probabilities: list[list[float]]


class VersionMetadata(BaseModel):
    """``<model>/<version>/metadata.json``: what training measured and what serving needs besides the artefact.

    The registry sets the system fields (name, version, created_at, sha256, artefact, checksum, signature)
    and, when it reads a version, ``aliases`` and ``threshold`` from the model's state. Unknown keys are kept,
    so a store written by a newer release still loads.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    # system fields, set by the registry
    name: str
    version: int = Field(strict=True)
    created_at: str
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    artefact: str
    checksum: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="sha256 of the version's manifest (service.store.manifest); absent in old stores.")
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="HMAC-SHA256 of the manifest under LOGREG_SIGNING_KEY, when one was set.")
    # what serving needs
    classes: list[Label] = Field(min_length=2)
    feature_names: list[str]
    # the training report
    model: str | None = None
    n_samples: int | None = None
    n_train: int | None = None
    n_validation: int | None = None
    converged: bool | None = None
    n_iter: int | None = None
    warnings: list[str] = Field(default_factory=list)
    train_metrics: dict[str, Any] | None = None
    validation_metrics: dict[str, Any] | None = None
    loss_history: list[float] = Field(default_factory=list)
    calibration: dict[str, Any] | None = None
    duration_seconds: float | None = None
    # how it was trained and what it learned
    params: dict[str, Any] = Field(default_factory=dict)
    validation_fraction: float | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    coefficients: dict[str, dict[str, float]] | None = None
    intercepts: dict[str, float] | None = None
    feature_means: list[float] | None = None
    feature_stds: list[float] | None = None
    feature_statistics: dict[str, Any] | None = None
    alpha: float | None = None
    standardization: dict[str, list[float]] | None = None
    validation_sample: ValidationSample | None = None
    validation_sample_rows: int | None = None  # the sample is in the side file (store/details.py)
    encoding: dict[str, Any] | None = Field(
        None, description="A mixed-type table's preprocessing: each column's kind and encoding, and its parameters.")
    trained_on: dict[str, Any] | None = Field(
        None, description="Where a version trained on a cluster was fitted: `compute` (`dask`), `workers`, "
        "`partitions`, `rows`.")
    # from the model's state when read
    aliases: list[str] = Field(default_factory=list)
    threshold: float | None = None

    def card(self) -> dict[str, Any]:
        """The public view: every stored field (without the bulky validation sample)."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"validation_sample"})


#: Fields of a version's record the registry writes itself; same-named keys of the caller are replaced.
SYSTEM_FIELDS = ("name", "version", "created_at", "sha256", "artefact", "checksum", "signature")
#: Fields added from the model's state when a version is read; never stored in metadata.json.
STATE_FIELDS = ("aliases", "threshold")


# -- background jobs ----------------------------------------------------------------------------------
class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Job(BaseModel):
    """``.jobs/<id>.json``: a background training's state, progress and outcome."""

    model_config = ConfigDict(extra="ignore")

    id: str
    model: str
    state: JobState
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    pid: int | None = None
    request_digest: str | None = None  # sha256 of the request an Idempotency-Key was first used with
