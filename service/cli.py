"""The ``logreg`` command: serve the API, or train, list and predict against the registry directly."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from .config import ConfigurationError, Settings
from .data.sources import open_files
from .data.tables import read_labelled_csv, read_table
from .domain import EncodingParams, TrainParams
from .errors import LogregError
from .observability.lifecycle import PARENT_ENV
from .observability.logging import uvicorn_log_config
from .services.scoring import model_columns, predict, predict_proba
from .services.training import TrainingProgress, read_training_table, train_and_store
from .store.registry import ModelRegistry

DEMO_MODEL = "breast-cancer"
DEMO_TARGET = "diagnosis"
DEMO_CSV = Path(__file__).resolve().parent.parent / "examples" / "breast_cancer.csv"


def _param(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it parses (numbers, booleans, null), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _registry(args: argparse.Namespace) -> ModelRegistry:
    settings = Settings()
    return ModelRegistry(args.store or settings.model_store, cache_size=settings.cache_size,
                         signing_key=settings.signing_key_bytes())


def ensure_demo(registry: ModelRegistry, csv_path: Path = DEMO_CSV) -> dict[str, Any] | None:
    """Train the ``breast-cancer`` demo model when the registry holds no model; return its report."""
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


class TerminalProgress(TrainingProgress):
    """A one-line progress bar on stderr: the phase, a bar of bytes read or iterations run, and the time left."""

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


def cmd_train(args: argparse.Namespace) -> int:
    params = TrainParams.model_validate(dict(args.param or []))
    encoding = EncodingParams.model_validate(dict(args.encoding or []) | (
        {"categorical": args.categorical} if args.categorical else {}))
    settings = Settings()
    files = open_files(args.source, args.format, roots=None, s3_endpoint_url=settings.s3_endpoint_url)
    shown = not args.quiet and sys.stderr.isatty()
    progress = TerminalProgress() if shown else TrainingProgress()
    try:
        store = Path(args.store) if args.store else settings.model_store
        scratch = settings.scratch_dir if settings.scratch_dir is not None else store / ".scratch"
        data = read_training_table(files, args.target, args.features, None, progress, encoding,
                                   settings.train_memory_bytes, scratch)
        try:
            report = train_and_store(
                _registry(args), args.model, data.X, data.y, feature_names=data.names, columns=data.columns,
                encoding=encoding, params=params.model_dump(),
                validation_fraction=args.validation_fraction, description=args.description,
                tags={"source": args.source if "://" in args.source else Path(args.source).name},
                calibration=args.calibration, progress=progress,
            )
        finally:
            data.close()
    finally:
        if isinstance(progress, TerminalProgress):
            progress.close()
    summary = {k: report[k] for k in ("model", "version", "classes", "n_samples", "converged", "n_iter", "warnings")}
    if "calibration" in report:
        cal = report["calibration"]
        summary["calibration"] = {"method": cal["method"],
                                  **{k: {m: cal[k][m] for m in ("brier", "ece")} for k in ("before", "after")}}
    keys = ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc")
    for split in ("train_metrics", "validation_metrics"):
        if report[split] is not None:
            summary[split] = {k: report[split][k] for k in keys}
    print(json.dumps(summary, indent=2))
    return 0


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


def cmd_models(args: argparse.Namespace) -> int:
    print(json.dumps(_registry(args).list_models(), indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    loaded = _registry(args).load(args.model, args.version)
    files = open_files(args.file, args.format, roots=None, s3_endpoint_url=Settings().s3_endpoint_url)
    X = read_table(files, target=None, features=loaded.metadata.feature_names, ignore_extra=True,
                   columns=model_columns(loaded)).X
    proba = predict_proba(loaded, X)
    labels, _, _ = predict(loaded, X, args.threshold)
    classes = loaded.model.classes_.tolist()
    out = csv.writer(sys.stdout)
    out.writerow(["prediction", *[f"p_{c}" for c in classes]])
    for label, row in zip(labels, proba.tolist(), strict=True):
        out.writerow([label, *row])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API under uvicorn")
    serve.add_argument("--host", help="interface to bind (LOGREG_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (LOGREG_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (LOGREG_WORKERS, default 1)")
    serve.add_argument("--store", help="registry directory (LOGREG_MODEL_STORE, default model_store)")
    serve.add_argument("--log-level", dest="log_level", help="debug, info, warning, error")
    serve.add_argument("--demo", action="store_true", help="train the breast-cancer demo model if empty")
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", help="train a model from a CSV or Parquet table into the registry (no server "
                           "needed)")
    train.add_argument("source", help="a CSV or Parquet file, a directory or glob of parts, or an s3:// URI")
    train.add_argument("--target", required=True, help="label column")
    train.add_argument("--format", choices=("csv", "parquet"), help="default: from the suffix")
    train.add_argument("--features", type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
                       help="comma-separated feature columns (default: every column but the target)")
    train.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not "
                       "a terminal either)")
    train.add_argument("--model", required=True, help="model name")
    train.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE",
                       help="engine hyperparameter, e.g. --param C=0.5 --param solver=newton")
    train.add_argument("--categorical", type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
                       help="comma-separated columns to read as categories even when they hold numbers")
    train.add_argument("--encoding", action="append", type=_param, metavar="KEY=VALUE",
                       help="mixed-type tables: impute=mean, missing_indicator=true, min_frequency=10, "
                       "max_categories=20, unknown=infrequent, missing_category=most_frequent (repeatable)")
    train.add_argument("--validation-fraction", type=float, default=0.2)
    train.add_argument("--calibration", choices=("none", "platt", "isotonic"), default="none",
                       help="binary models: calibrate probabilities on the validation split")
    train.add_argument("--description")
    train.add_argument("--store", help="registry directory (default LOGREG_MODEL_STORE or model_store)")
    train.set_defaults(func=cmd_train)

    sign = sub.add_parser(
        "sign", help="sign every version and state file of a store with LOGREG_SIGNING_KEY",
        description="Sign every version (its record and artefact digest) and every model's aliases and thresholds "
        "with LOGREG_SIGNING_KEY, for a store written before the key was set or under another key. It trusts what "
        "it finds: run it only on a store you know nobody has tampered with, since whatever is there now will be "
        "served as signed. It refuses (and lists, exit status 1) only what is visibly inconsistent: a record that "
        "fails its checksum or does not fit its place, an artefact that fails its sha256 or is not a model.")
    sign.add_argument("--store", help="registry directory (default LOGREG_MODEL_STORE or model_store)")
    sign.set_defaults(func=cmd_sign)

    models = sub.add_parser("models", help="list models, versions and aliases")
    models.add_argument("--store")
    models.set_defaults(func=cmd_models)

    predict = sub.add_parser("predict", help="predict the rows of a CSV or Parquet table (columns matched by "
                             "feature name; others are skipped)")
    predict.add_argument("file", help="a CSV or Parquet file, a directory or glob of parts, or an s3:// URI")
    predict.add_argument("--format", choices=("csv", "parquet"), help="default: from the suffix")
    predict.add_argument("--model", required=True)
    predict.add_argument("--version", help="version number or alias (default: production, else latest)")
    predict.add_argument("--threshold", type=float, help="binary decision threshold")
    predict.add_argument("--store")
    predict.set_defaults(func=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (LogregError, ConfigurationError, ValidationError, OSError, ValueError) as exc:
        message = exc.message if isinstance(exc, LogregError) else str(exc)
        print(f"logreg: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
