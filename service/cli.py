"""The ``logreg`` command: serve the API, or train, list and predict against the registry directly."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import Settings
from .data.csv_text import read_feature_csv, read_labelled_csv
from .domain import TrainParams
from .errors import LogregError
from .services.scoring import predict, predict_proba
from .services.training import train_and_store
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
    return ModelRegistry(args.store or settings.model_store, cache_size=settings.cache_size)


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

    # Flags override the environment; workers are separate processes, so pass settings through it.
    for flag, env in (("host", "HOST"), ("port", "PORT"), ("workers", "WORKERS"), ("store", "MODEL_STORE"),
                      ("log_level", "LOG_LEVEL")):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"LOGREG_{env}"] = str(value)
    settings = Settings()
    # One worker keeps its metrics in memory, where the series of versions it stops tracking can be
    # dropped; several workers need the shared multi-process directory.
    prometheus_dir = _prepare_prometheus_dir(settings) if settings.workers > 1 else None
    try:
        if args.demo or settings.demo:
            ensure_demo(ModelRegistry(settings.model_store))
        uvicorn.run(
            "service.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
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
    path = settings.prometheus_dir or Path(tempfile.gettempdir()) / f"logreg-prometheus-{os.getpid()}"
    if path.exists():
        for item in path.glob("*.db"):
            item.unlink()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def cmd_train(args: argparse.Namespace) -> int:
    params = TrainParams.model_validate(dict(args.param or []))
    X, y, names = read_labelled_csv(Path(args.file).read_bytes(), args.target)
    report = train_and_store(
        _registry(args), args.model, X, y, feature_names=names, params=params.model_dump(),
        validation_fraction=args.validation_fraction, description=args.description,
        tags={"source": Path(args.file).name}, calibration=args.calibration,
    )
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


def cmd_models(args: argparse.Namespace) -> int:
    print(json.dumps(_registry(args).list_models(), indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    loaded = _registry(args).load(args.model, args.version)
    X = read_feature_csv(Path(args.file).read_bytes(), loaded.metadata.feature_names, ignore_extra=True)
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

    train = sub.add_parser("train", help="train a model from a CSV into the registry (no server needed)")
    train.add_argument("file", help="CSV with a header row")
    train.add_argument("--target", required=True, help="label column")
    train.add_argument("--model", required=True, help="model name")
    train.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE",
                       help="engine hyperparameter, e.g. --param C=0.5 --param solver=newton")
    train.add_argument("--validation-fraction", type=float, default=0.2)
    train.add_argument("--calibration", choices=("none", "platt", "isotonic"), default="none",
                       help="binary models: calibrate probabilities on the validation split")
    train.add_argument("--description")
    train.add_argument("--store", help="registry directory (default LOGREG_MODEL_STORE or model_store)")
    train.set_defaults(func=cmd_train)

    models = sub.add_parser("models", help="list models, versions and aliases")
    models.add_argument("--store")
    models.set_defaults(func=cmd_models)

    predict = sub.add_parser("predict", help="predict the rows of a CSV (columns matched by feature name)")
    predict.add_argument("file")
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
    except (LogregError, ValidationError, OSError, ValueError) as exc:
        message = exc.message if isinstance(exc, LogregError) else str(exc)
        print(f"logreg: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
