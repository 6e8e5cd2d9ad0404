"""Admin routes for people: the application's users (through the auth.* functions) and the administrators."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from fluxbase.admin_api.context import AdminContext, log_event, route
from fluxbase.admin_api.errors import outcome_error
from fluxbase.config import parse_duration
from fluxbase.errors import HttpError, json_response
from fluxbase.mail import send_mail
from fluxbase.request_json import client_inet, json_object, text_field
from fluxbase.security.dashboard_auth import DashboardAdmin

log = logging.getLogger("fluxbase.admin_api")
MAX_PER_PAGE = 1000


def _uuid(request: web.Request, name: str = "id") -> str:
    value = request.match_info[name]
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise HttpError(404, "not_found", "Not found") from exc


def _int(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise HttpError(400, "validation_failed", f"{name} must be a whole number from 1 to {maximum}")
    return int(raw)


def _mail_later(ctx: AdminContext, to: str, subject: str, text: str) -> None:
    async def send() -> None:
        try:
            await send_mail(ctx.config.auth.smtp, to, subject, text)
        except Exception as exc:
            log.error("admin mail not sent", extra={"subject": subject, "reason": str(exc)})

    task = asyncio.create_task(send())
    ctx.pending_mail.add(task)
    task.add_done_callback(ctx.pending_mail.discard)


def _require_smtp(ctx: AdminContext) -> None:
    if ctx.config.auth.smtp.host is None:
        raise HttpError(
            503, "smtp_not_configured", "No SMTP server is configured (auth.smtp.host): no mail can be sent"
        )


# ---------------------------------------------------------------------------
# Application users
# ---------------------------------------------------------------------------


async def list_app_users(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    """?page, ?per_page, ?search (part of an email address, case-insensitive)."""
    page = _int(request, "page", 1, 1_000_000)
    per_page = _int(request, "per_page", 50, MAX_PER_PAGE)
    search = request.query.get("search", "").strip()
    if not search:
        async with ctx.as_service(request, read_only=True) as tx:
            row = await tx.fetchrow("select users::text, total from auth.list_users($1, $2)", page, per_page)
        assert row is not None
        return json_response({"users": orjson.loads(row["users"]), "total": row["total"], "page": page})
    # Search reads auth.users as the owner (no API role may), then shapes each user with auth.user_json.
    pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with ctx.as_owner(read_only=True) as connection:
        rows = await connection.fetch(
            "select auth.user_json(u.id)::text as user, count(*) over () as total from auth.users u"
            " where u.deleted_at is null and u.email ilike $1 order by u.created_at, u.id limit $2 offset $3",
            pattern,
            per_page,
            (page - 1) * per_page,
        )
    users = [orjson.loads(r["user"]) for r in rows]
    return json_response({"users": users, "total": rows[0]["total"] if rows else 0, "page": page})


async def create_app_user(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    body = await json_object(request)
    email = text_field(body, "email", max_length=320)
    password = text_field(body, "password", max_length=72)
    metadata = body.get("user_metadata") or {}
    if not isinstance(metadata, dict):
        raise HttpError(400, "validation_failed", "user_metadata must be an object")
    if password is not None and len(password) < ctx.config.auth.password_min_length:
        raise HttpError(
            422,
            "weak_password",
            f"password must be at least {ctx.config.auth.password_min_length} characters",
        )
    confirm = body.get("email_confirm", True) is not False
    async with ctx.as_service(request) as tx:
        row = await tx.fetchrow(
            "select user_id::text, created from auth.sign_up($1, $2, $3::jsonb, $4, $5, $6::inet)",
            email,
            password,
            orjson.dumps(metadata).decode(),
            ctx.config.auth.bcrypt_cost,
            confirm,
            client_inet(request),
        )
        assert row is not None
        if not row["created"]:
            raise outcome_error("user_exists")
        user = await tx.fetchval("select auth.user_json($1::uuid)::text", row["user_id"])
        await log_event(
            tx, request, admin, "app_user_created", {}, resource_type="app_user", resource_id=row["user_id"]
        )
    return web.Response(body=user, status=201, content_type="application/json")


async def ban_app_user(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """{duration: "24h" | "none"}: bans (ending every session) or lifts a ban."""
    user_id = _uuid(request)
    body = await json_object(request)
    raw = body.get("duration", "876000h")
    try:
        seconds = None if raw in (None, "none") else parse_duration(raw)
    except (ValueError, TypeError) as exc:
        raise HttpError(
            400, "validation_failed", "duration must be like 30m, 24h, or 'none' to lift the ban"
        ) from exc
    async with ctx.as_service(request) as tx:
        found = await tx.fetchval(
            "select auth.ban_user($1::uuid, $2::interval, $3::uuid, $4::inet)",
            user_id,
            None if seconds is None else dt.timedelta(seconds=seconds),
            admin.user_id,
            client_inet(request),
        )
        if not found:
            raise outcome_error("not_found")
        action = "app_user_unbanned" if seconds is None else "app_user_banned"
        await log_event(
            tx, request, admin, action, {"seconds": seconds}, resource_type="app_user", resource_id=user_id
        )
        user = await tx.fetchval("select auth.user_json($1::uuid)::text", user_id)
    return web.Response(body=user, content_type="application/json")


async def delete_app_user(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    user_id = _uuid(request)
    soft = request.query.get("soft") == "true"
    async with ctx.as_service(request) as tx:
        found = await tx.fetchval(
            "select auth.delete_user($1::uuid, $2, $3::uuid, $4::inet)",
            user_id,
            soft,
            admin.user_id,
            client_inet(request),
        )
        if not found:
            raise outcome_error("not_found")
        await log_event(
            tx,
            request,
            admin,
            "app_user_deleted",
            {"soft": soft},
            resource_type="app_user",
            resource_id=user_id,
        )
    return web.Response(status=204)


async def unlock_app_user(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    user_id = _uuid(request)
    async with ctx.as_service(request) as tx:
        if not await tx.fetchval(
            "select auth.unlock_user($1::uuid, $2::uuid, $3::inet)",
            user_id,
            admin.user_id,
            client_inet(request),
        ):
            raise outcome_error("not_found")
        await log_event(
            tx, request, admin, "app_user_unlocked", {}, resource_type="app_user", resource_id=user_id
        )
    return json_response({"unlocked": True})


async def send_app_user_reset(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    """Mails the user a password-recovery link (GoTrue's /verify, type recovery) and code."""
    user_id = _uuid(request)
    _require_smtp(ctx)
    async with ctx.as_service(request) as tx:
        raw = await tx.fetchval("select auth.user_json($1::uuid)::text", user_id)
        user: dict[str, Any] | None = orjson.loads(raw) if raw else None
        if user is None or not user.get("email"):
            raise outcome_error("not_found", "No such user with an email address")
        row = await tx.fetchrow(
            "select token, code from auth.issue_email_otp($1::uuid, 'recovery', $2, $3::interval, $4::inet)",
            user_id,
            user["email"],
            dt.timedelta(seconds=ctx.config.auth.otp_ttl),
            client_inet(request),
        )
        assert row is not None
        await log_event(
            tx, request, admin, "app_user_reset_sent", {}, resource_type="app_user", resource_id=user_id
        )
    base = ctx.config.server.base_url.rstrip("/")
    site = ctx.config.auth.site_url or ctx.config.server.base_url
    link = f"{base}/auth/v1/verify?" + urlencode(
        {"token": row["token"], "type": "recovery", "redirect_to": site}
    )
    text = (
        f"Follow this link to reset the password for {user['email']}:\n\n{link}\n\n"
        f"Or enter this code: {row['code']}\n"
    )
    _mail_later(ctx, user["email"], "Reset your password", text)
    return json_response({"sent": True})


# ---------------------------------------------------------------------------
# Administrators
# ---------------------------------------------------------------------------


async def list_admins(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    async with ctx.as_service(request, read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.list_users()::text")
    return web.Response(body=raw, content_type="application/json")


async def invite_admin(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """{email, full_name, role}: creates the administrator and mails an invitation link to set a password."""
    body = await json_object(request)
    email = text_field(body, "email", max_length=320)
    full_name = text_field(body, "full_name", required=False, max_length=200) or ""
    role = body.get("role", "dashboard_admin")
    if role not in ("dashboard_admin", "dashboard_viewer"):
        raise HttpError(400, "validation_failed", "role must be dashboard_admin or dashboard_viewer")
    _require_smtp(ctx)
    ip = client_inet(request)
    async with ctx.as_service(request) as tx:
        row = await tx.fetchrow(
            "select user_id::text, error"
            " from dashboard.create_user($1, null, $2, $3, $4, false, $5::uuid, $6::inet)",
            email,
            full_name,
            role,
            ctx.config.dashboard.bcrypt_cost,
            admin.user_id,
            ip,
        )
        assert row is not None
        if row["error"] is not None:
            raise outcome_error(row["error"])
        token = await tx.fetchval(
            "select dashboard.issue_token($1::uuid, 'invitation', $2::interval, $3::inet)",
            row["user_id"],
            dt.timedelta(seconds=ctx.config.dashboard.link_ttl),
            ip,
        )
        user = await tx.fetchval("select dashboard.user_json($1::uuid)::text", row["user_id"])
    link = f"{ctx.config.server.base_url.rstrip('/')}/dashboard/accept-invitation?" + urlencode(
        {"token": token}
    )
    text = (
        f"You are invited to administer Fluxbase. Choose a password here:\n\n{link}\n\n"
        f"Or POST the token with a password to /dashboard/auth/invitation/accept: {token}\n"
    )
    _mail_later(ctx, str(email), "Your Fluxbase dashboard invitation", text)
    return web.Response(body=user, status=201, content_type="application/json")


async def unlock_admin(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    user_id = _uuid(request)
    async with ctx.as_service(request) as tx:
        if not await tx.fetchval(
            "select dashboard.unlock_user($1::uuid, $2::uuid, $3::inet)",
            user_id,
            admin.user_id,
            client_inet(request),
        ):
            raise outcome_error("not_found")
    return json_response({"unlocked": True})


async def delete_admin(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    user_id = _uuid(request)
    async with ctx.as_service(request) as tx:
        outcome = await tx.fetchval(
            "select dashboard.delete_user($1::uuid, $2::uuid, $3::inet)",
            user_id,
            admin.user_id,
            client_inet(request),
        )
    if outcome != "ok":
        raise outcome_error(outcome)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    uid = "{id:[0-9a-fA-F-]{36}}"
    route(app, "GET", "/users", list_app_users)
    route(app, "POST", "/users", create_app_user)
    route(app, "POST", f"/users/{uid}/ban", ban_app_user)
    route(app, "POST", f"/users/{uid}/unlock", unlock_app_user)
    route(app, "POST", f"/users/{uid}/send-reset", send_app_user_reset)
    route(app, "DELETE", f"/users/{uid}", delete_app_user)
    # Administrators manage administrators only in person, never through a key.
    route(app, "GET", "/dashboard-users", list_admins, api_keys=False)
    route(app, "POST", "/dashboard-users", invite_admin, api_keys=False)
    route(app, "POST", f"/dashboard-users/{uid}/unlock", unlock_admin, api_keys=False)
    route(app, "DELETE", f"/dashboard-users/{uid}", delete_admin, api_keys=False)
