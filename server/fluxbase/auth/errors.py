"""GoTrue's error shapes: `{code, message}` for clients that send X-Supabase-Api-Version, else legacy.

Legacy is `{code: <status>, error_code, msg}`; on /token it also carries the
OAuth pair `{error, error_description}` that older clients read.  Every
error sets `x-sb-error-code`.  `endpoint` wraps every auth route
(auth/routes.py), so this module is where every status auth answers is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from fluxbase.auth.context import AUTH, AuthContext
from fluxbase.db.errors import DatabaseUnavailable, PoolTimeout
from fluxbase.errors import HttpError
from fluxbase.security.request_limits import caps_body

API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024 = "2024-01-01"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# GoTrue's OAuth `error` for each code on /token, when the client wants the legacy shape.
_OAUTH_ERRORS = {
    "invalid_credentials": "invalid_grant",
    "email_not_confirmed": "invalid_grant",
    "refresh_token_not_found": "invalid_grant",
    "refresh_token_already_used": "invalid_grant",
    "session_expired": "invalid_grant",
    "user_banned": "invalid_grant",
    "validation_failed": "invalid_request",
    "over_request_rate_limit": "too_many_requests",
    "request_timeout": "server_error",
    "unexpected_failure": "server_error",
}


class AuthError(Exception):
    """An answer in GoTrue's words: status, error code, message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        # Fields GoTrue adds beside code and message in both shapes (weak_password: {reasons}).
        self.extra = dict(extra or {})


def error_response(request: web.Request, error: AuthError, *, oauth: bool = False) -> web.Response:
    headers = {**error.headers, "x-sb-error-code": error.code}
    version = request.headers.get(API_VERSION_HEADER, "")
    if version >= API_VERSION_2024:
        body: dict[str, object] = {"code": error.code, "message": error.message}
        headers[API_VERSION_HEADER] = API_VERSION_2024
    else:
        body = {"code": error.status, "error_code": error.code, "msg": error.message}
        if oauth:
            body["error"] = _OAUTH_ERRORS.get(error.code, "invalid_request")
            body["error_description"] = error.message
    body.update(error.extra)
    return web.Response(
        body=orjson.dumps(body), status=error.status, headers=headers, content_type="application/json"
    )


def bad_request(message: str, code: str = "validation_failed") -> AuthError:
    return AuthError(400, code, message)


def unprocessable(code: str, message: str) -> AuthError:
    return AuthError(422, code, message)


def database_unavailable(error: DatabaseUnavailable) -> AuthError:
    """The database could not serve the request (db/errors.py), in GoTrue's words.

    A pool timeout is GoTrue's own request_timeout (504); no connection at all is a 503.
    supabase-js treats 502/503/504 as AuthRetryableFetchError, so clients retry either.
    """
    if isinstance(error, PoolTimeout):
        return AuthError(
            504,
            "request_timeout",
            "Processing this request timed out, please retry after a moment.",
            headers={"Retry-After": "1"},
        )
    return AuthError(
        503,
        "unexpected_failure",
        "The database is unavailable, please retry after a moment.",
        headers={"Retry-After": "5"},
    )


def _url_holds_nul(request: web.Request) -> bool:
    return "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items())


# GoTrue's bodies (credentials, a token, user metadata) are a few hundred bytes, and metadata
# rides in every access token, which a header must carry. Refusing more while reading keeps a
# flood of large bodies cheap (each is read only this far), whatever server.body_limit allows.
BODY_LIMIT = 64 * 1024


def endpoint(
    handler: Callable[[web.Request, AuthContext], Awaitable[web.StreamResponse]], *, oauth: bool = False
) -> Handler:
    """Renders AuthError (and the shared HttpError, database errors) in GoTrue's shape."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if _url_holds_nul(request):  # PostgreSQL text cannot hold it, and the path reaches the database
            return error_response(request, bad_request("The URL must not contain %00"), oauth=oauth)
        try:
            return await handler(request, request.app[AUTH])
        except AuthError as error:
            return error_response(request, error, oauth=oauth)
        except DatabaseUnavailable as error:
            return error_response(request, database_unavailable(error), oauth=oauth)
        except HttpError as error:  # a rate limit from security/
            code = "over_request_rate_limit" if error.status == 429 else error.code
            return error_response(
                request, AuthError(error.status, code, error.message, headers=error.headers)
            )
        except asyncpg.PostgresError as error:
            if error.sqlstate == "22023":  # the SQL refused a value: the client's mistake
                return error_response(request, unprocessable("validation_failed", str(error)), oauth=oauth)
            if error.sqlstate == "28000":
                reason = str(error)
                status = 404 if reason == "user_not_found" else 403
                return error_response(
                    request, AuthError(status, reason, reason.replace("_", " ")), oauth=oauth
                )
            raise

    return caps_body(BODY_LIMIT)(handle)
