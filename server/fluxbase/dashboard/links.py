"""/dashboard/auth mail links: password reset, email verification, invitations (single use)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from fluxbase.dashboard.context import (
    DashboardContext,
    checked_email,
    checked_password,
    current_admin,
    dashboard_link,
    limit,
    mail_later,
    send_verification,
    service_context,
)
from fluxbase.dashboard.errors import outcome_error
from fluxbase.errors import HttpError, json_response
from fluxbase.observability.logging import audit
from fluxbase.request_json import client_inet, json_object, text_field


async def request_reset(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    """Always the same answer, so it does not tell whether the address is an administrator's."""
    body = await json_object(request)
    email = checked_email(body)
    ip = client_inet(request)
    limit(ctx.by_ip, "dashboard_reset_ip", ip or "unknown")
    if ctx.smtp.host is None:
        raise HttpError(
            503, "smtp_not_configured", "No SMTP server is configured (auth.smtp.host): no mail can be sent"
        )
    async with ctx.database.transaction(service_context(request)) as tx:
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
            f"Reset your Fluxbase dashboard password:\n\n{dashboard_link(ctx, 'reset-password', token)}\n\n"
            f"Or POST the token with new_password to /dashboard/auth/password/reset/confirm: {token}\n"
        )
        mail_later(ctx, email, "Reset your Fluxbase dashboard password", text)
    return json_response(
        {"message": "If this address belongs to an administrator, a reset link is on its way"}
    )


async def _use_token(
    request: web.Request, ctx: DashboardContext, kind: str, with_password: bool
) -> web.StreamResponse:
    body = await json_object(request)
    token = text_field(body, "token", max_length=200)
    password = (
        checked_password(ctx, body, "new_password" if kind == "password_reset" else "password")
        if with_password
        else None
    )
    ip = client_inet(request)
    limit(ctx.by_ip, f"dashboard_{kind}_ip", ip or "unknown")
    async with ctx.database.transaction(service_context(request)) as tx:
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
    admin = await current_admin(request, ctx)
    if ctx.smtp.host is None:
        raise HttpError(
            503, "smtp_not_configured", "No SMTP server is configured (auth.smtp.host): no mail can be sent"
        )
    async with ctx.database.transaction(service_context(request)) as tx:
        await send_verification(ctx, tx, str(admin.user_id), admin.email, client_inet(request))
    return json_response({"message": "Verification mail sent"})
