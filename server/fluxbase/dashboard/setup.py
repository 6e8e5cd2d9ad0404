"""GET /dashboard/auth/setup: whether the first administrator is still to be created.

The dashboard's app asks this before it shows the first-admin form or the
login page.  Public (nobody is signed in yet), and it says no more than
POST /signup's 201-or-403 already does.
"""

from __future__ import annotations

from aiohttp import web

from fluxbase.dashboard.context import DASHBOARD, PREFIX
from fluxbase.db.transaction import RequestContext
from fluxbase.errors import json_response


async def setup_status(request: web.Request) -> web.StreamResponse:
    context = RequestContext("service_role", {"role": "service_role"}, request.method, request.path)
    async with request.app[DASHBOARD].database.transaction(context, read_only=True) as tx:
        required = await tx.fetchval("select dashboard.setup_required()")
    return json_response({"setup_required": bool(required)})


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/setup", setup_status)
