"""Operations endpoints: /health (the process lives), /ready (it can serve), /metrics."""

from __future__ import annotations

from aiohttp import web

from fluxbase.db.pool import ReadinessProbe
from fluxbase.errors import json_response
from fluxbase.observability import metrics

READINESS = web.AppKey("readiness", ReadinessProbe)


async def health(request: web.Request) -> web.Response:
    # Deliberately no database: a liveness probe that fails when the database
    # does would restart every replica during a database outage.
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    result = await request.app[READINESS].check()
    body = {
        "status": "ready" if result.ready else "not_ready",
        "database": "ok" if result.database else "unreachable",
        "migrations": "current" if result.migrations else "pending",
    }
    if result.detail:
        body["detail"] = result.detail
    return json_response(body, status=200 if result.ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics_endpoint)
