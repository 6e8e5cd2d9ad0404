"""The signed-in user: GET /user and PUT /user (metadata, password, a new address)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from aiohttp import web

from fluxbase.auth.accounts import send_later, user_json
from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request, unprocessable
from fluxbase.auth.request import (
    check_password_policy,
    client_ip,
    email_field,
    json_response,
    read_body,
    require_mail,
    service,
    user_caller,
)
from fluxbase.db.transaction import RoleSwitchedTransaction
from fluxbase.observability.logging import audit
from fluxbase.security.authenticate import Caller

# What a user may send to PUT /user; role, app_metadata and verification state are not among them.
USER_UPDATE_KEYS = frozenset(
    {"email", "password", "data", "phone", "nonce", "current_password", "channel", "code_challenge",
     "code_challenge_method"}
)  # fmt: skip


async def _live_user(tx: RoleSwitchedTransaction, caller: Caller) -> dict[str, Any]:
    if caller.session_id is not None:
        alive = await tx.fetchval("select auth.session_info($1::uuid) is not null", caller.session_id)
        if not alive:
            raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    user = await user_json(tx, caller.user_id or "")
    if user is None or user.get("deleted_at"):
        raise AuthError(404, "user_not_found", "User from sub claim in JWT does not exist")
    return user


async def get_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    # The session is read from the database (_live_user), not this process's revocation cache:
    # an ended session answers 403 session_not_found, on which auth-js drops its session.
    caller = user_caller(request, ctx, session_checked_in_db=True)
    async with ctx.database.transaction(service(request), read_only=True) as tx:
        user = await _live_user(tx, caller)
    return json_response(user)


async def update_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = user_caller(request, ctx, session_checked_in_db=True)
    body = await read_body(request)
    refused_keys = sorted(set(body) - USER_UPDATE_KEYS)
    if refused_keys:
        raise AuthError(403, "not_admin", f"Only an administrator can change {', '.join(refused_keys)}")
    if body.get("phone"):
        raise unprocessable("phone_provider_disabled", "Phone changes are disabled")
    password = (
        check_password_policy(ctx.config, body["password"]) if body.get("password") is not None else None
    )
    new_email = email_field(body)
    metadata = body.get("data")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    if new_email is not None:
        require_mail(ctx)
    ip = client_ip(request)
    async with ctx.database.transaction(service(request)) as tx:
        current = await _live_user(tx, caller)
        if new_email == (current.get("email") or "").lower():
            new_email = None
        row = await tx.fetchrow(
            "select error, email_change_token"
            " from auth.update_user($1::uuid, $2::jsonb, $3, $4, $5, $6::uuid, $7::interval, $8::inet)",
            caller.user_id,
            orjson.dumps(metadata).decode() if metadata is not None else None,
            password,
            new_email,
            ctx.config.bcrypt_cost,
            caller.session_id,
            dt.timedelta(seconds=ctx.config.otp_ttl),
            ip,
        )
        assert row is not None
        error = row["error"]
        if error is None:
            user = await user_json(tx, caller.user_id or "")
    if error is not None:
        status = {"user_not_found": 404, "user_banned": 403}.get(error, 422)
        messages = {
            "same_password": "New password should be different from the old password.",
            "email_exists": "A user with this email address has already been registered",
        }
        raise AuthError(status, error, messages.get(error, error.replace("_", " ")))
    audit(
        "auth.user_modified", user_id=caller.user_id, ip=ip, fields=sorted(k for k in body if k != "password")
    )
    if row["email_change_token"] and new_email:
        send_later(
            ctx, "email_change", new_email, row["email_change_token"], request.query.get("redirect_to")
        )
    return json_response(user)
