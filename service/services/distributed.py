"""Training on a Dask cluster: a ``data`` URI read, split and fitted by the cluster's workers, the model stored
here like any version (:func:`train_on_cluster`, the use case; no HTTP).

What crosses the network:

- to the scheduler: the table's files (the local paths the service resolved under LOGREG_DATA_ROOTS, which
  the workers must see at the same place, or the ``s3://`` objects, which they read with their own AWS
  credentials) and small tasks that name functions of this package (workers run the same version of it);
- the workers read the table themselves (``dask.dataframe``), turn each partition into the engine's block
  (:mod:`service.data.partitions`) and keep it in memory; the class counts, the standardization and the
  stratified validation split are computed there, partition by partition;
- each evaluation of the objective (and each Hessian-vector product) sends the coefficients out, ``n_params``
  floats per partition, and one partial sum of the same size comes back per partition (summed on the cluster
  in groups of :data:`_FAN_IN` first when there are many): the optimizer runs here, on vectors of length
  ``n_params`` (:mod:`service.engine._partitioned`);
- samples come back, bounded whatever the table's size: the ~20 000 evenly strided training rows L-BFGS
  pre-solves on (as the one-process fit does), and at most :data:`SAMPLE_ROWS` rows of each split for the
  report (metrics, calibration on the validation rows, the drift reference's deciles).

Mixed-type tables (text, booleans or empty cells in feature columns, or an ``encoding``) are refused: their
encoding is fitted in one process. Mini-batch solvers are refused too, naming the full-batch ones. A worker
lost mid-fit is the cluster's to handle: Dask recomputes its partitions from the source and the fit goes on;
when it cannot (every worker gone, a task's workers dying again and again), the training fails with
:class:`~service.errors.ClusterUnavailableError` and nothing is stored. Every wait for the cluster checks the
training's time limit and cancellation.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import partitions as tasks
from ..data.sources import Files, s3_options
from ..domain import EncodingParams, preview
from ..engine import LogisticRegression
from ..engine._partitioned import add_up, centered_squares, column_sums
from ..engine.logistic import DEFAULT_MAX_ITER
from ..engine.params import FULL_BATCH_SOLVERS
from ..errors import (
    ClusterUnavailableError,
    DataAccessError,
    InvalidInputError,
    LogregError,
    SourceUnavailableError,
)
from ..store.registry import ModelRegistry
from . import drift
from .training import TrainingProgress, check_iteration_budget, engine_params, store_version

if TYPE_CHECKING:
    from distributed import Client, Future

#: How the service asks for Dask when it is not installed.
INSTALL_HINT = "pip install 'logreg-service[dask]'"
#: Seconds between looks at the training's time limit and cancel flag while the cluster works.
_POLL_SECONDS = 0.1
#: Partial sums added up on the cluster, this many at a time, until at most this many come back.
_FAN_IN = 32
#: Most rows of each split brought back for the report (metrics, calibration, drift deciles).
SAMPLE_ROWS = 100_000
#: Bytes of CSV per partition (dask.dataframe's ``blocksize``).
CSV_PARTITION_BYTES = 64 * 2**20


def dask_available() -> bool:
    """Whether ``dask[dataframe]`` and ``distributed`` can be imported."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def require_dask() -> None:
    """A :class:`ClusterUnavailableError` saying how to install Dask, when it is not."""
    if not dask_available():
        raise ClusterUnavailableError(
            f"training on Dask needs the optional Dask dependencies, which this service does not have: "
            f"install them with `{INSTALL_HINT}` (or train in this process: \"compute\": \"local\")",
            {"install": INSTALL_HINT},
        )


def check_cluster_request(params: dict[str, Any], encoding: EncodingParams | None) -> None:
    """Refuse, before any work, what a cluster does not train: mini-batch solvers and explicit encodings."""
    solver = params.get("solver", "lbfgs")
    if solver not in FULL_BATCH_SOLVERS:
        raise InvalidInputError(
            f"solver {solver!r} takes mini-batches of rows in one process and does not run on Dask; on Dask use a "
            f"full-batch solver: {', '.join(FULL_BATCH_SOLVERS)} (proximal for L1 and elastic-net)",
            {"field": "params.solver", "full_batch_solvers": list(FULL_BATCH_SOLVERS)},
        )
    if encoding is not None and encoding.given():
        raise InvalidInputError(f"`encoding` applies to {tasks.MIXED_HINT}", {"field": "encoding"})


# -- the cluster ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def connect(address: str, timeout: float) -> Iterator[Client]:
    """A client of the scheduler at ``address``, closed (its data released on the cluster) on the way out;
    :class:`ClusterUnavailableError` when the scheduler does not answer within ``timeout`` seconds or has no
    worker within as long."""
    require_dask()
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailableError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s (LOGREG_DASK_SCHEDULER): "
            f"{type(exc).__name__}: {exc}", {"scheduler": address},
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterUnavailableError(f"the Dask scheduler at {address!r} has no worker (waited {timeout:g} s)",
                                          {"scheduler": address}) from None
        yield client
    finally:
        with contextlib.suppress(Exception):  # a scheduler that went away cannot be told goodbye
            client.close(timeout=timeout)


class Runner:
    """Runs tasks on the cluster and waits for them, looking at ``check`` (time limit, cancel) meanwhile;
    the cluster's failures become the service's errors."""

    def __init__(self, client: Client, check: Callable[[], None] = lambda: None, patience: float = 10.0) -> None:
        self.client = client
        self.check = check
        self.patience = patience  # seconds without the scheduler before giving up

    def wait(self, futures: Sequence[Future]) -> None:
        from distributed import wait

        lost_since = None
        while True:
            self.check()
            if self.client.status != "running":  # the scheduler went away: the client tries to reconnect
                lost_since = lost_since or time.monotonic()
                if self.client.status in ("closing", "closed") or time.monotonic() - lost_since > self.patience:
                    raise ClusterUnavailableError(
                        f"lost the Dask scheduler during the training (client {self.client.status}); nothing was "
                        "stored")
            else:
                lost_since = None
            try:
                with self.client.as_current():
                    wait(futures, timeout=_POLL_SECONDS)
                return
            except TimeoutError:
                continue

    def gather(self, futures: Sequence[Future]) -> list[Any]:
        self.wait(futures)
        with cluster_errors():
            return list(self.client.gather(list(futures)))

    def total(self, futures: Sequence[Future]) -> Any:
        """The sum of the results, added up on the cluster in groups of :data:`_FAN_IN` first."""
        futures = list(futures)
        while len(futures) > _FAN_IN:
            futures = [self.client.submit(_add, *futures[i : i + _FAN_IN], pure=False)
                       for i in range(0, len(futures), _FAN_IN)]
        return add_up(self.gather(futures))

    def workers(self) -> int:
        try:
            info = self.client.scheduler_info(n_workers=-1)  # every worker, not the first few
        except TypeError:  # distributed before 2025.4 lists them all anyway
            info = self.client.scheduler_info()
        return len(info["workers"])


def _add(*results: Any) -> Any:
    return add_up(results)


def _apply(part: Any, *each: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(part, *each, *args)


@contextlib.contextmanager
def cluster_errors() -> Iterator[None]:
    """What goes wrong on the cluster, as the service's errors; the tasks' own (data) errors pass through."""
    from distributed import CancelledError, KilledWorker
    from distributed.comm import CommClosedError

    try:
        yield
    except LogregError:
        raise
    except KilledWorker as exc:
        raise ClusterUnavailableError(
            f"Dask workers died while running a task of the training ({exc}); nothing was stored") from None
    except (CancelledError, CommClosedError, ConnectionError, TimeoutError) as exc:
        raise ClusterUnavailableError(
            f"the Dask cluster stopped answering during the training ({type(exc).__name__}: {exc}); nothing was "
            "stored") from None


class ClusterPartitions:
    """Partitions kept on the cluster's workers, as futures: the engine's :class:`Partitions`."""

    def __init__(self, runner: Runner, futures: list[Future]) -> None:
        self.runner = runner
        self.futures = futures

    def __len__(self) -> int:
        return len(self.futures)

    def _map(self, fn: Callable[..., Any], args: tuple[Any, ...], each: Sequence[tuple[Any, ...]] | None = None
             ) -> list[Future]:
        columns = list(zip(*each, strict=True)) if each else []
        return self.runner.client.map(_apply, self.futures, *columns, fn=fn, args=args, pure=False)

    def map_sum(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.runner.total(self._map(fn, args))

    def map_keep(self, fn: Callable[..., Any], *args: Any) -> ClusterPartitions:
        return self.map_each(fn, None, *args)

    def map_each(self, fn: Callable[..., Any], each: Sequence[tuple[Any, ...]] | None, *args: Any
                 ) -> ClusterPartitions:
        """:meth:`map_keep` with arguments of each partition too: ``fn(part, *each[i], *args)``."""
        futures = self._map(fn, args, each)
        self.runner.wait(futures)
        bad = [f for f in futures if f.status == "error"]
        if bad:
            self.runner.gather(bad)  # raises the first task's error
        return ClusterPartitions(self.runner, futures)

    def map_list(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return self.map_list_each(fn, None, *args)

    def map_list_each(self, fn: Callable[..., Any], each: Sequence[tuple[Any, ...]] | None, *args: Any
                      ) -> list[Any]:
        return self.runner.gather(self._map(fn, args, each))


# -- the table on the cluster --------------------------------------------------------------------------------
@dataclass
class ClusterTable:
    """A labelled table read by the workers: its training rows (the engine's blocks) and validation rows, each
    partition where it was read."""

    names: list[str]
    classes: np.ndarray
    rows: int
    train_rows: int
    validation_rows: int
    train: ClusterPartitions
    held_out: ClusterPartitions

    @property
    def partitions(self) -> int:
        return len(self.train)


def read_frame(files: Files, target: str, features: Sequence[str] | None, s3_endpoint_url: str | None = None
               ) -> tuple[Any, list[str]]:
    """The table at ``files`` as a (lazy) dask data frame of its feature columns and ``target``, and the
    feature names: every column but the target, in file order, unless ``features`` names them."""
    import dask.dataframe as dd

    columns, kinds = _columns(files)
    if target not in columns:
        raise InvalidInputError(f"{files.uri} has no column {target!r} (the target); its columns are "
                                f"{preview(columns)}", {"field": "target"})
    names = [c for c in columns if c != target] if features is None else list(features)
    unknown = [f for f in names if f not in columns]
    if unknown or target in names:
        raise InvalidInputError(f"{files.uri}: unknown feature column(s) {preview(unknown or [target])}",
                                {"field": "features"})
    if not names:
        raise InvalidInputError(f"{files.uri} has no feature column besides the target {target!r}")
    not_numbers = [f for f in names if kinds.get(f, "number") != "number"]
    if not_numbers:
        raise InvalidInputError(f"{files.uri}: column(s) {preview(not_numbers)} do not hold numbers; "
                                f"{tasks.MIXED_HINT}", {"columns": not_numbers})
    options = s3_options(s3_endpoint_url) if files.paths[0].startswith("s3://") else None
    paths = list(files.paths)
    with read_errors(files.uri):  # dask.dataframe reads the start of the table here, for its column types
        if files.format == "csv":
            gz = any(p.lower().endswith(".gz") for p in paths)
            frame = dd.read_csv(paths, blocksize=None if gz else CSV_PARTITION_BYTES,
                                compression="gzip" if gz else None, usecols=[*names, target],
                                dtype={**dict.fromkeys(names, "float64"), target: "object"}, storage_options=options)
        else:
            frame = dd.read_parquet(paths, columns=[*names, target], storage_options=options)
    return frame, names


def _columns(files: Files) -> tuple[list[str], dict[str, str]]:
    """The table's column names (from the first file) and, for Parquet, which hold numbers."""
    path = files.paths[0]
    try:
        with files.fs.open(path, "rb") as fh:
            if files.format == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = pq.read_schema(fh)
                kinds = {f.name: "number" if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) else
                         str(f.type) for f in schema}
                return list(schema.names), kinds
            stream = gzip.GzipFile(fileobj=fh) if path.lower().endswith(".gz") else fh
            line = stream.readline().decode("utf-8-sig")
    except LogregError:
        raise
    except FileNotFoundError:
        raise InvalidInputError(f"{path} is gone", {"uri": files.uri}) from None
    except PermissionError as exc:
        raise DataAccessError(f"reading {path} was refused: {exc}", {"uri": files.uri}) from None
    except Exception as exc:  # OSError, the object store's client errors, a file that is not Parquet
        raise SourceUnavailableError(f"cannot read the header of {path}: {type(exc).__name__}: {exc}",
                                     {"uri": files.uri}) from None
    header = next(csv.reader(io.StringIO(line)), [])
    if not header:
        raise InvalidInputError(f"{path} has no header row", {"uri": files.uri})
    return [h.strip() for h in header], {}


def load_table(runner: Runner, frame: Any, names: list[str], target: str, *, validation_fraction: float, seed: int,
               uri: str) -> ClusterTable:
    """The rows of a dask data frame, read, checked, coded and split on the workers and kept there."""
    import dask

    where = [f"{uri}, partition {i + 1}" for i in range(frame.npartitions)]
    delayed = [dask.delayed(tasks.read_part)(chunk, names, target, w)
               for chunk, w in zip(frame.to_delayed(), where, strict=True)]
    raw = ClusterPartitions(runner, runner.client.compute(delayed))
    with read_errors(uri):
        counted = raw.map_list(tasks.label_counts)
    classes, codes = tasks.label_codes([values for values, _ in counted])
    if classes.size < 2:
        raise InvalidInputError(f"the labels hold a single class ({preview(classes.tolist())}); training needs at "
                                "least 2 classes")
    by_class = np.zeros((len(counted), classes.size), dtype=np.int64)  # rows of each class in each partition
    for i, (values, counts) in enumerate(counted):
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            by_class[i, codes[value]] += count
    held = np.array([tasks.held_out_counts(row, validation_fraction) for row in by_class])
    rows = by_class.sum(axis=1)
    train_rows = rows - held.sum(axis=1)
    if np.count_nonzero(by_class.sum(axis=0) - held.sum(axis=0)) < 2:
        raise InvalidInputError("the training split holds a single class; send more rows of each class")
    positions = np.concatenate([[0], np.cumsum(rows)[:-1]]).tolist()
    train_offsets = np.concatenate([[0], np.cumsum(train_rows)[:-1]]).tolist()
    each = [(i, positions[i], train_offsets[i]) for i in range(len(counted))]
    split = raw.map_each(tasks.split_part, each, codes, validation_fraction, seed)
    del raw
    return ClusterTable(names, classes, int(rows.sum()), int(train_rows.sum()), int(held.sum()),
                        split.map_keep(tasks.train_block), split.map_keep(tasks.held_out))


@contextlib.contextmanager
def read_errors(uri: str) -> Iterator[None]:
    """What goes wrong while the workers read the table, as the service's errors."""
    try:
        with cluster_errors():
            yield
    except LogregError:
        raise
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"the Dask workers cannot find {uri} ({exc}): they read the table themselves, so mount it at the same "
            "path on every worker (a shared volume) or use s3://", {"uri": uri}) from None
    except PermissionError as exc:
        raise DataAccessError(f"the Dask workers may not read {uri}: {exc}", {"uri": uri}) from None
    except (ValueError, TypeError) as exc:  # pandas' parse errors: text in a number column
        message = str(exc).rpartition("Original Message: ")[2]  # without dask.dataframe's wrapping
        raise InvalidInputError(f"the Dask workers could not read {uri}: {message}; every feature column must hold "
                                f"numbers: {tasks.MIXED_HINT}", {"uri": uri}) from None
    except OSError as exc:
        raise SourceUnavailableError(f"the Dask workers could not read {uri}: {exc}", {"uri": uri}) from None


def fit_on_cluster(table: ClusterTable, params: dict[str, Any], progress: TrainingProgress | None = None
                   ) -> LogisticRegression:
    """The engine's model fitted to the training rows of ``table``, where they are."""
    progress = progress or TrainingProgress()
    estimator = LogisticRegression(**engine_params(params, table.classes))
    try:
        with cluster_errors():
            estimator.fit_partitioned(table.train, table.classes, len(table.names), callback=progress)
    except (ValueError, FloatingPointError) as exc:
        raise InvalidInputError(f"training failed: {exc}") from None
    return estimator


def _sample(parts: ClusterPartitions, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """At most about :data:`SAMPLE_ROWS` of ``rows`` rows, drawn on each partition in proportion."""
    keep = 1.0 if rows <= SAMPLE_ROWS else SAMPLE_ROWS / rows
    got = parts.map_list_each(tasks.sample_rows, [(i,) for i in range(len(parts))], keep, seed)
    X = np.concatenate([g[0] for g in got])
    y = np.concatenate([g[1] for g in got])
    positions = None if got[0][2] is None else np.concatenate([g[2] for g in got])
    return X, y, positions


def _statistics(table: ClusterTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std, min and max of each feature over the training rows."""
    n = table.train_rows
    with np.errstate(over="ignore", invalid="ignore"):
        mean = table.train.map_sum(column_sums) / n
        std = np.sqrt(table.train.map_sum(centered_squares, mean) / n)
    if not np.isfinite(std).all():
        cols = [table.names[j] for j in np.flatnonzero(~np.isfinite(std))]
        raise InvalidInputError(f"column(s) {preview(cols)} hold values too large to train on (they overflow)")
    ranges = [r for r in table.train.map_list(tasks.min_max) if r is not None]
    return mean, std, np.min([r[0] for r in ranges], axis=0), np.max([r[1] for r in ranges], axis=0)


def train_on_cluster(
    registry: ModelRegistry,
    name: str,
    files: Files,
    target: str,
    features: Sequence[str] | None = None,
    *,
    scheduler: str,
    connect_timeout: float = 10.0,
    params: dict[str, Any] | None = None,
    validation_fraction: float = 0.2,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    max_iter_limit: int | None = None,
    progress: TrainingProgress | None = None,
    calibration: str = "none",
    encoding: EncodingParams | None = None,
    s3_endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Train on the table at ``files`` on the Dask cluster at ``scheduler`` (see the module docstring) and store
    the model as the next version of ``name``; the report is :func:`.training.train_and_store`'s, with
    ``trained_on`` (workers, partitions, rows). Nothing is stored when anything fails or stops the training."""
    start = time.perf_counter()
    progress = progress or TrainingProgress()
    params = dict(params or {})
    check_iteration_budget(params, max_iter_limit)
    check_cluster_request(params, encoding)
    if calibration != "none" and validation_fraction <= 0:
        raise InvalidInputError(f"calibration {calibration!r} needs a validation split to fit on "
                                f"(validation_fraction > 0, got {validation_fraction})", {"field": "calibration"})
    seed = params.get("random_state")
    if seed is None:  # the split must be the same if a lost partition is read again
        seed = int(np.random.default_rng().integers(2**32))
    progress.phase("reading", bytes_total=files.total_bytes, source=files.uri)
    with connect(scheduler, connect_timeout) as client:
        runner = Runner(client, progress.check, patience=connect_timeout)
        workers = runner.workers()
        frame, names = read_frame(files, target, features, s3_endpoint_url)
        table = load_table(runner, frame, names, target, validation_fraction=validation_fraction, seed=seed,
                           uri=files.uri)
        progress.read(table.rows, files.total_bytes)
        if calibration != "none" and table.classes.size != 2:
            raise InvalidInputError(f"calibration {calibration!r} needs a binary model (this one has "
                                    f"{table.classes.size} classes)", {"field": "calibration"})
        mean, std, mins, maxs = _statistics(table)
        progress.phase("fitting", max_iter=params.get("max_iter") or DEFAULT_MAX_ITER[params.get("solver", "lbfgs")],
                       partitions=table.partitions, workers=workers)
        estimator = fit_on_cluster(table, params, progress)
        X_train, y_train, _ = _sample(table.train, table.train_rows, seed)
        X_val, y_val, val_rows = _sample(table.held_out, table.validation_rows, seed)
        trained_on = {"compute": "dask", "workers": workers, "partitions": table.partitions, "rows": table.rows}
    classes = table.classes
    assert val_rows is not None
    return store_version(
        registry, name, estimator, names=names, n_samples=table.rows, fit_X=X_train, y_train=classes[y_train],
        val_X=X_val, y_val=classes[y_val], val_rows=val_rows,
        statistics=lambda: drift.reference_statistics(table.train_rows, mean, std, mins, maxs, X_train, names,
                                                      seed=seed),
        encoder=None, params=params, validation_fraction=validation_fraction, calibration=calibration,
        description=description, tags=tags, progress=progress, start=start, n_train=table.train_rows,
        n_validation=table.validation_rows, trained_on=trained_on)
