"""Operations endpoints: /health (the process lives), /ready (it can serve), /metrics."""

from __future__ import annotations

from aiohttp import web

from fluxbase.db.pool import ReadinessProbe
from fluxbase.errors import json_response
from fluxbase.observability import metrics
from fluxbase.security.ratelimit_store import LimitStore

READINESS = web.AppKey("readiness", ReadinessProbe)
# Present when rate limiting is on: /ready says where the counts live and whether that works.
LIMIT_STORE = web.AppKey("limit_store", LimitStore)


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
    details = [result.detail] if result.detail else []
    store = request.app.get(LIMIT_STORE)
    if store is not None:
        # A lost Redis degrades limits to per-process counts; the server still serves.
        backend, problem = await store.status()
        body["rate_limit"] = f"{backend}: {'degraded' if problem else 'ok'}"
        if problem:
            details.append(problem)
    if details:
        body["detail"] = "; ".join(details)
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
