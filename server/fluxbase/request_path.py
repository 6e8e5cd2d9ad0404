"""The request path in front of every handler, as one middleware.

In order: request id + access log -> metrics -> errors -> CORS -> client IP
-> API-key admin scope -> rate limit (per user, API key or IP) -> CSRF ->
request limits (body size and JSON depth, URL length) -> handler. Each step lives in its own module
(observability/http.py, errors.py, security/*) and is called here as a plain
function: one coroutine frame per request instead of one per step, with
the same behaviour as those steps stacked as middlewares (each module still
offers its step as a middleware of its own, for tests and small apps).
Security headers are not a step: they are added as every response is
prepared (security/headers.py), aiohttp's own errors included.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from fluxbase.config import Config
from fluxbase.errors import HttpError, response_for
from fluxbase.observability.http import request_id_of, request_served
from fluxbase.observability.logging import request_id_var
from fluxbase.request_state import CLIENT_IP, REQUEST_ID
from fluxbase.security.client_ip import Network, client_ip, parse_networks
from fluxbase.security.cors import CorsPolicy
from fluxbase.security.csrf import CsrfCheck
from fluxbase.security.key_registry import AdminScopeCheck, ApiKeyRegistry
from fluxbase.security.ratelimit import RequestLimiter
from fluxbase.security.ratelimit_store import LimitStore
from fluxbase.security.request_limits import RequestLimits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestPath:
    """Every step a request passes before and after its handler, configured once per app."""

    def __init__(self, config: Config, store: LimitStore | None, api_keys: ApiKeyRegistry) -> None:
        self._cors = CorsPolicy(config.security.cors.allowed_origins)
        self._trusted: tuple[Network, ...] = parse_networks(config.security.trusted_proxies)
        self._admin_scope = AdminScopeCheck(api_keys)
        self._limiter = RequestLimiter(store, config.security.rate_limit) if store is not None else None
        self._csrf = CsrfCheck(config.security.csrf.cookie_secure) if config.security.csrf.enabled else None
        self._limits = RequestLimits(config.server)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_of(request)
        token = request_id_var.set(request_id)
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 500
        try:
            try:
                response = await self._guarded(request, handler)
            except Exception as exc:  # the error step: every failure becomes an answer
                response = response_for(request, exc)
            status = response.status
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            request_served(request, status, time.perf_counter() - started)
            request_id_var.reset(token)

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        cors = self._cors
        origin = cors.origin(request)
        if origin is not None and cors.is_preflight(request):
            # Answered before the client IP, rate limit or anything else spends effort on it.
            response = cors.preflight()
        else:
            response = await self._limited(request, handler)
        if origin is not None:
            cors.add_headers(response, origin)
        return response

    async def _limited(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CLIENT_IP] = client_ip(request, self._trusted)
        self._admin_scope.check(request)
        limiter = self._limiter
        headers = await limiter.admit(request) if limiter is not None else None
        try:
            csrf = self._csrf
            cookie = csrf.check(request) if csrf is not None else None
            await self._limits.check(request)
            response = await handler(request)
            if csrf is not None:
                csrf.hand_out(request, response, cookie)
        except HttpError as error:
            if headers is not None:
                RequestLimiter.add_to_error(error, headers)
            raise
        if headers is not None:
            RequestLimiter.add_headers(response, headers)
        return response
