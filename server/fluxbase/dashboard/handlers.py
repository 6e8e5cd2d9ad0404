"""/dashboard/auth/*: administrators sign up (the first only), log in (with TOTP 2FA), manage their sessions.

Each call runs the dashboard.* SQL functions as service_role in one
transaction; outcomes the SQL returns as values (a failed login, a wrong
code, a replayed refresh token) are committed before the 4xx goes out, so
lockout counters, revocations and activity rows persist.  Tokens come back
in the body and, for browsers, in HttpOnly SameSite=Strict cookies (Secure
over TLS); cookie-authenticated changes need the CSRF header
(security/dashboard_auth.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from fluxbase.dashboard import totp
from fluxbase.dashboard.context import (
    DASHBOARD,
    OPEN_SESSION,
    PREFIX,
    DashboardContext,
    checked_email,
    checked_password,
    clear_cookies,
    current_admin,
    endpoint,
    limit,
    make_context,
    send_verification,
    service_context,
    session_response,
    stop,
)
from fluxbase.dashboard.errors import outcome_error
from fluxbase.dashboard.links import (
    accept_invitation,
    confirm_reset,
    request_reset,
    resend_verification,
    verify_email,
)
from fluxbase.dashboard.two_factor import disable_2fa, enable_2fa, setup_2fa
from fluxbase.errors import HttpError, json_response
from fluxbase.observability.logging import audit
from fluxbase.request_json import client_inet, json_object, text_field
from fluxbase.security import dashboard_auth as da

__all__ = ["DASHBOARD", "PREFIX", "add_routes", "make_context", "stop"]

# ---------------------------------------------------------------------------
# Signup, login, 2FA verification, refresh, logout
# ---------------------------------------------------------------------------


async def signup(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    """The first administrator only; afterwards 403 (invitation or `fluxbase admin create`)."""
    body = await json_object(request)
    email = checked_email(body)
    password = checked_password(ctx, body)
    full_name = text_field(body, "full_name", required=False, max_length=200) or ""
    ip = client_inet(request)
    limit(ctx.by_ip, "dashboard_signup_ip", ip or "unknown")
    async with ctx.database.transaction(service_context(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, error"
            " from dashboard.create_user($1, $2, $3, 'dashboard_admin', $4, true, null, $5::inet)",
            email,
            password,
            full_name,
            ctx.config.bcrypt_cost,
            ip,
        )
        assert row is not None
        response = None
        if row["error"] is None:
            opened = await tx.fetchrow(
                OPEN_SESSION,
                row["user_id"],
                dt.timedelta(seconds=ctx.config.session_ttl),
                ip,
                request.headers.get("User-Agent"),
            )
            assert opened is not None
            await send_verification(ctx, tx, row["user_id"], email, ip)
            response = await session_response(
                request,
                ctx,
                tx,
                row["user_id"],
                opened["session_id"],
                opened["refresh_token"],
                "aal1",
                status=201,
            )
    return _audited("dashboard.signup", row, ip, response)


def _audited(event: str, row: Any, ip: str | None, response: web.StreamResponse | None) -> web.StreamResponse:
    """Writes the step's audit line; no response means the SQL refused it, in its own words."""
    audit(event, success=response is not None, user_id=row["user_id"], ip=ip, outcome=row["error"] or "ok")
    if response is None:
        raise outcome_error(row["error"])
    return response


async def login(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    body = await json_object(request)
    email = checked_email(body)
    password = text_field(body, "password", max_length=200)
    ip = client_inet(request)
    limit(ctx.by_ip, "dashboard_login_ip", ip or "unknown")
    # Rate-limit keys reach the log; a digest keeps the address out of it.
    limit(ctx.by_account, "dashboard_login_account", hashlib.sha256(email.encode()).hexdigest()[:16])
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(service_context(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, outcome, totp_enabled, locked"
            " from dashboard.check_password($1, $2, $3::inet, $4, $5::interval)",
            email,
            password,
            ip,
            max_failures,
            lockout,
        )
        assert row is not None
        response: web.Response | None = None
        if row["outcome"] == "ok" and row["totp_enabled"]:
            ttl = int(ctx.config.mfa_challenge_ttl)
            challenge_id = await tx.fetchval(
                "select dashboard.start_mfa_challenge($1::uuid, $2::interval, $3::inet)::text",
                row["user_id"],
                dt.timedelta(seconds=ttl),
                ip,
            )
            token = da.issue_challenge_token(
                ctx.secret, challenge_id=challenge_id, user_id=row["user_id"], ttl=ttl, issuer=ctx.issuer
            )
            response = json_response({"mfa_required": True, "challenge_token": token, "expires_in": ttl})
        elif row["outcome"] == "ok":
            opened = await tx.fetchrow(
                OPEN_SESSION,
                row["user_id"],
                dt.timedelta(seconds=ctx.config.session_ttl),
                ip,
                request.headers.get("User-Agent"),
            )
            assert opened is not None
            response = await session_response(
                request, ctx, tx, row["user_id"], opened["session_id"], opened["refresh_token"], "aal1"
            )
    # Committed either way: a failure counts towards the lockout.
    audit(
        "dashboard.login",
        success=row["outcome"] == "ok",
        user_id=row["user_id"],
        ip=ip,
        outcome=row["outcome"],
        mfa_required=bool(row["totp_enabled"]),
    )
    if row["locked"]:
        audit("dashboard.user_locked", user_id=row["user_id"], ip=ip, reason="invalid_password")
    if response is None:
        raise outcome_error(row["outcome"])
    return response


async def verify_2fa(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    """POST /2fa/verify {challenge_token, code | backup_code}: the second step of a 2FA login."""
    body = await json_object(request)
    token = text_field(body, "challenge_token", required=False, max_length=4000)
    if token is None:
        header = request.headers.get("Authorization", "")
        token = header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else None
    if not token:
        raise HttpError(400, "validation_failed", "challenge_token is required")
    claims = da.verify_challenge_token(ctx.secret, token)
    code = text_field(body, "code", required=False, max_length=20)
    backup = text_field(body, "backup_code", required=False, max_length=40)
    if code is None and backup is None:
        raise HttpError(400, "validation_failed", "code or backup_code is required")
    ip = client_inet(request)
    limit(ctx.by_ip, "dashboard_2fa_ip", ip or "unknown")
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(service_context(request)) as tx:
        found = await tx.fetchrow(
            "select user_id::text, totp_secret_encrypted from dashboard.mfa_challenge_user($1::uuid)",
            claims["challenge_id"],
        )
        step = None
        if found is not None and found["user_id"] is not None and code is not None:
            step = totp.matching_step(totp.decrypt(ctx.totp_key, found["totp_secret_encrypted"]), code)
        row = await tx.fetchrow(
            "select outcome, user_id::text, session_id::text, refresh_token, locked"
            " from dashboard.complete_mfa_challenge("
            "$1::uuid, $2, $3, $4::interval, $5::inet, $6, 5, $7, $8::interval)",
            claims["challenge_id"],
            step,
            backup if code is None else None,
            dt.timedelta(seconds=ctx.config.session_ttl),
            ip,
            request.headers.get("User-Agent"),
            max_failures,
            lockout,
        )
        assert row is not None
        response = None
        if row["outcome"] == "ok":
            response = await session_response(
                request, ctx, tx, row["user_id"], row["session_id"], row["refresh_token"], "aal2"
            )
    audit(
        "dashboard.2fa_verify",
        success=response is not None,
        user_id=row["user_id"],
        ip=ip,
        outcome=row["outcome"],
        method="totp" if code is not None else "backup_code",
    )
    if row["locked"]:
        audit("dashboard.user_locked", user_id=row["user_id"], ip=ip, reason="invalid_code")
    if response is None:
        raise outcome_error(row["outcome"])
    return response


async def refresh(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    body = await json_object(request)
    token = text_field(body, "refresh_token", required=False, max_length=200)
    from_cookie = token is None
    token = token or request.cookies.get(da.REFRESH_COOKIE)
    if not token:
        raise HttpError(400, "validation_failed", "refresh_token is required")
    if from_cookie:
        da.check_csrf(request)
    ip = client_inet(request)
    async with ctx.database.transaction(service_context(request)) as tx:
        row = await tx.fetchrow(
            "select session_id::text, user_id::text, refresh_token, error"
            " from dashboard.refresh_session($1, $2::interval, $3::inet)",
            token,
            dt.timedelta(seconds=ctx.config.session_ttl),
            ip,
        )
        assert row is not None
        response = None
        if row["error"] is None:
            aal = orjson.loads(
                await tx.fetchval("select dashboard.session_user($1::uuid)::text", row["session_id"])
            )["aal"]
            response = await session_response(
                request, ctx, tx, row["user_id"], row["session_id"], row["refresh_token"], aal
            )
    return _audited("dashboard.token_refresh", row, ip, response)


async def logout(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    async with ctx.database.transaction(service_context(request)) as tx:
        await tx.fetchval(
            "select dashboard.end_session($1::uuid, $2::uuid, $3::inet)",
            admin.user_id,
            admin.session_id,
            client_inet(request),
        )
    audit("dashboard.logout", user_id=admin.user_id, ip=client_inet(request))
    response = web.Response(status=204)
    clear_cookies(response)
    return response


# ---------------------------------------------------------------------------
# The signed-in administrator: profile, password, account, sessions
# ---------------------------------------------------------------------------


async def me(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    return json_response({**admin.user, "aal": admin.aal})


async def update_profile(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    body = await json_object(request)
    full_name = text_field(body, "full_name", required=False, max_length=200)
    avatar_url = text_field(body, "avatar_url", required=False, max_length=2000)
    async with ctx.database.transaction(service_context(request)) as tx:
        raw = await tx.fetchval(
            "select dashboard.update_profile($1::uuid, $2, $3, $4::inet)::text",
            admin.user_id,
            full_name,
            avatar_url,
            client_inet(request),
        )
    return web.Response(body=raw, content_type="application/json")


async def change_password(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    body = await json_object(request)
    current = text_field(body, "current_password", max_length=200)
    new = checked_password(ctx, body, "new_password")
    ip = client_inet(request)
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(service_context(request)) as tx:
        outcome = await tx.fetchval(
            "select dashboard.change_password($1::uuid, $2, $3, $4, $5::uuid, $6::inet, $7, $8::interval)",
            admin.user_id,
            current,
            new,
            ctx.config.bcrypt_cost,
            admin.session_id,
            ip,
            max_failures,
            lockout,
        )
    audit("dashboard.password_change", success=outcome == "ok", user_id=admin.user_id, ip=ip)
    if outcome != "ok":
        raise outcome_error(outcome)
    return json_response({"message": "Password changed; your other sessions have ended"})


async def delete_account(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    async with ctx.database.transaction(service_context(request)) as tx:
        outcome = await tx.fetchval(
            "select dashboard.delete_user($1::uuid, $1::uuid, $2::inet)", admin.user_id, client_inet(request)
        )
    audit("dashboard.account_delete", success=outcome == "ok", user_id=admin.user_id, outcome=outcome)
    if outcome != "ok":
        raise outcome_error(outcome)
    response = web.Response(status=204)
    clear_cookies(response)
    return response


async def list_sessions(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    async with ctx.database.transaction(service_context(request), read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.list_sessions($1::uuid)::text", admin.user_id)
    sessions = orjson.loads(raw)
    for session in sessions:
        session["current"] = session["id"] == admin.session_id
    return json_response(sessions)


async def revoke_session(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    session_id = request.match_info["session_id"]
    async with ctx.database.transaction(service_context(request)) as tx:
        ended = await tx.fetchval(
            "select dashboard.end_session($1::uuid, $2::uuid, $3::inet)",
            admin.user_id,
            session_id,
            client_inet(request),
        )
    audit("dashboard.session_revoke", success=bool(ended), user_id=admin.user_id, session_id=session_id)
    if not ended:
        raise HttpError(404, "not_found", "No such session")
    return web.Response(status=204)


ROUTES: tuple[
    tuple[str, str, Callable[[web.Request, DashboardContext], Awaitable[web.StreamResponse]]], ...
] = (
    ("POST", "/signup", signup),
    ("POST", "/login", login),
    ("POST", "/2fa/verify", verify_2fa),
    ("POST", "/refresh", refresh),
    ("POST", "/logout", logout),
    ("GET", "/me", me),
    ("PUT", "/profile", update_profile),
    ("POST", "/password/change", change_password),
    ("DELETE", "/account", delete_account),
    ("GET", "/sessions", list_sessions),
    ("DELETE", "/sessions/{session_id:[0-9a-fA-F-]{36}}", revoke_session),
    ("POST", "/2fa/setup", setup_2fa),
    ("POST", "/2fa/enable", enable_2fa),
    ("POST", "/2fa/disable", disable_2fa),
    ("POST", "/password/reset", request_reset),
    ("POST", "/password/reset/confirm", confirm_reset),
    ("POST", "/invitation/accept", accept_invitation),
    ("POST", "/verify-email", verify_email),
    ("POST", "/verify-email/resend", resend_verification),
)
# Reached before any session exists; every other route requires one.
PUBLIC_ROUTES = frozenset(
    {
        "/signup",
        "/login",
        "/2fa/verify",
        "/refresh",
        "/password/reset",
        "/password/reset/confirm",
        "/invitation/accept",
        "/verify-email",
        "/setup",  # dashboard/setup.py: whether the first administrator is still to be made
    }
)


def add_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, PREFIX + path, endpoint(handler))
