"""Security headers on every response, errors and WebSocket upgrades included.

Installed as an on_response_prepare signal rather than a middleware, so that
responses aiohttp makes by itself get them too.
"""

from __future__ import annotations

from aiohttp import web

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # API responses are data, never pages: nothing in them may load or frame anything.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
HSTS = "max-age=31536000; includeSubDomains"


def install_security_headers(app: web.Application, *, hsts: bool) -> None:
    """hsts: send Strict-Transport-Security (when the public base URL is https)."""

    # Prepared once: the same names and values go on every response.
    defaults = tuple({**API_HEADERS, **({"Strict-Transport-Security": HSTS} if hsts else {})}.items())

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        # A handler that serves a page (the dashboard) sets its own policy first.
        for name, value in defaults:
            if name not in headers:
                headers[name] = value
        # Say what we are, not which library versions an attacker should look up.
        headers["Server"] = "Fluxbase"

    app.on_response_prepare.append(add_headers)
