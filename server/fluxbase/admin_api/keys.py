"""Admin routes for API keys: create (the key is shown once), list, read, update, revoke, regenerate, delete.

Only an administrator in person manages keys: an admin-scoped key cannot
mint or revive keys.  Each change sends NOTIFY fluxbase_api_keys from SQL,
so every replica's registry (security/key_registry.py) reloads at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import orjson
from aiohttp import web

from fluxbase.admin_api.context import AdminContext, route
from fluxbase.admin_api.errors import outcome_error
from fluxbase.errors import HttpError, json_response
from fluxbase.observability.logging import audit
from fluxbase.request_json import client_inet, json_object, text_field
from fluxbase.security.dashboard_auth import DashboardAdmin
from fluxbase.security.key_registry import SCOPES


def _key_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["id"]))
    except ValueError as exc:
        raise HttpError(404, "not_found", "Not found") from exc


def _scopes(body: dict[str, Any], *, required: bool) -> list[str] | None:
    scopes = body.get("scopes")
    if scopes is None and not required:
        return None
    if scopes is None:
        return ["rest:read"]
    if not isinstance(scopes, list) or not scopes or not all(s in SCOPES for s in scopes):
        raise HttpError(400, "validation_failed", f"scopes must be a non-empty list of: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def _rate_limit(body: dict[str, Any]) -> int | None:
    value = body.get("rate_limit_per_minute")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
        raise HttpError(
            400, "validation_failed", "rate_limit_per_minute must be a whole number from 1 to 1000000"
        )
    return value


def _expires_at(body: dict[str, Any]) -> dt.datetime | None:
    value = body.get("expires_at")
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise HttpError(400, "validation_failed", "expires_at must be an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed <= dt.datetime.now(dt.UTC):
        raise HttpError(400, "validation_failed", "expires_at must be in the future")
    return parsed


def _audit(
    action: str, request: web.Request, admin: DashboardAdmin, key_id: str, success: bool = True
) -> None:
    audit(
        f"admin.{action}", success=success, user_id=admin.user_id, ip=client_inet(request), resource_id=key_id
    )


async def create_key(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """{name, scopes, role: anon|service_role, rate_limit_per_minute, expires_at} -> the key, once."""
    body = await json_object(request)
    name = text_field(body, "name", max_length=200)
    scopes = _scopes(body, required=True)
    role = body.get("role", "anon")
    if role not in ("anon", "service_role"):
        raise HttpError(400, "validation_failed", "role must be anon (the default) or service_role")
    limit = _rate_limit(body) or ctx.config.dashboard.api_key_rate_limit
    async with ctx.as_service(request) as tx:
        row = await tx.fetchrow(
            "select id::text, key"
            " from dashboard.create_api_key($1, $2::text[], $3, $4, $5, $6::uuid, $7::inet)",
            name,
            scopes,
            role,
            limit,
            _expires_at(body),
            admin.user_id,
            client_inet(request),
        )
        assert row is not None
        raw = await tx.fetchval("select dashboard.api_key_json($1::uuid)::text", row["id"])
    _audit("api_key_created", request, admin, row["id"])
    return json_response({**orjson.loads(raw), "key": row["key"]}, status=201)


async def list_keys(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    async with ctx.as_service(request, read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.list_api_keys()::text")
    return web.Response(body=raw, content_type="application/json")


async def get_key(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    async with ctx.as_service(request, read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.api_key_json($1::uuid)::text", _key_id(request))
    if raw is None:
        raise outcome_error("not_found")
    return web.Response(body=raw, content_type="application/json")


async def update_key(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    key_id = _key_id(request)
    body = await json_object(request)
    clear_expiry = "expires_at" in body and body["expires_at"] is None
    async with ctx.as_service(request) as tx:
        raw = await tx.fetchval(
            "select dashboard.update_api_key($1::uuid, $2, $3::text[], $4, $5, $6, $7::uuid, $8::inet)::text",
            key_id,
            text_field(body, "name", required=False, max_length=200),
            _scopes(body, required=False),
            _rate_limit(body),
            _expires_at(body),
            clear_expiry,
            admin.user_id,
            client_inet(request),
        )
    if raw is None:
        raise outcome_error("not_found")
    _audit("api_key_updated", request, admin, key_id)
    return web.Response(body=raw, content_type="application/json")


# The key functions taking (key, admin, client address): a fixed name, never the request's.
KeyFunction = Literal["revoke_api_key", "regenerate_api_key", "delete_api_key"]


async def _key_operation(
    tx: Any, function: KeyFunction, key_id: str, admin: DashboardAdmin, request: web.Request
) -> Any:
    """One of the dashboard.*_api_key(key, admin, inet) functions, as this administrator."""
    return await tx.fetchval(
        f"select dashboard.{function}($1::uuid, $2::uuid, $3::inet)",
        key_id,
        admin.user_id,
        client_inet(request),
    )


async def revoke_key(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    key_id = _key_id(request)
    async with ctx.as_service(request) as tx:
        revoked = await _key_operation(tx, "revoke_api_key", key_id, admin, request)
    _audit("api_key_revoked", request, admin, key_id, bool(revoked))
    if not revoked:
        raise outcome_error("not_found", "No such live key")
    return json_response({"revoked": True})


async def regenerate_key(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    key_id = _key_id(request)
    async with ctx.as_service(request) as tx:
        key = await _key_operation(tx, "regenerate_api_key", key_id, admin, request)
        raw = await tx.fetchval("select dashboard.api_key_json($1::uuid)::text", key_id)
    _audit("api_key_regenerated", request, admin, key_id, key is not None)
    if key is None:
        raise outcome_error("not_found", "No such live key")
    return json_response({**orjson.loads(raw), "key": key})


async def delete_key(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    key_id = _key_id(request)
    async with ctx.as_service(request) as tx:
        deleted = await _key_operation(tx, "delete_api_key", key_id, admin, request)
    _audit("api_key_deleted", request, admin, key_id, bool(deleted))
    if not deleted:
        raise outcome_error("not_found")
    return web.Response(status=204)


# The Go Fluxbase served keys at /api/v1/api-keys (unauthenticated, a flaw): its clients keep working,
# behind the same administrator check.
PREFIXES = ("/api/v1/admin/api-keys", "/api/v1/api-keys")


def add_routes(app: web.Application) -> None:
    key = "/{id:[0-9a-fA-F-]{36}}"
    for prefix in PREFIXES:
        route(app, "GET", "", list_keys, api_keys=False, prefix=prefix)
        route(app, "POST", "", create_key, api_keys=False, prefix=prefix)
        route(app, "GET", key, get_key, api_keys=False, prefix=prefix)
        route(app, "PATCH", key, update_key, api_keys=False, prefix=prefix)
        route(app, "DELETE", key, delete_key, api_keys=False, prefix=prefix)
        route(app, "POST", f"{key}/revoke", revoke_key, api_keys=False, prefix=prefix)
        route(app, "POST", f"{key}/regenerate", regenerate_key, api_keys=False, prefix=prefix)
