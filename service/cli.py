"""The ``logreg`` command: serve the API; train, predict and manage models in a registry directory, or, with
``--url`` (or ``LOGREG_URL``), in a running service through the Python client.

Output: human tables on a terminal, JSON otherwise or with ``--json`` (``predict`` writes CSV, or JSON
lines with ``--json``). Exit codes: 0 done, 1 another error (a conflict, a refused API key), 2 a usage
error, 3 a model, version, alias or job not found, 4 invalid input (a data file that is missing or cannot be
read too), 5 the server or the connection failed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import BaseModel, ValidationError

from . import __version__
from . import client as remote
from .config import ConfigurationError, Settings
from .errors import (
    BusyError,
    InvalidInputError,
    LimitExceededError,
    LogregError,
    NotFoundError,
    RegistryUnavailableError,
    SourceUnavailableError,
    TimeLimitError,
)

# What only some commands need is imported in them, so a command that asks a running service starts quickly.
if TYPE_CHECKING:
    from .api.schemas import ThresholdOptimizeRequest
    from .domain import EncodingParams, TrainParams
    from .store.registry import ModelRegistry

DEMO_MODEL = "breast-cancer"
DEMO_TARGET = "diagnosis"
DEMO_CSV = Path(__file__).resolve().parent.parent / "examples" / "breast_cancer.csv"

#: Exit codes.
USAGE, NOT_FOUND, INVALID, UNAVAILABLE, OTHER = 2, 3, 4, 5, 1


class UsageError(Exception):
    """A command line that cannot work as given (exit code 2)."""


def _param(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (numbers, booleans, null), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _names(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _threshold(text: str) -> float | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, or none, got {text!r}") from None


def _unit(text: str) -> float:
    value = _threshold(text)
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _version(text: str) -> int | str:
    return int(text) if text.isascii() and text.isdigit() else text


def one_line(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's report as one plain line: where and what of the first problem, and how many more."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    where = ".".join(str(p) for p in first.get("loc", ()))
    head = " ".join(p for p in (prefix, where) if p)
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{head}: {msg}{more}" if head else f"{msg}{more}"


def _validated(model: type[BaseModel], data: dict[str, Any], flag: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(one_line(exc, flag)) from None


# -- where the models are: a registry directory, or a running service ------------------------------------
def _url(args: argparse.Namespace) -> str | None:
    url = getattr(args, "url", None)
    if url and getattr(args, "store", None):
        raise UsageError("give --url (a running service) or --store (a registry directory), not both")
    if getattr(args, "store", None):
        return None
    return url or os.environ.get("LOGREG_URL") or None


def _client(args: argparse.Namespace) -> remote.LogregClient | None:
    """The client of the service named by ``--url`` or LOGREG_URL (its key from LOGREG_API_KEY), or None."""
    url = _url(args)
    if url is None:
        return None
    if "://" not in url:
        url = f"http://{url}"
    return remote.LogregClient(url, timeout=getattr(args, "timeout", None) or 60.0,
                               api_key=os.environ.get("LOGREG_API_KEY") or None)


def _store_path(args: argparse.Namespace) -> Path:
    return Path(args.store) if getattr(args, "store", None) else Settings().model_store


def _registry(args: argparse.Namespace, create: bool = False) -> ModelRegistry:
    """The registry at ``--store`` (default LOGREG_MODEL_STORE); only a training may create its directory."""
    from .store.registry import ModelRegistry

    path = _store_path(args)
    if not create and not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise UsageError(f"no model store at {str(path)!r}: it {what} (give --store with an existing registry "
                         "directory, or --url with a running service)")
    settings = Settings()
    return ModelRegistry(path, cache_size=settings.cache_size, signing_key=settings.signing_key_bytes())


def _needs_service(args: argparse.Namespace, what: str) -> remote.LogregClient:
    client = _client(args)
    if client is None:
        raise UsageError(f"{what} needs a running service: give --url or set LOGREG_URL")
    return client


# -- output -------------------------------------------------------------------------------------------
def _on_terminal() -> bool:
    return sys.stdout.isatty()


def _as_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False)) or not _on_terminal()


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str]) -> None:
    """``data`` as JSON (``--json``, or stdout is not a terminal) or as ``human`` renders it."""
    text = json.dumps(data, indent=2) if _as_json(args) else human(data)
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on spaces, headers in capitals."""
    cells = [[h.upper() for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def pairs(items: Sequence[tuple[str, Any]]) -> str:
    """``name  value`` lines, the names aligned; items whose value is ... are left out."""
    shown = [(k, v) for k, v in items if v is not ...]
    width = max((len(k) for k, _ in shown), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in shown)


def _spans(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3, 5``."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "log_loss", "brier", "roc_auc")


def _metrics_table(train: dict[str, Any] | None, validation: dict[str, Any] | None) -> str:
    rows = [(k, (train or {}).get(k), (validation or {}).get(k)) for k in ("n_samples", *METRIC_KEYS)
            if (train or {}).get(k) is not None or (validation or {}).get(k) is not None]
    return table(("metric", "training", "validation"), rows)


def _models_text(models: list[dict[str, Any]]) -> str:
    if not models:
        return "no models"
    return table(("model", "latest", "versions", "aliases"),
                 [(m["name"], m["latest_version"], _spans(m["versions"]),
                   f"integrity error: {m['integrity_error']}" if m.get("integrity_error") else m["aliases"])
                  for m in models])


def _versions_text(versions: list[dict[str, Any]]) -> str:
    return table(("version", "created", "samples", "converged", "aliases", "threshold", "description"),
                 [(v["version"], v.get("created_at"), v.get("n_samples"), v.get("converged"), v.get("aliases"),
                   v.get("threshold"),
                   f"integrity error: {v['integrity_error']}" if v.get("integrity_error") else v.get("description"))
                  for v in versions])


def _default_params() -> dict[str, Any]:
    from .domain import TrainParams

    return TrainParams().model_dump()


def _card_text(card: dict[str, Any], top: int = 15) -> str:
    names = card.get("feature_names") or []
    head = pairs([
        ("model", card.get("name")), ("version", card.get("version")), ("created", card.get("created_at")),
        ("classes", card.get("classes")),
        ("features", f"{len(names)}: {_cell(names[:8])}{' ...' if len(names) > 8 else ''}"),
        ("samples", f"{card.get('n_samples')} ({card.get('n_train')} training, {card.get('n_validation')} "
                    "validation)"),
        ("converged", f"{_cell(card.get('converged'))} after {card.get('n_iter')} iterations"),
        ("params", {k: v for k, v in (card.get("params") or {}).items() if _default_params().get(k, ...) != v}
         or "defaults"),
        ("threshold", card.get("threshold")), ("aliases", card.get("aliases")),
        ("description", card.get("description")), ("tags", card.get("tags")), ("sha256", card.get("sha256")),
    ])
    parts = [head, "", _metrics_table(card.get("train_metrics"), card.get("validation_metrics"))]
    coefficients = card.get("coefficients") or {}
    if coefficients:
        classes = list(coefficients)
        stds = dict(zip(names, card.get("feature_stds") or [], strict=False))  # largest effect first

        def effect(f: str) -> float:
            return -max(abs(coefficients[c].get(f) or 0.0) for c in classes) * stds.get(f, 1.0)

        features = sorted(next(iter(coefficients.values())), key=effect)
        rows = [(f, *(coefficients[c].get(f) for c in classes)) for f in features[:top]]
        parts += ["", "coefficients, largest effect (|coefficient| x feature std) first:",
                  table(("feature", *(f"coef {c}" for c in classes)), rows)]
        if len(features) > top:
            parts.append(f"... and {len(features) - top} more features (--json shows every field)")
    return "\n".join(parts)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """What ``logreg train`` prints of a training report."""
    summary = {k: report[k] for k in ("model", "version", "classes", "n_samples", "converged", "n_iter", "warnings")}
    if report.get("calibration"):
        cal = report["calibration"]
        summary["calibration"] = {"method": cal["method"],
                                  **{k: {m: cal[k][m] for m in ("brier", "ece")} for k in ("before", "after")}}
    keys = ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc")
    for split in ("train_metrics", "validation_metrics"):
        if report.get(split) is not None:
            summary[split] = {k: report[split][k] for k in keys}
    return summary


def _summary_text(summary: dict[str, Any]) -> str:
    lines = [pairs([("model", summary["model"]), ("version", summary["version"]), ("classes", summary["classes"]),
                    ("samples", summary["n_samples"]),
                    ("converged", f"{_cell(summary['converged'])} after {summary['n_iter']} iterations"),
                    ("calibration", summary.get("calibration", {}).get("method", ...)),
                    ("warnings", summary["warnings"] or ...)])]
    lines += ["", _metrics_table(summary.get("train_metrics"), summary.get("validation_metrics"))]
    return "\n".join(lines)


def _job_text(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    shown = []
    if progress.get("phase"):
        shown.append(progress["phase"])
    if progress.get("rows_read") is not None:
        shown.append(f"{progress['rows_read']:,} rows read")
    if progress.get("iteration") is not None:
        shown.append(f"iteration {progress['iteration']} of at most {progress.get('max_iter')}")
    if progress.get("eta_seconds") is not None and job["state"] == "running":
        shown.append(f"about {progress['eta_seconds']:.0f} s left")
    error = job.get("error") or {}
    result = job.get("result") or {}
    return pairs([
        ("job", job["id"]), ("model", job["model"]), ("state", job["state"]),
        ("progress", ", ".join(shown) or ...), ("created", job.get("created_at")),
        ("started", job.get("started_at") or ...), ("finished", job.get("finished_at") or ...),
        ("version", result.get("version", ...)),
        ("error", f"{error.get('type')}: {error.get('message')}" if error else ...),
        ("cancel", "requested" if job.get("cancel_requested") else ...),
    ])


def _choice_text(out: dict[str, Any]) -> str:
    metrics = out.get("metrics") or {}
    return pairs([
        ("model", out["model"]), ("version", out["version"]), ("objective", out["objective"]),
        ("threshold", out["threshold"]), ("value", out["value"]),
        ("precision", metrics.get("precision")), ("recall", metrics.get("recall")), ("f1", metrics.get("f1")),
        ("rows", f"{out['n_samples']} ({out['source'].replace('_', ' ')})"),
        ("current", out["current_threshold"]), ("stored", out["stored"]),
    ])


def ensure_demo(registry: ModelRegistry, csv_path: Path = DEMO_CSV) -> dict[str, Any] | None:
    """Train the ``breast-cancer`` demo model when the registry holds no model; return its report."""
    from .data.tables import read_labelled_csv
    from .domain import TrainParams
    from .services.training import train_and_store

    if registry.list_models():
        return None
    if not csv_path.is_file():
        print(f"demo data {csv_path} not found; starting with an empty registry", file=sys.stderr)
        return None
    X, y, names = read_labelled_csv(csv_path.read_bytes(), DEMO_TARGET)
    report = train_and_store(
        registry, DEMO_MODEL, X, y, feature_names=names, params=TrainParams().model_dump(),
        description="Wisconsin diagnostic breast-cancer data (demo)", tags={"source": csv_path.name},
    )
    print(f"trained demo model {DEMO_MODEL!r} version {report['version']}", file=sys.stderr)
    return report


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.protocol import HeaderTimeoutProtocol
    from .observability.lifecycle import PARENT_ENV
    from .observability.logging import uvicorn_log_config
    from .store.registry import ModelRegistry

    # Flags override the environment; workers are separate processes, so pass settings through it.
    for flag, env in (("host", "HOST"), ("port", "PORT"), ("workers", "WORKERS"), ("store", "MODEL_STORE"),
                      ("log_level", "LOG_LEVEL")):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"LOGREG_{env}"] = str(value)
    settings = Settings()
    settings.keys()  # a key file that cannot be read, or a short key: refused before any worker starts
    if settings.workers > 1:  # each worker watches this process and stops if it dies (observability.lifecycle)
        os.environ[PARENT_ENV] = str(os.getpid())
    signing_key = settings.signing_key_bytes()
    # One worker keeps its metrics in memory, where the series of versions it stops tracking can be
    # dropped; several workers need the shared multi-process directory.
    prometheus_dir = _prepare_prometheus_dir(settings) if settings.workers > 1 else None
    try:
        if args.demo or settings.demo:
            ensure_demo(ModelRegistry(settings.model_store, signing_key=signing_key))
        uvicorn.run(
            "service.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            log_config=uvicorn_log_config(settings.log_level, settings.json_logs),
            http=HeaderTimeoutProtocol,
            access_log=False,  # the service logs each request itself, as one JSON line
        )
    finally:
        if prometheus_dir is not None and settings.prometheus_dir is None:  # our own temporary folder
            shutil.rmtree(prometheus_dir, ignore_errors=True)
    return 0


def _prepare_prometheus_dir(settings: Settings) -> Path:
    """Make (and empty) the directory the workers share for Prometheus samples, before any worker starts.

    prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so it must be set
    here, in the parent process, and inherited by every worker.
    """
    _remove_stale_prometheus_dirs()
    path = settings.prometheus_dir or Path(tempfile.gettempdir()) / f"logreg-prometheus-{os.getpid()}"
    if path.exists():
        for item in path.glob("*.db"):
            item.unlink()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def _remove_stale_prometheus_dirs() -> None:
    """Remove the temporary Prometheus directories of earlier `logreg serve` runs whose process is gone (a
    ``kill -9`` leaves them behind)."""
    for path in Path(tempfile.gettempdir()).glob("logreg-prometheus-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmd_sign(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if not registry.signed:
        print("logreg: error: set LOGREG_SIGNING_KEY to the key the service will verify with", file=sys.stderr)
        return 2
    report = registry.sign_store()
    print(json.dumps(report, indent=2))
    for refused in report["refused"]:
        where = f"{refused['name']!r}" + (f" version {refused['version']}" if "version" in refused else " state")
        print(f"logreg sign: not signed: {where}: {refused['reason']}", file=sys.stderr)
    return 1 if report["refused"] else 0


class TerminalProgress:
    """A one-line progress bar on stderr: the phase, a bar of bytes read or iterations run, and the time left.
    It has the methods of ``service.services.training.TrainingProgress``, which trainings report to."""

    WIDTH = 24

    def __init__(self, stream: TextIO = sys.stderr, every: float = 0.1) -> None:
        self.stream = stream
        self.every = every
        self.info: dict[str, Any] = {}
        self.name = ""
        self.started = self.shown = time.monotonic()

    def phase(self, name: str, **info: Any) -> None:
        if self.name:
            self._show(force=True)
            self.stream.write("\n")
        self.name, self.info, self.started = name, dict(info), time.monotonic()
        self._show(force=True)

    def read(self, rows: int, bytes_read: int) -> None:
        self.info.update(rows=rows, done=bytes_read, total=self.info.get("bytes_total"))
        self._show()

    def __call__(self, iteration: int, loss: float) -> None:
        self.info.update(done=iteration, total=self.info.get("max_iter"), loss=loss)
        self._show()

    def check(self) -> None:
        """Nothing stops a training on the command line but Ctrl-C."""

    def close(self) -> None:
        if self.name:
            self._show(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < self.every:
            return
        self.shown = now
        done, total = self.info.get("done") or 0, self.info.get("total") or 0
        share = min(1.0, done / total) if total else 0.0
        bar = "#" * round(share * self.WIDTH) + "." * (self.WIDTH - round(share * self.WIDTH))
        parts = [f"{self.name:<10} [{bar}] {share:4.0%}"]
        if "rows" in self.info:
            parts.append(f"{self.info['rows']:,} rows, {done / 1e6:,.1f} of {total / 1e6:,.1f} MB")
        if "loss" in self.info:
            parts.append(f"iteration {done} of at most {total}, loss {self.info['loss']:.6g}")
        elapsed = now - self.started
        if 0 < share < 1 and elapsed > 0.5:
            parts.append(f"about {elapsed / share * (1 - share):.0f} s left")
        self.stream.write("\r" + " · ".join(parts)[:160].ljust(100))
        self.stream.flush()



class JobProgress:
    """Shows a service's background training on a :class:`TerminalProgress`, from the job at each poll."""

    def __init__(self, bar: TerminalProgress) -> None:
        self.bar = bar
        self.shown: str | None = None

    def __call__(self, job: remote.Job) -> None:
        progress = job.get("progress") or {}
        phase = progress.get("phase") or job["state"]
        if phase != self.shown:
            self.shown = phase
            self.bar.phase(phase, **{k: progress[k] for k in ("bytes_total", "max_iter") if progress.get(k)})
        if phase == "reading" and progress.get("rows_read") is not None:
            self.bar.read(progress["rows_read"], progress.get("bytes_read") or 0)
        elif phase == "fitting" and progress.get("iteration") is not None:
            self.bar(progress["iteration"], progress.get("loss") or 0.0)


def _progress_bar(args: argparse.Namespace) -> TerminalProgress | None:
    return TerminalProgress() if not args.quiet and sys.stderr.isatty() else None


# -- commands -----------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .domain import EncodingParams, TrainParams

    params = _validated(TrainParams, dict(args.param or []), "--param")
    encoding = _validated(EncodingParams, dict(args.encoding or []) | (
        {"categorical": args.categorical} if args.categorical else {}), "--encoding")
    client = _client(args)
    if client is not None:
        with client:
            return _train_remote(args, client, params, encoding)
    if args.no_wait:
        raise UsageError("--no-wait starts a background job in a running service: give --url")
    from .data.sources import open_files
    from .services.training import TrainingProgress, read_training_table, train_and_store

    settings = Settings()
    files = open_files(args.source, args.format, roots=None, s3_endpoint_url=settings.s3_endpoint_url)
    bar = _progress_bar(args)
    progress = bar or TrainingProgress()
    try:
        store = _store_path(args)
        scratch = settings.scratch_dir if settings.scratch_dir is not None else store / ".scratch"
        data = read_training_table(files, args.target, args.features, None, progress, encoding,
                                   settings.train_memory_bytes, scratch)
        try:
            report = train_and_store(
                _registry(args, create=True), args.model, data.X, data.y, feature_names=data.names,
                columns=data.columns, encoding=encoding, params=params.model_dump(),
                validation_fraction=args.validation_fraction, description=args.description,
                tags={"source": args.source if "://" in args.source else Path(args.source).name},
                calibration=args.calibration, progress=progress,
            )
        finally:
            data.close()
    finally:
        if bar is not None:
            bar.close()
    _emit(args, _summary(report), _summary_text)
    return 0


def _train_remote(args: argparse.Namespace, client: remote.LogregClient, params: TrainParams,
                  encoding: EncodingParams) -> int:
    """Train in the service, as a background job (followed to its end unless --no-wait): a URI is read by the
    service itself; a local CSV file is uploaded."""
    options: dict[str, Any] = {
        "params": params.model_dump(exclude_unset=True), "encoding": encoding.model_dump(exclude_unset=True),
        "validation_fraction": args.validation_fraction, "calibration": args.calibration,
        "description": args.description, "idempotency_key": uuid.uuid4().hex,  # a retry trains once
    }
    bar = None if args.no_wait else _progress_bar(args)
    # Always a job, so no answer waits on a long training (and the bar shows its progress).
    waiting = {} if args.no_wait else {"background": True, "wait_timeout": args.wait_timeout,
                                       "progress": JobProgress(bar) if bar is not None else None}
    try:
        with contextlib.ExitStack() as stack:
            if "://" in args.source:  # s3://..., or file:// for a path on the server under its LOGREG_DATA_ROOTS
                call = client.train_uri_background if args.no_wait else client.train_uri
                answer = call(args.model, args.source, args.target, format=args.format, columns=args.features,
                              **options, **waiting)
            else:
                path = _upload(args, stack)
                call = client.train_csv_background if args.no_wait else client.train_csv
                answer = call(args.model, path, args.target, **options, **waiting)
    finally:
        if bar is not None:
            bar.close()
    if args.no_wait:
        _emit(args, answer, _job_text)
    else:
        _emit(args, _summary(answer), _summary_text)
    return 0


def _upload(args: argparse.Namespace, stack: contextlib.ExitStack) -> Path:
    """The local CSV file to upload (with ``--features``: a copy with those columns and the target only)."""
    path = Path(args.source)
    if not path.is_file():
        _check_exists(args.source)
        raise UsageError(f"{args.source!r} is not a file here: a running service is sent one local CSV file, or "
                         "reads a table itself from an s3:// URI or a file:// path on the server (a directory, a "
                         "glob or Parquet parts)")
    if (args.format or _suffix_format(path)) != "csv":
        raise UsageError(f"{args.source!r}: a running service takes an uploaded CSV file; give it Parquet as an "
                         "s3:// URI or a file:// path on the server")
    if not args.features:
        return path
    copy = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="logreg-upload-"))) / path.name
    with path.open(newline="", encoding="utf-8-sig") as src, copy.open("w", newline="", encoding="utf-8") as dst:
        rows = csv.reader(src)
        header = next(rows, [])
        wanted = [*args.features, args.target]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise InvalidInputError(f"{args.source!r} has no column(s) {', '.join(map(repr, missing))}")
        index = [header.index(c) for c in wanted]
        out = csv.writer(dst)
        out.writerow(wanted)
        out.writerows([row[i] if i < len(row) else "" for i in index] for row in rows)
    return copy


def _check_exists(source: str) -> None:
    """A local path (not a URI, not a glob) that does not exist: invalid input, as the service and the local
    reader say (exit code 3 is for a model, version, alias or job)."""
    if "://" not in source and not set(source) & set("*?[") and not Path(source).exists():
        raise InvalidInputError(f"no file or directory at {source!r}")


def _suffix_format(path: Path) -> str | None:
    from .data.sources import SUFFIXES

    name = path.name.lower()
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


def cmd_models(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            models: list[Any] = client.models()
    else:
        models = _registry(args).list_models()
    _emit(args, models, _models_text)
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            versions: list[Any] = client.versions(args.model)
    else:
        versions = _registry(args).list_versions(args.model)
    _emit(args, versions, _versions_text)
    return 0


def _pick(versions: Sequence[dict[str, Any]], version: int | str | None) -> int | str:
    """The version a request without one uses: the ``production`` alias if set, else the latest."""
    if version is not None:
        return version
    production = [v["version"] for v in versions if "production" in (v.get("aliases") or [])]
    return production[0] if production else versions[-1]["version"]


def _remote_card(client: remote.LogregClient, model: str, version: int | str | None) -> dict[str, Any]:
    if version is None:
        version = _pick(client.versions(model), None)
    return dict(client.model_card(model, version))


def cmd_card(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            card = _remote_card(client, args.model, args.version)
    else:
        card = _registry(args).metadata(args.model, args.version, full=True).card()
    _emit(args, card, _card_text)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            stored: dict[str, Any] = dict(client.stored_metrics(args.model, args.version))
    else:
        from .services.thresholds import stored_calibration

        meta = _registry(args).metadata(args.model, args.version)
        stored = {"model": args.model, "version": meta.version, "validation_metrics": meta.validation_metrics,
                  "train_metrics": meta.train_metrics, "n_validation": meta.n_validation,
                  "calibration": stored_calibration(meta), "calibration_step": meta.calibration}
    _emit(args, stored, lambda m: f"{m['model']} version {m['version']}\n\n"
          + _metrics_table(m["train_metrics"], m["validation_metrics"]))
    return 0


def cmd_alias_set(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            change: dict[str, Any] = dict(client.set_alias(args.model, args.alias, args.version))
    else:
        change = _registry(args).set_alias(args.model, args.alias, args.version)
    was = change.get("previous_version")
    _emit(args, change, lambda c: f"{c['name']}@{c['alias']} -> version {c['version']}"
          + (f" (was {was})" if was is not None else ""))
    return 0


def cmd_alias_rm(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            client.delete_alias(args.model, args.alias)
    else:
        _registry(args).delete_alias(args.model, args.alias)
    _emit(args, {"name": args.model, "alias": args.alias, "removed": True},
          lambda c: f"removed alias {c['alias']} of {c['name']}")
    return 0


def cmd_threshold_set(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            change: dict[str, Any] = dict(client.set_threshold(args.model, args.version, args.threshold))
    else:
        registry = _registry(args)
        if args.threshold is not None and len(registry.metadata(args.model, args.version).classes) > 2:
            raise InvalidInputError("a decision threshold applies to binary models only")
        change = registry.set_threshold(args.model, args.version, args.threshold)
    _emit(args, change, lambda c: f"{c['name']} version {c['version']}: threshold "
          f"{_cell(c['threshold']) if c['threshold'] is not None else '0.5 (the default)'}")
    return 0


def cmd_threshold_optimize(args: argparse.Namespace) -> int:
    from .api.schemas import ThresholdOptimizeRequest

    cost = {k: v for k, v in (("fp", args.cost_fp), ("fn", args.cost_fn)) if v is not None} or None
    request = _validated(ThresholdOptimizeRequest, {"objective": args.objective, "cost": cost, "target": args.target,
                                                    "store": args.save}, "threshold optimize")
    client = _client(args)
    if client is not None:
        with client:
            version = args.version if args.version is not None else _pick(client.versions(args.model), None)
            out: dict[str, Any] = dict(client.optimize_threshold(
                args.model, version, args.objective, cost=cost, target=args.target, store=args.save))
    else:
        out = _optimize_locally(_registry(args), args.model, args.version, request)
    _emit(args, out, _choice_text)
    return 0


def _optimize_locally(registry: ModelRegistry, model: str, version: int | str | None,
                      request: ThresholdOptimizeRequest) -> dict[str, Any]:
    """``threshold:optimize`` on the stored validation split, as the service computes it."""
    import numpy as np

    from .services import thresholds
    from .services.scoring import validation_sample

    meta = registry.metadata(model, version, full=True)  # with the validation sample of the side file
    classes = meta.classes
    if len(classes) != 2:
        raise InvalidInputError(f"a decision threshold applies to binary models only; {model!r} has {len(classes)} "
                                "classes")
    sample = validation_sample(meta)
    scores = np.asarray(sample["probabilities"], dtype=np.float64)[:, 1]
    cost = request.cost
    result = thresholds.optimize_threshold(
        thresholds.positive_mask(sample["labels"], classes), scores, request.objective,
        cost_fp=cost.fp if cost else 1.0, cost_fn=cost.fn if cost else 1.0, target=request.target)
    out = {"model": model, "version": meta.version, "positive_class": classes[1], "source": "validation_sample",
           "current_threshold": meta.threshold, **result, "stored": False, "sampled": sample["sampled"]}
    if request.store:
        registry.set_threshold(model, meta.version, result["threshold"])
        out["stored"] = True
    return out


def cmd_delete(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            client.delete_version(args.model, args.version)
    else:
        _registry(args).delete_version(args.model, args.version)
    _emit(args, {"model": args.model, "version": args.version, "deleted": True},
          lambda d: f"deleted {d['model']} version {d['version']}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _needs_service(args, "logreg jobs") as client:
        if args.action == "show":
            job: dict[str, Any] = dict(client.job(args.job))
        elif args.action == "cancel":
            job = dict(client.cancel_job(args.job))
        else:
            job = dict(client.wait_for_job(args.job, timeout=args.wait_timeout))
    _emit(args, job, _job_text)
    if args.action == "wait" and job["state"] != "succeeded":
        return exit_code(remote.job_error(job))  # type: ignore[arg-type]
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    client = _client(args)
    if client is not None:
        with client:
            return _predict_remote(args, client)
    from .data.sources import open_files
    from .data.tables import read_table
    from .services.scoring import model_columns, predict, predict_proba

    loaded = _registry(args).load(args.model, args.version)
    files = open_files(args.file, args.format, roots=None, s3_endpoint_url=Settings().s3_endpoint_url)
    X = read_table(files, target=None, features=loaded.metadata.feature_names, ignore_extra=True,
                   columns=model_columns(loaded)).X
    proba = predict_proba(loaded, X)
    labels, _, _ = predict(loaded, X, args.threshold)
    _write_predictions(args, loaded.model.classes_.tolist(), labels, proba.tolist())
    return 0


def _write_predictions(args: argparse.Namespace, classes: list[Any], labels: Sequence[Any],
                       probabilities: Sequence[Sequence[float]], header: bool = True) -> None:
    """CSV (``prediction,p_<class>...``), or with ``--json`` one JSON object per row."""
    if getattr(args, "json", False):
        for label, row in zip(labels, probabilities, strict=True):
            sys.stdout.write(json.dumps({"prediction": label, "probabilities": dict(zip(map(str, classes), row,
                                                                                          strict=True))}) + "\n")
    else:
        out = csv.writer(sys.stdout, lineterminator="\n")
        if header:
            out.writerow(["prediction", *[f"p_{c}" for c in classes]])
        for label, row in zip(labels, probabilities, strict=True):
            out.writerow([label, *row])
    sys.stdout.flush()


def _predict_remote(args: argparse.Namespace, client: remote.LogregClient) -> int:
    """Score a local CSV or Parquet file in the service, ``--batch-size`` rows a request (the model's columns only,
    as CSV), on one version; the labels follow from the probabilities as ``/predict`` decides them."""
    card = _remote_card(client, args.model, args.version)
    classes, names = card["classes"], card["feature_names"]
    if args.threshold is not None and len(classes) > 2:
        raise InvalidInputError(f"--threshold applies to binary models only; {args.model!r} has {len(classes)} "
                                "classes and predicts the most probable one")
    threshold = args.threshold if args.threshold is not None else card.get("threshold")
    threshold = 0.5 if threshold is None else threshold
    first = True
    for body in _feature_batches(Path(args.file), args.format, names, args.batch_size):
        answer = client.predict_proba(args.model, csv=body, version=card["version"])
        proba = answer["probabilities"]
        if len(classes) == 2:
            labels = [classes[1] if row[1] >= threshold else classes[0] for row in proba]
        else:
            labels = [classes[max(range(len(row)), key=row.__getitem__)] for row in proba]  # the first of ties
        _write_predictions(args, classes, labels, proba, header=first)
        first = False
    if first:  # no rows: the header alone
        _write_predictions(args, classes, [], [])
    return 0


def _feature_batches(path: Path, fmt: str | None, names: Sequence[str], size: int) -> Iterator[bytes]:
    """The model's columns of a local CSV or Parquet file, ``size`` rows at a time, as CSV with a header row."""
    if not path.is_file():
        _check_exists(str(path))
        raise UsageError(f"{str(path)!r} is not a local file: with --url, predict reads one local CSV or Parquet "
                         "file and sends its rows")
    fmt = fmt or _suffix_format(path)
    if fmt == "parquet":
        yield from _parquet_batches(path, names, size)
        return
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.reader(fh)
        header = next(rows, [])
        missing = [n for n in names if n not in header]
        if missing:
            raise InvalidInputError(f"{str(path)!r} lacks the model's feature column(s) "
                                    f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}")
        index = [header.index(n) for n in names]
        while chunk := list(itertools.islice(rows, size)):
            batch = [[row[i] if i < len(row) else "" for i in index] for row in chunk if any(c.strip() for c in row)]
            if not batch:
                continue
            text = io.StringIO()
            out = csv.writer(text, lineterminator="\n")
            out.writerow(names)
            out.writerows(batch)
            yield text.getvalue().encode()


def _parquet_batches(path: Path, names: Sequence[str], size: int) -> Iterator[bytes]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    missing = [n for n in names if n not in parquet.schema_arrow.names]
    if missing:
        raise InvalidInputError(f"{str(path)!r} lacks the model's feature column(s) {', '.join(map(repr, missing))}")
    for batch in parquet.iter_batches(batch_size=size, columns=list(names)):
        if batch.num_rows:
            sink = io.BytesIO()
            pacsv.write_csv(batch, sink)
            yield sink.getvalue()


# -- the parser ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help="a running service to work on (default LOGREG_URL; its API key from LOGREG_API_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="JSON output, for scripts (the default when stdout is not a terminal)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds to wait for each answer of the service (default 60)")
    store = argparse.ArgumentParser(add_help=False, parents=[common])
    store.add_argument("--store", help="registry directory, without --url (default LOGREG_MODEL_STORE or "
                       "model_store)")

    parser = argparse.ArgumentParser(prog="logreg", description=__doc__, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn")
    serve.add_argument("--host", help="interface to bind (LOGREG_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (LOGREG_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (LOGREG_WORKERS, default 1)")
    serve.add_argument("--store", help="registry directory (LOGREG_MODEL_STORE, default model_store)")
    serve.add_argument("--log-level", dest="log_level", help="debug, info, warning, error")
    serve.add_argument("--demo", action="store_true", help="train the breast-cancer demo model if empty")
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", parents=[store], help="train a model from a CSV or Parquet table")
    train.add_argument("source", help="a CSV or Parquet file, a directory or glob of parts, or an s3:// URI; with "
                       "--url a local CSV file is uploaded and a URI (s3://, or file:// for a path on the server) "
                       "is read by the service")
    train.add_argument("--target", required=True, help="label column")
    train.add_argument("--format", choices=("csv", "parquet"), help="default: from the suffix")
    train.add_argument("--features", type=_names, help="comma-separated feature columns (default: every column "
                       "but the target)")
    train.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not "
                       "a terminal either)")
    train.add_argument("--model", required=True, help="model name")
    train.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE",
                       help="engine hyperparameter, e.g. --param C=0.5 --param solver=newton")
    train.add_argument("--categorical", type=_names,
                       help="comma-separated columns to read as categories even when they hold numbers")
    train.add_argument("--encoding", action="append", type=_param, metavar="KEY=VALUE",
                       help="mixed-type tables: impute=mean, missing_indicator=true, min_frequency=10, "
                       "max_categories=20, unknown=infrequent, missing_category=most_frequent (repeatable)")
    train.add_argument("--validation-fraction", type=float, default=0.2)
    train.add_argument("--calibration", choices=("none", "platt", "isotonic"), default="none",
                       help="binary models: calibrate probabilities on the validation split")
    train.add_argument("--description")
    train.add_argument("--no-wait", action="store_true", help="with --url: print the background job and return "
                       "(follow it with `logreg jobs wait ID`)")
    train.add_argument("--wait-timeout", type=float, default=3600.0, help="with --url: seconds to wait for the "
                       "training (default 3600); it goes on in the service after that")
    train.set_defaults(func=cmd_train)

    sign = sub.add_parser(
        "sign", parents=[store], help="sign every version and state file of a store with LOGREG_SIGNING_KEY",
        description="Sign every version (its record and artefact digest) and every model's aliases and thresholds "
        "with LOGREG_SIGNING_KEY, for a store written before the key was set or under another key. It trusts what "
        "it finds: run it only on a store you know nobody has tampered with, since whatever is there now will be "
        "served as signed. It refuses (and lists, exit status 1) only what is visibly inconsistent: a record that "
        "fails its checksum or does not fit its place, an artefact that fails its sha256 or is not a model.")
    sign.set_defaults(func=cmd_sign)

    models = sub.add_parser("models", parents=[store], help="list models, versions and aliases")
    models.set_defaults(func=cmd_models)

    predict = sub.add_parser("predict", parents=[store], help="predict the rows of a CSV or Parquet table "
                             "(columns matched by feature name; others are skipped)")
    predict.add_argument("file", help="a CSV or Parquet file (without --url also a directory or glob of parts, or "
                         "an s3:// URI)")
    predict.add_argument("--format", choices=("csv", "parquet"), help="default: from the suffix")
    predict.add_argument("--model", required=True)
    predict.add_argument("--version", type=_version, help="version number or alias (default: production, else "
                         "latest)")
    predict.add_argument("--threshold", type=_unit, help="binary decision threshold, 0 to 1")
    predict.add_argument("--batch-size", type=int, default=5000, help="with --url: rows per request (default 5000)")
    predict.set_defaults(func=cmd_predict)

    versions = sub.add_parser("versions", parents=[store], help="list a model's versions")
    versions.add_argument("model")
    versions.set_defaults(func=cmd_versions)

    card = sub.add_parser("card", parents=[store], help="a version's model card: metrics, coefficients, "
                          "provenance")
    card.add_argument("model")
    card.add_argument("version", nargs="?", type=_version, help="number or alias (default: production, else latest)")
    card.set_defaults(func=cmd_card)

    alias = sub.add_parser("alias", help="point an alias at a version, or remove it")
    alias_sub = alias.add_subparsers(dest="action", required=True, metavar="ACTION")
    alias_set = alias_sub.add_parser("set", parents=[store], help="point ALIAS at VERSION")
    alias_set.add_argument("model")
    alias_set.add_argument("alias")
    alias_set.add_argument("version", type=int)
    alias_set.set_defaults(func=cmd_alias_set)
    alias_rm = alias_sub.add_parser("rm", parents=[store], help="remove ALIAS")
    alias_rm.add_argument("model")
    alias_rm.add_argument("alias")
    alias_rm.set_defaults(func=cmd_alias_rm)

    threshold = sub.add_parser("threshold", help="a binary version's decision threshold")
    threshold_sub = threshold.add_subparsers(dest="action", required=True, metavar="ACTION")
    threshold_set = threshold_sub.add_parser("set", parents=[store], help="store the threshold (none: back to 0.5)")
    threshold_set.add_argument("model")
    threshold_set.add_argument("version", type=int)
    threshold_set.add_argument("threshold", type=_threshold)
    threshold_set.set_defaults(func=cmd_threshold_set)
    optimize = threshold_sub.add_parser("optimize", parents=[store], help="choose the threshold for an objective "
                                        "on the stored validation split")
    optimize.add_argument("model")
    optimize.add_argument("version", nargs="?", type=_version, help="number or alias (default: production, else "
                          "latest)")
    optimize.add_argument("--objective", required=True, choices=("f1", "youden", "cost", "min_recall",
                                                                 "min_precision"))
    optimize.add_argument("--target", type=float, help="min_recall / min_precision: the floor")
    optimize.add_argument("--cost-fp", type=float, help="cost: one false positive (default 1)")
    optimize.add_argument("--cost-fn", type=float, help="cost: one false negative (default 1)")
    optimize.add_argument("--save", action="store_true", help="store it as the version's threshold")
    optimize.set_defaults(func=cmd_threshold_optimize)

    metrics = sub.add_parser("metrics", parents=[store], help="the metrics recorded when a version was trained")
    metrics.add_argument("model")
    metrics.add_argument("--version", type=_version, help="number or alias (default: production, else latest)")
    metrics.set_defaults(func=cmd_metrics)

    delete = sub.add_parser("delete", parents=[store], help="delete a version (refused while an alias points at it)")
    delete.add_argument("model")
    delete.add_argument("version", type=int)
    delete.set_defaults(func=cmd_delete)

    jobs = sub.add_parser("jobs", help="a service's background trainings (the service has no route that lists "
                          "them: give the id the training printed)")
    jobs_sub = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("show", "state and progress"), ("cancel", "ask the job to stop"),
                         ("wait", "wait until it ends; the exit code tells how")):
        job = jobs_sub.add_parser(action, parents=[common], help=text)
        job.add_argument("job", help="job id")
        if action == "wait":
            job.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds (default 3600)")
        job.set_defaults(func=cmd_jobs)
    return parser


# -- running ------------------------------------------------------------------------------------------
def exit_code(exc: BaseException) -> int:
    """2 usage, 3 not found, 4 invalid input, 5 the server or the connection failed, 1 anything else."""
    if isinstance(exc, remote.LogregAPIError):
        if isinstance(exc, remote.NotFound):
            return NOT_FOUND
        if isinstance(exc, remote.InvalidInput | remote.TooLarge):
            return INVALID
        if isinstance(exc, remote.ConnectionFailed | remote.ServiceUnavailable | remote.RateLimited
                      | remote.JobTimeout) or exc.status_code >= 500:
            return UNAVAILABLE
        return OTHER
    if isinstance(exc, UsageError | ConfigurationError):
        return USAGE
    if isinstance(exc, NotFoundError | FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, InvalidInputError | LimitExceededError | TimeLimitError | ValidationError | ValueError):
        return INVALID
    if isinstance(exc, RegistryUnavailableError | SourceUnavailableError | BusyError):
        return UNAVAILABLE
    return OTHER


def _message(exc: BaseException) -> str:
    if isinstance(exc, remote.LogregAPIError | LogregError):
        return exc.message
    if isinstance(exc, ValidationError):
        return one_line(exc)
    return str(exc) or type(exc).__name__


def _stdout_gone() -> None:
    """After a closed pipe (``| head``): send what is left to /dev/null, so the exit flush is quiet too."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        _stdout_gone()
        return 0
    except KeyboardInterrupt:
        print("logreg: interrupted", file=sys.stderr)
        return 130
    except (remote.LogregAPIError, LogregError, UsageError, ConfigurationError, ValidationError, OSError,
            ValueError) as exc:
        print(f"logreg: error: {_message(exc)}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    raise SystemExit(main())
