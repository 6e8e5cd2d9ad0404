"""CORS: lets browser apps (supabase-js in a page) call the API from their own origin.

Preflight requests are answered here, before authentication or rate limiting
spend anything on them; every other response from an allowed origin gets the
Access-Control headers, including the ones clients read (Content-Range, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
# Headers the Supabase clients send: authorization, apikey, and PostgREST's own.
ALLOWED_HEADERS = (
    "authorization, apikey, content-type, accept, accept-profile, content-profile, prefer, range, "
    "range-unit, x-client-info, x-supabase-api-version, x-request-id, x-csrf-token, "
    # Storage uploads (x-upsert, x-metadata, cache-control) and TUS resumable uploads.
    "x-upsert, x-metadata, cache-control, tus-resumable, upload-length, upload-offset, upload-metadata"
)
# Response headers a page may read: counting, pagination, locations, tracing.
EXPOSED_HEADERS = (
    "Content-Range, Content-Location, Location, Preference-Applied, Content-Profile, "
    "X-Request-ID, Server-Timing, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "ETag, Content-Disposition, "
    "Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Upload-Offset, Upload-Length, Upload-Expires"
)
MAX_AGE = "86400"


class CorsPolicy:
    """Which origins may call, the preflight answer, and the headers an allowed origin's responses get."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self._any = "*" in allowed_origins
        self._allowed = frozenset(allowed_origins)

    def origin(self, request: web.Request) -> str | None:
        """The request's Origin when it is allowed; None for same-origin and refused ones."""
        origin = request.headers.get("Origin")
        if origin is None or not (self._any or origin in self._allowed):
            return None
        return origin

    @staticmethod
    def is_preflight(request: web.Request) -> bool:
        return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers

    @staticmethod
    def preflight() -> web.StreamResponse:
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @staticmethod
    def add_headers(response: web.StreamResponse, origin: str) -> None:
        # Echo the origin rather than "*": it also works for requests that carry credentials.
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers.add("Vary", "Origin")


def cors_middleware(allowed_origins: Sequence[str]) -> Middleware:
    """The CORS step alone (request_path.py runs it inside the one composed middleware)."""
    policy = CorsPolicy(allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = policy.origin(request)
        if origin is None:
            return await handler(request)
        response = policy.preflight() if policy.is_preflight(request) else await handler(request)
        policy.add_headers(response, origin)
        return response

    return middleware
