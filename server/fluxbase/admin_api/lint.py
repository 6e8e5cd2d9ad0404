"""GET /api/v1/admin/lint: the security advisor's findings (what `fluxbase lint` prints) for the dashboard.

The checks read the catalog as the database owner (the admin API's owner pool), over the
exposed schemas (`api.schemas`, or `?schema=` repeated), in a read-only transaction.
"""

from __future__ import annotations

from aiohttp import web

from fluxbase.admin_api.context import AdminContext, route
from fluxbase.advisor.report import lint
from fluxbase.errors import json_response
from fluxbase.security.dashboard_auth import DashboardAdmin


async def security_findings(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    schemas = request.query.getall("schema", None) or list(ctx.config.api.schemas)
    pool = await ctx.owner_pool()
    async with pool.acquire() as connection:
        report = await lint(connection, schemas)
    return json_response(report.as_json())


def add_routes(app: web.Application) -> None:
    route(app, "GET", "/lint", security_findings)
