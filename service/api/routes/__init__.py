"""One router per resource, collected in :data:`ROUTERS` in the order the app includes them."""

from __future__ import annotations

from fastapi import APIRouter

from ..dialects import mlflow, v2
from . import dashboard, docs, drift, health, jobs, models, monitoring, prediction, training

#: The scoring routes come first: routes are matched in order, and they are the hot path.
ROUTERS: tuple[APIRouter, ...] = (
    prediction.router, training.router, jobs.router, models.router, health.router, monitoring.router,
    drift.router, v2.router, mlflow.router, dashboard.router, docs.router,
)
