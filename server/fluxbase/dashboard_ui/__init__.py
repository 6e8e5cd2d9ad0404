"""Serves the admin dashboard's single-page app (built from admin/ into static/) at /dashboard/.

Client-side routes get index.html (never cached, so a new release is seen at
once); the hashed files under assets/ are immutable and cached for a year, and
sent gzipped (the build's .gz twins) to browsers that accept it.
Every page answer carries a strict Content-Security-Policy: scripts and
styles only from this origin, no inline code, no framing.  Nothing is
fetched from the network at run time.  /dashboard/auth/* is the dashboard's
API (dashboard/handlers.py), never the app.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Final

from aiohttp import web

from fluxbase.errors import HttpError

STATIC: Final = Path(__file__).resolve().parent / "static"
MOUNT: Final = "/dashboard"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
# connect-src 'self' covers the same-origin WebSocket (CSP Level 3); images may be data: URIs
# (the 2FA QR code the server renders) and blob: (previews of downloaded files).
PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _headers(cache: str) -> dict[str, str]:
    return {
        "Cache-Control": cache,
        "Content-Security-Policy": PAGE_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _not_built() -> HttpError:
    return HttpError(
        503,
        "dashboard_not_built",
        "The dashboard's files are not built",
        hint="run `make ui` (or `npm ci && npm run build` in admin/) and restart",
    )


async def index(request: web.Request) -> web.StreamResponse:
    page = STATIC / "index.html"
    if not page.is_file():
        raise _not_built()
    return web.Response(
        body=page.read_bytes(), content_type="text/html", charset="utf-8", headers=_headers("no-cache")
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # One path segment of the build's own names: nothing to traverse.
    if "/" in name or "\\" in name or name.startswith("."):
        raise HttpError(404, "not_found", "No such file")
    path = STATIC / "assets" / name
    if not path.is_file():
        raise HttpError(404, "not_found", "No such file")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    # FileResponse sends the build's name.gz twin instead when the browser accepts gzip.
    headers = {**_headers(IMMUTABLE), "Content-Type": content_type, "Vary": "Accept-Encoding"}
    return web.FileResponse(path, headers=headers)


async def app_route(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    # /dashboard/auth/* is the dashboard's API: a GET to one of its POST routes is no page.
    if tail == "auth" or tail.startswith("auth/"):
        raise HttpError(404, "not_found", "No such dashboard API route")
    if tail.startswith("assets/"):
        raise HttpError(404, "not_found", "No such file")
    return await index(request)


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(MOUNT + "/")


def add_routes(app: web.Application) -> None:
    """After dashboard/handlers.py's routes: the catch-all must not shadow /dashboard/auth."""
    app.router.add_get(MOUNT, redirect)
    app.router.add_get(MOUNT + "/assets/{name}", asset)
    app.router.add_get(MOUNT + "/{tail:.*}", app_route)
