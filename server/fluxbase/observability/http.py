"""Per-request observability: the request id, the access log line and the HTTP metrics.

These are the outermost middlewares, so they see the final status of every
request, errors included.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from fluxbase.observability import metrics
from fluxbase.observability.logging import request_id_var
from fluxbase.request_state import CLIENT_IP, REQUEST_ID, USER_ID

access_log = logging.getLogger("fluxbase.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A client's X-Request-ID is kept only if it cannot corrupt a log line or a header.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Assigns the request id, echoes it, and writes one access-log line per request."""
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        access_log.log(
            _level(status),
            "HTTP request",
            extra={
                "method": request.method,
                # The path only: query strings may carry tokens (apikey=...).
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "ip": request.get(CLIENT_IP),
                "user_id": request.get(USER_ID),
            },
        )
        request_id_var.reset(token)


# A client may send any token as its method; labels must stay a bounded set.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_label(request: web.Request) -> str:
    # The route's template, not the raw path, keeps the label set bounded.
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        metrics.http_request_observed(method, _route_label(request), status, time.perf_counter() - started)
