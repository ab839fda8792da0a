"""The app's collaborators, handed to routes as typed dependencies (routes never read ``app.state``).

:class:`Services` is built once by the app factory and kept on the app; each ``...Dep`` alias gives a
route one of its members. The dependencies are ``async`` on purpose: a plain function would cost a
thread hop per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import Scope

from ..config import Settings
from ..observability.prometheus import Monitoring
from ..services.drift_tracker import DriftTracker
from ..services.scoring import Scorer
from ..services.training import Trainer
from ..store.registry import ModelRegistry


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request may need, built once per app."""

    settings: Settings
    registry: ModelRegistry
    monitoring: Monitoring
    drift: DriftTracker
    trainer: Trainer
    scorer: Scorer
    #: sha256 digests of the configured API keys; empty means open access.
    api_keys: tuple[bytes, ...]
    #: Whether read routes, and the Prometheus scrape, need a key (see the settings of the same names).
    protect_reads: bool = False
    protect_monitoring: bool = False


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def get_registry(request: Request) -> ModelRegistry:
    return services_of(request).registry


async def get_settings(request: Request) -> Settings:
    return services_of(request).settings


async def get_trainer(request: Request) -> Trainer:
    return services_of(request).trainer


async def get_scorer(request: Request) -> Scorer:
    return services_of(request).scorer


async def get_drift(request: Request) -> DriftTracker:
    return services_of(request).drift


async def get_monitoring(request: Request) -> Monitoring:
    return services_of(request).monitoring


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TrainerDep = Annotated[Trainer, Depends(get_trainer)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
DriftDep = Annotated[DriftTracker, Depends(get_drift)]
MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]


def log_fields(scope: Scope) -> dict[str, Any]:
    """The request's fields for the access log (``scope["state"]``, read by the request observer)."""
    return scope.setdefault("state", {})  # type: ignore[no-any-return]


def route_path(scope: Scope) -> str:
    """The template of the route that answers (``/models/{name}``), the label metrics count under."""
    return getattr(scope.get("route"), "path", None) or scope["path"]
