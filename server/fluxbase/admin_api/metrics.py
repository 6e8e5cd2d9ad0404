"""GET /api/v1/admin/metrics: the last hour of request rate, latency, errors and connections.

The overview page's charts read this rather than /metrics: the numbers are the
same (observability/history.py samples that registry), already turned into
rates and percentiles, behind the administrator check like every admin route.
"""

from __future__ import annotations

from aiohttp import web

from fluxbase.admin_api.context import AdminContext, route
from fluxbase.errors import json_response
from fluxbase.observability.history import WINDOW_SECONDS, MetricsHistory
from fluxbase.security.dashboard_auth import DashboardAdmin

HISTORY = web.AppKey("metrics_history", MetricsHistory)


async def metrics_history(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    history = request.app[HISTORY]
    return json_response(
        {
            "interval_seconds": history.interval,
            "window_seconds": WINDOW_SECONDS,
            "points": history.series(),
        }
    )


def add_routes(app: web.Application) -> None:
    route(app, "GET", "/metrics", metrics_history)
