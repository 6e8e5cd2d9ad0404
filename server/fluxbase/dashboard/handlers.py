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

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
from aiohttp import web

from fluxbase.config import DashboardConfig, SmtpConfig
from fluxbase.dashboard import totp
from fluxbase.dashboard.errors import outcome_error
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.errors import HttpError, json_response
from fluxbase.mail import send_mail
from fluxbase.observability.logging import audit
from fluxbase.request_json import client_inet, json_object, text_field
from fluxbase.security import csrf
from fluxbase.security import dashboard_auth as da
from fluxbase.security.ratelimit import RateLimiter, refused

log = logging.getLogger("fluxbase.dashboard")
PREFIX = "/dashboard/auth"
OPEN_SESSION = (
    "select session_id::text, refresh_token"
    " from dashboard.open_session($1::uuid, 'aal1', $2::interval, $3::inet, $4)"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class DashboardContext:
    config: DashboardConfig
    smtp: SmtpConfig
    base_url: str
    secret: str
    database: Database
    by_ip: RateLimiter
    by_account: RateLimiter
    pending_mail: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return self.base_url.rstrip("/") + PREFIX

    @property
    def totp_key(self) -> bytes:
        return da.totp_encryption_key(self.secret)

    def lockout(self) -> tuple[int, dt.timedelta]:
        return self.config.lockout_max_failures, dt.timedelta(seconds=self.config.lockout_duration)


DASHBOARD = web.AppKey("dashboard", DashboardContext)


def make_context(
    config: DashboardConfig, smtp: SmtpConfig, base_url: str, secret: str, database: Database
) -> DashboardContext:
    return DashboardContext(
        config,
        smtp,
        base_url,
        secret,
        database,
        RateLimiter(config.sign_in_attempts, config.sign_in_window),
        RateLimiter(config.sign_in_attempts, config.sign_in_window),
    )


def _service(request: web.Request) -> RequestContext:
    return RequestContext("service_role", {"role": "service_role"}, request.method, request.path)


def endpoint(handler: Callable[[web.Request, DashboardContext], Awaitable[web.StreamResponse]]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, request.app[DASHBOARD])
        except da.DashboardAuthError as error:
            raise HttpError(error.status, error.code, error.message) from error
        except asyncpg.PostgresError as error:
            if error.sqlstate in ("22023", "23514"):  # the SQL refused a value: the client's mistake
                raise HttpError(422, "validation_failed", str(error).split("\n")[0]) from error
            if error.sqlstate == "28000":
                raise HttpError(401, "session_not_found", "The administrator no longer exists") from error
            raise

    return handle


def _limit(limiter: RateLimiter, scope: str, key: str) -> None:
    decision = limiter.hit(key)
    if not decision.allowed:
        raise refused(decision, scope, key)


def _password(ctx: DashboardContext, body: dict[str, Any], name: str = "password") -> str:
    value = body.get(name)
    if not isinstance(value, str) or len(value) < ctx.config.password_min_length:
        raise HttpError(
            422, "weak_password", f"{name} must be at least {ctx.config.password_min_length} characters"
        )
    if len(value.encode()) > 72:
        raise HttpError(422, "weak_password", f"{name} cannot be longer than 72 bytes")
    return value


def _email(body: dict[str, Any]) -> str:
    value = text_field(body, "email", max_length=320)
    assert value is not None
    if "@" not in value:
        raise HttpError(400, "validation_failed", "email is not an email address")
    return value.strip().lower()


def _secure(request: web.Request, ctx: DashboardContext) -> bool:
    return request.secure or ctx.base_url.startswith("https://")


async def _session(
    request: web.Request,
    ctx: DashboardContext,
    tx: RoleSwitchedTransaction,
    user_id: str,
    session_id: str,
    refresh_token: str,
    aal: str,
    *,
    status: int = 200,
) -> web.Response:
    """The session answer: tokens in the body, and the same in cookies for a browser."""
    raw = await tx.fetchval("select dashboard.user_json($1::uuid)::text", user_id)
    user = orjson.loads(raw)
    ttl = int(ctx.config.access_token_ttl)
    access, expires_at = da.issue_access_token(
        ctx.secret,
        user_id=user_id,
        session_id=session_id,
        email=user["email"],
        aal=aal,
        ttl=ttl,
        issuer=ctx.issuer,
    )
    csrf_token = request.cookies.get(csrf.COOKIE) or secrets.token_urlsafe(32)
    body = {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "expires_at": expires_at,
        "refresh_token": refresh_token,
        "csrf_token": csrf_token,
        "user": user,
    }
    response = json_response(body, status=status)
    secure = _secure(request, ctx)
    response.set_cookie(
        da.SESSION_COOKIE, access, httponly=True, secure=secure, samesite="Strict", path="/", max_age=ttl
    )
    response.set_cookie(
        da.REFRESH_COOKIE,
        refresh_token,
        httponly=True,
        secure=secure,
        samesite="Strict",
        path=da.REFRESH_COOKIE_PATH,
        max_age=int(ctx.config.session_ttl),
    )
    # Readable by the page's script, which echoes it in X-CSRF-Token.
    response.set_cookie(csrf.COOKIE, csrf_token, secure=secure, samesite="Strict", path="/")
    return response


def _clear_cookies(response: web.Response) -> None:
    response.del_cookie(da.SESSION_COOKIE, path="/")
    response.del_cookie(da.REFRESH_COOKIE, path=da.REFRESH_COOKIE_PATH)


def _mail_later(ctx: DashboardContext, to: str, subject: str, text: str) -> None:
    """Sends after the answer: neither the answer nor its timing says whether a mail went out."""

    async def send() -> None:
        try:
            await send_mail(ctx.smtp, to, subject, text)
        except Exception as exc:
            log.error("dashboard mail not sent", extra={"subject": subject, "reason": str(exc)})

    task = asyncio.create_task(send())
    ctx.pending_mail.add(task)
    task.add_done_callback(ctx.pending_mail.discard)


def _link(ctx: DashboardContext, page: str, token: str) -> str:
    return f"{ctx.base_url.rstrip('/')}/dashboard/{page}?{urlencode({'token': token})}"


async def _send_verification(
    ctx: DashboardContext, tx: RoleSwitchedTransaction, user_id: str, email: str, ip: str | None
) -> None:
    if ctx.smtp.host is None:
        return
    token = await tx.fetchval(
        "select dashboard.issue_token($1::uuid, 'email_verification', $2::interval, $3::inet)",
        user_id,
        dt.timedelta(seconds=ctx.config.link_ttl),
        ip,
    )
    text = (
        f"Confirm your address for the Fluxbase dashboard:\n\n{_link(ctx, 'verify-email', token)}\n\n"
        f"Or POST the token to /dashboard/auth/verify-email: {token}\n"
    )
    _mail_later(ctx, email, "Confirm your Fluxbase dashboard address", text)


# ---------------------------------------------------------------------------
# Signup, login, 2FA verification, refresh, logout
# ---------------------------------------------------------------------------


async def signup(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    """The first administrator only; afterwards 403 (invitation or `fluxbase admin create`)."""
    body = await json_object(request)
    email = _email(body)
    password = _password(ctx, body)
    full_name = text_field(body, "full_name", required=False, max_length=200) or ""
    ip = client_inet(request)
    _limit(ctx.by_ip, "dashboard_signup_ip", ip or "unknown")
    async with ctx.database.transaction(_service(request)) as tx:
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
            await _send_verification(ctx, tx, row["user_id"], email, ip)
            response = await _session(
                request,
                ctx,
                tx,
                row["user_id"],
                opened["session_id"],
                opened["refresh_token"],
                "aal1",
                status=201,
            )
    audit(
        "dashboard.signup",
        success=response is not None,
        user_id=row["user_id"],
        ip=ip,
        outcome=row["error"] or "ok",
    )
    if response is None:
        raise outcome_error(row["error"])
    return response


async def login(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    body = await json_object(request)
    email = _email(body)
    password = text_field(body, "password", max_length=200)
    ip = client_inet(request)
    _limit(ctx.by_ip, "dashboard_login_ip", ip or "unknown")
    # Rate-limit keys reach the log; a digest keeps the address out of it.
    _limit(ctx.by_account, "dashboard_login_account", hashlib.sha256(email.encode()).hexdigest()[:16])
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, outcome, totp_enabled"
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
            response = await _session(
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
    _limit(ctx.by_ip, "dashboard_2fa_ip", ip or "unknown")
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(_service(request)) as tx:
        found = await tx.fetchrow(
            "select user_id::text, totp_secret_encrypted from dashboard.mfa_challenge_user($1::uuid)",
            claims["challenge_id"],
        )
        step = None
        if found is not None and found["user_id"] is not None and code is not None:
            step = totp.matching_step(totp.decrypt(ctx.totp_key, found["totp_secret_encrypted"]), code)
        row = await tx.fetchrow(
            "select outcome, user_id::text, session_id::text, refresh_token"
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
            response = await _session(
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
    async with ctx.database.transaction(_service(request)) as tx:
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
            response = await _session(
                request, ctx, tx, row["user_id"], row["session_id"], row["refresh_token"], aal
            )
    audit(
        "dashboard.token_refresh",
        success=response is not None,
        user_id=row["user_id"],
        ip=ip,
        outcome=row["error"] or "ok",
    )
    if response is None:
        raise outcome_error(row["error"])
    return response


async def _admin(request: web.Request, ctx: DashboardContext) -> da.DashboardAdmin:
    return await da.authenticate_admin(request, ctx.database, ctx.secret)


async def logout(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    async with ctx.database.transaction(_service(request)) as tx:
        await tx.fetchval(
            "select dashboard.end_session($1::uuid, $2::uuid, $3::inet)",
            admin.user_id,
            admin.session_id,
            client_inet(request),
        )
    audit("dashboard.logout", user_id=admin.user_id, ip=client_inet(request))
    response = web.Response(status=204)
    _clear_cookies(response)
    return response


# ---------------------------------------------------------------------------
# The signed-in administrator: profile, password, account, sessions
# ---------------------------------------------------------------------------


async def me(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    return json_response({**admin.user, "aal": admin.aal})


async def update_profile(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    body = await json_object(request)
    full_name = text_field(body, "full_name", required=False, max_length=200)
    avatar_url = text_field(body, "avatar_url", required=False, max_length=2000)
    async with ctx.database.transaction(_service(request)) as tx:
        raw = await tx.fetchval(
            "select dashboard.update_profile($1::uuid, $2, $3, $4::inet)::text",
            admin.user_id,
            full_name,
            avatar_url,
            client_inet(request),
        )
    return web.Response(body=raw, content_type="application/json")


async def change_password(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    body = await json_object(request)
    current = text_field(body, "current_password", max_length=200)
    new = _password(ctx, body, "new_password")
    ip = client_inet(request)
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(_service(request)) as tx:
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
    admin = await _admin(request, ctx)
    async with ctx.database.transaction(_service(request)) as tx:
        outcome = await tx.fetchval(
            "select dashboard.delete_user($1::uuid, $1::uuid, $2::inet)", admin.user_id, client_inet(request)
        )
    audit("dashboard.account_delete", success=outcome == "ok", user_id=admin.user_id, outcome=outcome)
    if outcome != "ok":
        raise outcome_error(outcome)
    response = web.Response(status=204)
    _clear_cookies(response)
    return response


async def list_sessions(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    async with ctx.database.transaction(_service(request), read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.list_sessions($1::uuid)::text", admin.user_id)
    sessions = orjson.loads(raw)
    for session in sessions:
        session["current"] = session["id"] == admin.session_id
    return json_response(sessions)


async def revoke_session(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    session_id = request.match_info["session_id"]
    async with ctx.database.transaction(_service(request)) as tx:
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


# ---------------------------------------------------------------------------
# TOTP setup, enable, disable
# ---------------------------------------------------------------------------


async def setup_2fa(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    secret = totp.new_secret()
    async with ctx.database.transaction(_service(request)) as tx:
        error = await tx.fetchval(
            "select dashboard.set_totp_secret($1::uuid, $2, $3::inet)",
            admin.user_id,
            totp.encrypt(ctx.totp_key, secret),
            client_inet(request),
        )
    audit("dashboard.2fa_setup", success=error is None, user_id=admin.user_id)
    if error is not None:
        raise outcome_error(error)
    uri = totp.provisioning_uri(secret, admin.email)
    kind = "png" if request.query.get("format") == "png" else "svg"
    return json_response({"secret": secret, "otpauth_uri": uri, "qr_code": totp.qr_code(uri, kind)})


async def _step_for(
    tx: RoleSwitchedTransaction, ctx: DashboardContext, user_id: str | None, code: str | None
) -> int | None:
    if code is None:
        return None
    blob = await tx.fetchval("select dashboard.totp_secret($1::uuid)", user_id)
    return totp.matching_step(totp.decrypt(ctx.totp_key, blob), code) if blob is not None else None


async def enable_2fa(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    body = await json_object(request)
    code = text_field(body, "code", max_length=20)
    async with ctx.database.transaction(_service(request)) as tx:
        step = await _step_for(tx, ctx, admin.user_id, code)
        row = await tx.fetchrow(
            "select backup_codes, error from dashboard.enable_totp($1::uuid, $2, $3::inet)",
            admin.user_id,
            step,
            client_inet(request),
        )
    assert row is not None
    audit(
        "dashboard.2fa_enable",
        success=row["error"] is None,
        user_id=admin.user_id,
        outcome=row["error"] or "ok",
    )
    if row["error"] is not None:
        raise outcome_error(row["error"])
    return json_response({"totp_enabled": True, "backup_codes": list(row["backup_codes"])})


async def disable_2fa(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    body = await json_object(request)
    code = text_field(body, "code", required=False, max_length=20)
    backup = text_field(body, "backup_code", required=False, max_length=40)
    if code is None and backup is None:
        raise HttpError(400, "validation_failed", "code or backup_code is required")
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(_service(request)) as tx:
        step = await _step_for(tx, ctx, admin.user_id, code)
        error = await tx.fetchval(
            "select dashboard.disable_totp($1::uuid, $2, $3, $4::inet, $5, $6::interval)",
            admin.user_id,
            step,
            backup,
            client_inet(request),
            max_failures,
            lockout,
        )
    audit("dashboard.2fa_disable", success=error is None, user_id=admin.user_id, outcome=error or "ok")
    if error is not None:
        raise outcome_error(error)
    return json_response({"totp_enabled": False})


# ---------------------------------------------------------------------------
# Mail links: password reset, email verification, invitations
# ---------------------------------------------------------------------------


async def request_reset(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    """Always the same answer, so it does not tell whether the address is an administrator's."""
    body = await json_object(request)
    email = _email(body)
    ip = client_inet(request)
    _limit(ctx.by_ip, "dashboard_reset_ip", ip or "unknown")
    if ctx.smtp.host is None:
        raise HttpError(
            503, "smtp_not_configured", "No SMTP server is configured (auth.smtp.host): no mail can be sent"
        )
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = await tx.fetchval("select dashboard.find_user_by_email($1)::text", email)
        token = None
        if user_id is not None:
            token = await tx.fetchval(
                "select dashboard.issue_token($1::uuid, 'password_reset', $2::interval, $3::inet)",
                user_id,
                dt.timedelta(seconds=ctx.config.link_ttl),
                ip,
            )
    audit("dashboard.password_reset_request", ip=ip, known=user_id is not None)
    if token is not None:
        text = (
            f"Reset your Fluxbase dashboard password:\n\n{_link(ctx, 'reset-password', token)}\n\n"
            f"Or POST the token with new_password to /dashboard/auth/password/reset/confirm: {token}\n"
        )
        _mail_later(ctx, email, "Reset your Fluxbase dashboard password", text)
    return json_response(
        {"message": "If this address belongs to an administrator, a reset link is on its way"}
    )


async def _use_token(
    request: web.Request, ctx: DashboardContext, kind: str, with_password: bool
) -> web.StreamResponse:
    body = await json_object(request)
    token = text_field(body, "token", max_length=200)
    password = (
        _password(ctx, body, "new_password" if kind == "password_reset" else "password")
        if with_password
        else None
    )
    ip = client_inet(request)
    _limit(ctx.by_ip, f"dashboard_{kind}_ip", ip or "unknown")
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, error from dashboard.use_token($1, $2, $3, $4, $5::inet)",
            token,
            kind,
            password,
            ctx.config.bcrypt_cost,
            ip,
        )
    assert row is not None
    audit(f"dashboard.{kind}", success=row["error"] is None, user_id=row["user_id"], ip=ip)
    if row["error"] is not None:
        raise outcome_error(row["error"])
    return json_response({"message": "Done", "user_id": row["user_id"]})


async def confirm_reset(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    return await _use_token(request, ctx, "password_reset", True)


async def accept_invitation(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    return await _use_token(request, ctx, "invitation", True)


async def verify_email(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    return await _use_token(request, ctx, "email_verification", False)


async def resend_verification(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await _admin(request, ctx)
    if ctx.smtp.host is None:
        raise HttpError(
            503, "smtp_not_configured", "No SMTP server is configured (auth.smtp.host): no mail can be sent"
        )
    async with ctx.database.transaction(_service(request)) as tx:
        await _send_verification(ctx, tx, str(admin.user_id), admin.email, client_inet(request))
    return json_response({"message": "Verification mail sent"})


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


async def stop(ctx: DashboardContext) -> None:
    if ctx.pending_mail:
        await asyncio.wait(ctx.pending_mail, timeout=10)
