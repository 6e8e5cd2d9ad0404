"""Rate limits: a sliding log per key, and the global per-IP middleware.

Each key keeps the times of its last `limit` allowed hits, so the window is
exact (a burst at any boundary still counts) and memory is bounded by the
limit.  State is per process; several replicas need a shared store (Redis),
which plugs in behind the same `RateLimiter.hit` call.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase.errors import HttpError
from fluxbase.observability import metrics
from fluxbase.observability.logging import audit
from fluxbase.request_state import CLIENT_IP

log = logging.getLogger("fluxbase.ratelimit")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probes and scrapes must never be refused: an orchestrator that cannot reach
# /health restarts a healthy server.
UNKNOWN_CLIENT = "unknown"
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds; 0 when allowed


class RateLimiter:
    """Allows `limit` hits per `window` seconds per key."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window

    def hit(self, key: str) -> Decision:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque(maxlen=self.limit)
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return Decision(True, self.limit, self.limit - len(hits), 0)
        # Full: the oldest hit leaving the window frees the next place.
        return Decision(False, self.limit, 0, max(1, math.ceil(hits[0] + self.window - now)))

    def _sweep(self, now: float) -> None:
        horizon = now - self.window
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > horizon}
        self._next_sweep = now + self.window


def refused(decision: Decision, scope: str, key: str) -> HttpError:
    """The 429 for a refused hit; counts it and writes the audit line."""
    metrics.rate_limit_hits_total.labels(scope).inc()
    log.warning(
        "rate_limit exceeded",
        extra={"scope": scope, "key": key, "retry_after": decision.retry_after},
    )
    audit("rate_limit.exceeded", success=False, scope=scope, ip=key if scope == "ip" else None)
    return HttpError(
        429,
        "rate_limited",
        "Too many requests; slow down",
        hint=f"retry after {decision.retry_after} seconds",
        headers={
            "Retry-After": str(decision.retry_after),
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": "0",
        },
    )


def ip_rate_limit_middleware(
    limiter: RateLimiter,
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        ip = request.get(CLIENT_IP, UNKNOWN_CLIENT)
        decision = limiter.hit(ip)
        if not decision.allowed:
            raise refused(decision, "ip", ip)
        return await handler(request)

    return middleware
