"""Errors as data: one exception type, one JSON shape, one middleware that renders them.

Every error response is `{code, message, details, hint}` (PostgREST's shape,
which the data API needs anyway) with the status the error names.  Services with
a wire format of their own (rest, auth, realtime) render their errors themselves;
this middleware is the fallback for every other route, including the database's
domain errors (db/errors.py).  Anything unexpected becomes a 500 that says
nothing about internals.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from fluxbase.db.errors import DatabaseUnavailable, PoolTimeout

log = logging.getLogger("fluxbase.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An error a client is meant to see."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: str | None = None,
        hint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
        }


def json_response(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def error_response(error: HttpError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers)


def database_unavailable(error: DatabaseUnavailable) -> HttpError:
    """The fallback answer when the database cannot serve a route without its own error table."""
    if isinstance(error, PoolTimeout):
        return HttpError(
            503,
            "pool_busy",
            "The server is busy: no database connection became free in time",
            hint="retry shortly",
            headers={"Retry-After": "1"},
        )
    return HttpError(503, "database_unavailable", "The database is unavailable", headers={"Retry-After": "5"})


# aiohttp raises these itself (no route, wrong method, body too large, ...).
_AIOHTTP_CODES = {
    404: ("not_found", "No such endpoint"),
    405: ("method_not_allowed", "Method not allowed for this endpoint"),
    413: ("payload_too_large", "Request body exceeds the configured body_limit"),
}


# The database connection broke under a request (a killed backend, a restart, a protocol state
# asyncpg gave up on): the request may be retried, it is not the server's bug. Services map
# database errors to their own answers first; these are what reaches the last resort.
LOST_DATABASE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    ConnectionError,
)


def response_for(request: web.Request, exc: Exception) -> web.Response:
    """The answer to an exception that escaped a handler; re-raises one that is no error (a redirect)."""
    if isinstance(exc, HttpError):
        return error_response(exc)
    if isinstance(exc, DatabaseUnavailable):
        return error_response(database_unavailable(exc))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code, message = _AIOHTTP_CODES.get(exc.status, (exc.reason.lower().replace(" ", "_"), exc.reason))
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(HttpError(exc.status, code, message, headers=headers))
    if isinstance(exc, LOST_DATABASE):
        log.error(
            "database connection lost during the request",
            extra={"path": request.path, "method": request.method, "reason": type(exc).__name__},
        )
        return error_response(
            HttpError(
                503,
                "database_unavailable",
                "The database connection was lost; retry the request",
                headers={"Retry-After": "1"},
            )
        )
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"path": request.path, "method": request.method},
    )
    return error_response(
        HttpError(
            500,
            "internal_error",
            "Internal server error",
            hint="see the server log for this request id",
        )
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The error step alone, for apps without the whole request path (tests, small tools)."""
    try:
        return await handler(request)
    except Exception as exc:
        return response_for(request, exc)
