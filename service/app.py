"""The app factory: ``create_app(settings)`` builds the services, then wires the routes, the middleware and
the error handling around them."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import multiprocess
from pydantic.json_schema import models_json_schema

from . import __version__
from .api.deps import Services
from .api.dialects import mlflow, v2
from .api.errors import install_error_handlers
from .api.middleware.body_limit import BodySizeLimit
from .api.middleware.compression import ResponseCompression
from .api.middleware.fastpath import ScoringFastPath
from .api.middleware.observer import RequestObserver
from .api.middleware.request_guard import RequestGuard
from .api.payloads import DOCUMENTED_BODIES
from .api.routes import ROUTERS, dashboard, guide_missing, prediction
from .api.security import key_digests
from .config import Settings, get_settings
from .domain import parse_model_reference
from .engine import ConvergenceWarning
from .errors import InvalidInputError, RegistryUnavailableError
from .observability.lifecycle import watch_parent
from .observability.logging import configure_logging
from .observability.prometheus import Monitoring, multiprocess_dir
from .services.drift_tracker import DriftTracker
from .services.scoring import Scorer
from .services.training import Trainer
from .store.atomic import reap_temp
from .store.jobs import JobStore, SlotPool
from .store.registry import ModelRegistry

log = logging.getLogger("service")
#: Where `make docs` builds the guide (docs/, MkDocs) into the package; served at /guide when it is there.
GUIDE_DIR = Path(__file__).parent / "static" / "guide"

DESCRIPTION = """
Train, store, serve and evaluate logistic-regression models.

* **Train** a version with `POST /train` (JSON rows or records, or a CSV upload).
* **Serve** it with `POST /predict_proba` and `POST /predict?threshold=`.
* **Evaluate** it with `POST /metrics`; see what was measured at training time with `GET /metrics`.
* **Manage** versions, aliases (`production` is the default) and decision thresholds under `/models`.

* **Run long trainings in the background** with `POST /train?background=true` and follow `GET /jobs/{id}`.
* **Monitor** with Prometheus at `GET /monitoring/metrics`.
* **Speak the standard dialects**: `text/csv` bodies on `/predict` and `/predict_proba`, the V2 / Open Inference
  Protocol under `/v2` (KServe, Triton, MLServer clients) and MLflow's `POST /invocations`.

Every error answers `{"error": {"type", "message", "details"}}`; each operation lists the error statuses it
can give. Besides those, any request may be refused before it reaches an operation: 421 when its `Host` is not a
name of this service, 408 when its body stalls, 503 (with `Retry-After`) when the server is reading too many
bodies at once. With API keys configured, send `Authorization: Bearer <key>` (the **Authorize** button on this
page does it for you).
"""


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    if settings.invocations_model is not None:  # fail at start-up, not on the first request
        try:
            parse_model_reference(settings.invocations_model)
        except InvalidInputError as exc:
            raise ValueError(f"LOGREG_INVOCATIONS_MODEL: {exc.message}") from None
    configure_logging(settings.log_level, settings.json_logs)
    registry = registry or ModelRegistry(
        settings.model_store, cache_size=settings.cache_size, recheck_seconds=settings.registry_recheck_seconds,
        signing_key=settings.signing_key_bytes(),
    )
    monitoring = Monitoring()
    monitoring.watch_registry(registry)
    drift = DriftTracker(monitoring, settings.drift_window_rows,
                         full_metadata=lambda name, version: registry.metadata(name, version, full=True))
    trainer = Trainer(
        JobStore(registry.root, settings.job_retention, settings.max_finished_jobs),
        SlotPool(registry.root, settings.max_concurrent_trainings),
        monitoring,
        settings.train_timeout_seconds,
    )
    keys = settings.keys()
    services = Services(
        settings=settings, registry=registry, monitoring=monitoring, drift=drift, trainer=trainer,
        scorer=Scorer(registry, monitoring, drift, settings.max_predict_rows), api_keys=key_digests(keys),
        protect_reads=settings.reads_protected(keys), protect_monitoring=settings.monitoring_protected(keys),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Convergence warnings reach clients in the training response; keep them out of the server log.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        watchdog = watch_parent()
        if not keys:
            log.warning("no API keys configured (LOGREG_API_KEYS): every route is open to anyone who can reach it")
        elif not services.protect_reads:
            log.warning("LOGREG_PROTECT_READS=false: predictions, model cards, validation rows and jobs are readable "
                        "without a key")
        try:
            registry.check()
            registry.cleanup_temp()
            interrupted = trainer.jobs.recover()
            trainer.jobs.expire()
            reap_temp(settings.scratch_path(), 0.0)  # scratch matrices of trainings a crash stopped
            if interrupted:
                log.warning("%d background job(s) were interrupted by a restart and are marked failed", interrupted)
        except RegistryUnavailableError as exc:
            log.warning("registry not ready at start-up: %s", exc.message)
        yield
        if watchdog is not None:
            watchdog.set()
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="logreg-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served with the package's own copies of their assets: routes/docs.py
        redoc_url=None,
        openapi_tags=[
            {"name": "training", "description": "Fit new model versions, now or as background jobs."},
            {"name": "prediction", "description": "Score rows and evaluate versions."},
            {"name": "registry", "description": "Models, versions, aliases and thresholds."},
            {"name": "health", "description": "Probes and monitoring."},
            {"name": v2.V2_TAG, "description": "The V2 / Open Inference Protocol (KServe, Triton, MLServer) "
             "over REST: metadata, probes and `infer`. Errors answer `{\"error\": \"...\"}`."},
            {"name": mlflow.MLFLOW_TAG, "description": "MLflow's scoring server: `POST /invocations`, "
             "`GET /ping`, `GET /health`, `GET /version`."},
        ],
    )
    app.state.services = services
    # Innermost: the size limit, request ids, logs and metrics apply to it as to the routes.
    app.add_middleware(ScoringFastPath, services=services, routes=prediction.router.routes)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes,
                       idle_seconds=settings.body_idle_seconds, max_open_bodies=settings.max_open_bodies,
                       max_bytes_in_flight=settings.max_body_bytes_in_flight,
                       min_bytes_per_second=settings.body_min_bytes_per_second)
    app.add_middleware(ResponseCompression, minimum_size=settings.compress_min_bytes)
    app.add_middleware(RequestGuard, allowed_hosts=settings.host_names(), allowed_origins=settings.origin_list())
    app.add_middleware(RequestObserver, monitoring=monitoring)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    if (GUIDE_DIR / "index.html").is_file():  # built by make docs (the image always has it)
        app.mount("/guide", StaticFiles(directory=GUIDE_DIR, html=True), name="guide")
    else:
        app.include_router(guide_missing.router)
    _document_parsed_bodies(app)
    return app


def _document_parsed_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves (see ``openapi_body``) to the OpenAPI page."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, defs = models_json_schema(
                [(m, "validation") for m in sorted(DOCUMENTED_BODIES, key=lambda m: m.__name__)],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            _drop_framework_validation_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_FRAMEWORK_422 = "#/components/schemas/HTTPValidationError"


def _drop_framework_validation_errors(schema: dict[str, Any]) -> None:
    """Remove the 422 FastAPI documents by itself on operations that do not list their own: its body is not
    what the service answers (routes list their 422, the service's error shape, where they can give one; the V2
    protocol answers 400 instead), and with it the schemas only it used."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422", {})
            if answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref") == _FRAMEWORK_422:
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    if _FRAMEWORK_422 not in json.dumps(schema.get("paths", {})):
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker servers: settings from ``LOGREG_*``."""
    return create_app(Settings())
