"""What the /dashboard/auth handlers share: the context, request checks, the session answer, mail.

The session answer puts the tokens in the body and, for browsers, in
HttpOnly SameSite=Strict cookies (Secure over TLS) next to the CSRF cookie.
"""

from __future__ import annotations

import asyncio
import datetime as dt
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
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.errors import HttpError, json_response
from fluxbase.mail import send_mail
from fluxbase.request_json import MAX_BODY, text_field
from fluxbase.security import csrf
from fluxbase.security import dashboard_auth as da
from fluxbase.security.ratelimit import RateLimiter, refused
from fluxbase.security.request_limits import caps_body

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


def service_context(request: web.Request) -> RequestContext:
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

    return caps_body(MAX_BODY)(handle)


def limit(limiter: RateLimiter, scope: str, key: str) -> None:
    """One attempt of a sign-in step; each step (scope) has its own budget per key, so the
    runbook's 5 login attempts are not spent by the 2FA step or a reset of the same sign-in."""
    decision = limiter.hit(f"{scope}:{key}")
    if not decision.allowed:
        raise refused(decision, scope, key)


def checked_password(ctx: DashboardContext, body: dict[str, Any], name: str = "password") -> str:
    value = body.get(name)
    if not isinstance(value, str) or len(value) < ctx.config.password_min_length:
        raise HttpError(
            422, "weak_password", f"{name} must be at least {ctx.config.password_min_length} characters"
        )
    if len(value.encode()) > 72:
        raise HttpError(422, "weak_password", f"{name} cannot be longer than 72 bytes")
    return value


def checked_email(body: dict[str, Any]) -> str:
    value = text_field(body, "email", max_length=320)
    assert value is not None
    if "@" not in value:
        raise HttpError(400, "validation_failed", "email is not an email address")
    return value.strip().lower()


def _secure(request: web.Request, ctx: DashboardContext) -> bool:
    return request.secure or ctx.base_url.startswith("https://")


async def session_response(
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


def clear_cookies(response: web.Response) -> None:
    response.del_cookie(da.SESSION_COOKIE, path="/")
    response.del_cookie(da.REFRESH_COOKIE, path=da.REFRESH_COOKIE_PATH)


def mail_later(ctx: DashboardContext, to: str, subject: str, text: str) -> None:
    """Sends after the answer: neither the answer nor its timing says whether a mail went out."""

    async def send() -> None:
        try:
            await send_mail(ctx.smtp, to, subject, text)
        except Exception as exc:
            log.error("dashboard mail not sent", extra={"subject": subject, "reason": str(exc)})

    task = asyncio.create_task(send())
    ctx.pending_mail.add(task)
    task.add_done_callback(ctx.pending_mail.discard)


def dashboard_link(ctx: DashboardContext, page: str, token: str) -> str:
    return f"{ctx.base_url.rstrip('/')}/dashboard/{page}?{urlencode({'token': token})}"


async def send_verification(
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
        "Confirm your address for the Fluxbase dashboard:\n\n"
        f"{dashboard_link(ctx, 'verify-email', token)}\n\n"
        f"Or POST the token to /dashboard/auth/verify-email: {token}\n"
    )
    mail_later(ctx, email, "Confirm your Fluxbase dashboard address", text)


async def current_admin(request: web.Request, ctx: DashboardContext) -> da.DashboardAdmin:
    return await da.authenticate_admin(request, ctx.database, ctx.secret)


async def stop(ctx: DashboardContext) -> None:
    if ctx.pending_mail:
        await asyncio.wait(ctx.pending_mail, timeout=10)
