"""/dashboard/auth/2fa/setup, enable, disable: TOTP for a signed-in administrator (verify: handlers)."""

from __future__ import annotations

from aiohttp import web

from fluxbase.dashboard import totp
from fluxbase.dashboard.context import (
    DashboardContext,
    current_admin,
    service_context,
)
from fluxbase.dashboard.errors import outcome_error
from fluxbase.db.transaction import RoleSwitchedTransaction
from fluxbase.errors import HttpError, json_response
from fluxbase.observability.logging import audit
from fluxbase.request_json import client_inet, json_object, text_field


async def setup_2fa(request: web.Request, ctx: DashboardContext) -> web.StreamResponse:
    admin = await current_admin(request, ctx)
    secret = totp.new_secret()
    async with ctx.database.transaction(service_context(request)) as tx:
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
    admin = await current_admin(request, ctx)
    body = await json_object(request)
    code = text_field(body, "code", max_length=20)
    async with ctx.database.transaction(service_context(request)) as tx:
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
    admin = await current_admin(request, ctx)
    body = await json_object(request)
    code = text_field(body, "code", required=False, max_length=20)
    backup = text_field(body, "backup_code", required=False, max_length=40)
    if code is None and backup is None:
        raise HttpError(400, "validation_failed", "code or backup_code is required")
    max_failures, lockout = ctx.lockout()
    async with ctx.database.transaction(service_context(request)) as tx:
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
