"""Rate limits: the sliding-log limiter, the 429 it answers, and the request tiers.

Each key keeps the times of its last `limit` allowed hits, so the window is
exact (a burst at any boundary still counts) and memory is bounded by the
limit.  The tier middleware counts every request once, against the first of:
the user of a valid user JWT (per user), an API key (per key), else the
client IP; the counts live in a `LimitStore` (ratelimit_store.py), per
process or shared through Redis.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase.errors import HttpError
from fluxbase.observability import metrics
from fluxbase.observability.logging import audit
from fluxbase.request_state import CLIENT_IP
from fluxbase.security.authenticate import AuthenticationError, Caller, authenticate

if TYPE_CHECKING:
    from fluxbase.config import RateLimitConfig
    from fluxbase.security.ratelimit_store import LimitStore

log = logging.getLogger("fluxbase.ratelimit")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Probes and scrapes must never be refused: an orchestrator that cannot reach
# /health restarts a healthy server.
UNKNOWN_CLIENT = "unknown"
EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})
REQUEST_WINDOW = 60.0


class Decision(NamedTuple):
    """One counted hit's verdict (a NamedTuple: made on every request, cheaper than a dataclass)."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds; 0 when allowed
    reset: int = 0  # seconds until the oldest counted hit leaves the window (one more place frees)


class RateLimiter:
    """Allows `limit` hits per `window` seconds per key, in this process."""

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
            reset = _seconds(hits[0] + self.window - now)
            return Decision(True, self.limit, self.limit - len(hits), 0, reset)
        # Full: the oldest hit leaving the window frees the next place.
        wait = _seconds(hits[0] + self.window - now)
        return Decision(False, self.limit, 0, wait, wait)

    def _sweep(self, now: float) -> None:
        horizon = now - self.window
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > horizon}
        self._next_sweep = now + self.window


def _seconds(delay: float) -> int:
    return max(1, math.ceil(delay))


def limit_headers(decision: Decision) -> dict[str, str]:
    """The X-RateLimit-* headers of a decision (Reset in seconds from now, as Fiber sends it)."""
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset),
    }


def refused(decision: Decision, scope: str, key: str, *, ip: str | None = None) -> HttpError:
    """The 429 for a refused hit; counts it by tier and writes the `rate_limit` log and audit lines."""
    metrics.rate_limit_hits_total.labels(scope).inc()
    client = ip if ip is not None else (key if scope == "ip" else None)
    log.warning(
        "rate_limit exceeded",
        extra={
            "rate_limit": scope,
            "key": key,
            "ip": client,
            "limit": decision.limit,
            "retry_after": decision.retry_after,
        },
    )
    audit("rate_limit.exceeded", success=False, scope=scope, ip=client)
    return HttpError(
        429,
        "rate_limited",
        "Too many requests; slow down",
        hint=f"retry after {decision.retry_after} seconds",
        headers={"Retry-After": str(decision.retry_after), **limit_headers(decision)},
    )


class Tier(NamedTuple):
    """Which budget a request spends: its name (the metric label), its key and its limit."""

    name: str
    key: str
    limit: int


def request_tier(caller: Caller | None, ip: str, limits: RateLimitConfig) -> Tier:
    """A user's requests count per user, an API key's per key, anyone else's per client IP."""
    if caller is not None:
        if caller.user_id is not None:
            return Tier("user", caller.user_id, limits.user_requests_per_minute)
        if caller.api_key_id is not None:
            # A dashboard-issued key carries its own budget; the legacy service_role key the default.
            limit = (
                caller.api_key.rate_limit_per_minute
                if caller.api_key is not None
                else limits.api_key_requests_per_minute
            )
            return Tier("api_key", caller.api_key_id, limit)
    return Tier("ip", ip, limits.requests_per_minute)


def _caller(request: web.Request) -> Caller | None:
    # A refused credential spends the client IP's budget; the handler answers
    # the 401 in its own service's words.
    try:
        return authenticate(request)
    except AuthenticationError:
        return None


def _add_headers(response: web.StreamResponse, headers: Mapping[str, str]) -> None:
    if not response.prepared:
        response.headers.update(headers)


class RequestLimiter:
    """The request tiers: counts a request against its tier before the handler runs."""

    def __init__(self, store: LimitStore, limits: RateLimitConfig) -> None:
        self._store = store
        self._limits = limits

    async def admit(self, request: web.Request) -> dict[str, str] | None:
        """The X-RateLimit-* headers for the answer (None: an exempt path); raises the 429."""
        if request.path in EXEMPT_PATHS:
            return None
        ip = request.get(CLIENT_IP, UNKNOWN_CLIENT)
        tier = request_tier(_caller(request), ip, self._limits)
        decision = await self._store.hit(tier.name, tier.key, tier.limit, REQUEST_WINDOW)
        if not decision.allowed:
            raise refused(decision, tier.name, tier.key, ip=ip)
        return limit_headers(decision)

    @staticmethod
    def add_headers(response: web.StreamResponse, headers: Mapping[str, str]) -> None:
        _add_headers(response, headers)

    @staticmethod
    def add_to_error(error: HttpError, headers: Mapping[str, str]) -> None:
        error.headers = {**headers, **error.headers}


def rate_limit_middleware(store: LimitStore, limits: RateLimitConfig) -> Middleware:
    """The tier step alone (request_path.py runs it inside the one composed middleware)."""
    limiter = RequestLimiter(store, limits)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = await limiter.admit(request)
        if headers is None:
            return await handler(request)
        try:
            response = await handler(request)
        except HttpError as error:
            limiter.add_to_error(error, headers)
            raise
        limiter.add_headers(response, headers)
        return response

    return middleware
