"""``GET /monitoring/metrics``: the Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..deps import DriftDep, MonitoringDep
from ..errors import KEYED, error_responses
from ..security import MonitoringAccess

router = APIRouter(tags=["health"])


@router.get(
    "/monitoring/metrics",
    summary="Prometheus metrics",
    description="Request counts and latencies per route and status, predictions per model, version and class, "
    "rows per request, training runs and durations, registry cache hits and loads, models loaded, rows and "
    "values outside the training range, and the population stability index per feature.",
    response_class=Response,
    responses={200: {"description": "The Prometheus text exposition format.",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
               **error_responses(*KEYED)},
    dependencies=MonitoringAccess,
)
async def prometheus_metrics(monitoring: MonitoringDep, drift: DriftDep) -> Response:
    drift.publish_all()  # this worker's PSI gauges, up to date
    return Response(monitoring.exposition(), media_type=CONTENT_TYPE_LATEST)
