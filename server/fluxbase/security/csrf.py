"""CSRF protection (opt-in, security.csrf): a double-submit token for cookie-borne sessions.

Requests that carry their credentials in a header (Authorization, apikey)
cannot be forged cross-site, since browsers do not add those by themselves;
the check is for requests that rely on cookies alone.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase.errors import HttpError
from fluxbase.observability.logging import audit
from fluxbase.request_state import CLIENT_IP

COOKIE = "fluxbase_csrf"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CsrfCheck:
    """The double-submit check before the handler, and the cookie handed out after safe requests."""

    def __init__(self, cookie_secure: bool) -> None:
        self._secure = cookie_secure

    def check(self, request: web.Request) -> str | None:
        """Raises 403 for an unsafe cookie-only request without the matching token; the cookie sent."""
        cookie = request.cookies.get(COOKIE)
        if request.method not in SAFE_METHODS and not _header_credentials(request):
            sent = request.headers.get(HEADER, "")
            if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
                audit("csrf.rejected", success=False, ip=request.get(CLIENT_IP), path=request.path)
                raise HttpError(
                    403,
                    "csrf_failed",
                    "Missing or wrong CSRF token",
                    hint=f"send the {COOKIE} cookie's value in the {HEADER} header",
                )
        return cookie

    def hand_out(self, request: web.Request, response: web.StreamResponse, cookie: str | None) -> None:
        if cookie is None and request.method in SAFE_METHODS:
            response.set_cookie(
                COOKIE, secrets.token_urlsafe(32), secure=self._secure, samesite="Strict", path="/"
            )


def csrf_middleware(
    cookie_secure: bool,
) -> Middleware:
    """The CSRF step alone (request_path.py runs it inside the one composed middleware)."""
    csrf = CsrfCheck(cookie_secure)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        cookie = csrf.check(request)
        response = await handler(request)
        csrf.hand_out(request, response, cookie)
        return response

    return middleware


def _header_credentials(request: web.Request) -> bool:
    return "Authorization" in request.headers or "apikey" in request.headers
