"""Per-request observability: the request id, the access log line and the HTTP metrics.

The request path (request_path.py) calls these first and last, so they see
the final status of every request, errors included.
"""

from __future__ import annotations

import logging
import random
import re

from aiohttp import web

from fluxbase.observability import metrics
from fluxbase.observability.logging import write_json_line
from fluxbase.request_state import CLIENT_IP, USER_ID

access_log = logging.getLogger("fluxbase.http")

# A client's X-Request-ID is kept only if it cannot corrupt a log line or a header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# A client may send any token as its method; labels must stay a bounded set.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# The version and variant bits of a UUID 4, as uuid.UUID(version=4) sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID when it is 1-128 safe characters, else a new one."""
    offered = request.headers.get("X-Request-ID")
    if offered is not None and _REQUEST_ID.fullmatch(offered):
        return offered
    # A UUID 4 in hex, as uuid.uuid4().hex, from the process's PRNG (reseeded in every forked
    # worker): an id names a request in the logs and is no secret, so it needs no syscall.
    return f"{(random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def _level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


def _route_label(request: web.Request) -> str:
    # The route's template, not the raw path, keeps the label set bounded.
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def request_served(request: web.Request, status: int, seconds: float) -> None:
    """Counts the request in the HTTP metrics and writes its access-log line."""
    method = request.method
    metrics.http_request_observed(
        method if method in KNOWN_METHODS else "OTHER", _route_label(request), status, seconds
    )
    level = _level(status)
    fields = {
        "method": method,
        # The path only: query strings may carry tokens (apikey=...).
        "path": request.path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "ip": request.get(CLIENT_IP),
        "user_id": request.get(USER_ID),
    }
    if not write_json_line(access_log, level, "HTTP request", fields):
        access_log.log(level, "HTTP request", extra=fields)
