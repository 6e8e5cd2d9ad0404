"""Admin routes to read: the effective configuration (secrets masked) and the activity log, filtered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from fluxbase.admin_api.context import AdminContext, route
from fluxbase.errors import HttpError, json_response
from fluxbase.security.dashboard_auth import DashboardAdmin

MASK = "********"
SECRET_KEYS = ("secret", "password", "private_key")


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        (parts.scheme, f"{parts.username}:{MASK}@{host}", parts.path, parts.query, parts.fragment)
    )


def masked(value: Any, key: str = "") -> Any:
    """The configuration as JSON, every secret replaced by a mask (set) or null (unset)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: masked(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if any(part in key for part in SECRET_KEYS):
        return None if value is None else MASK
    if key == "url" and isinstance(value, str):
        return _mask_url(value)
    if isinstance(value, tuple | list):
        return [masked(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


async def settings(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    return json_response(masked(ctx.config))


def _time(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise HttpError(400, "validation_failed", f"{name} must be an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def activity(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """?action, ?user_id, ?resource_type, ?success, ?since, ?until, ?limit (1-1000), ?offset."""
    query = request.query
    user_id = query.get("user_id")
    success = query.get("success")
    try:
        user_id = str(uuid.UUID(user_id)) if user_id else None
        limit = int(query.get("limit", "100"))
        offset = int(query.get("offset", "0"))
    except ValueError as exc:
        raise HttpError(400, "validation_failed", "user_id must be a UUID, limit and offset numbers") from exc
    if success not in (None, "true", "false") or not 1 <= limit <= 1000 or offset < 0:
        raise HttpError(
            400, "validation_failed", "success is true or false; limit 1 to 1000; offset not negative"
        )
    async with ctx.as_service(request, read_only=True) as tx:
        raw = await tx.fetchval(
            "select dashboard.list_activity($1, $2::uuid, $3, $4, $5, $6, $7, $8)::text",
            query.get("action"),
            user_id,
            query.get("resource_type"),
            None if success is None else success == "true",
            _time(request, "since"),
            _time(request, "until"),
            limit,
            offset,
        )
    return web.Response(body=raw, content_type="application/json")


def add_routes(app: web.Application) -> None:
    route(app, "GET", "/settings", settings)
    route(app, "GET", "/activity", activity)
