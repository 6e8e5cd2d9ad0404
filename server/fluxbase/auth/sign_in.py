"""Sign-in and tokens: POST /token (password, refresh_token and pkce grants) and /logout.

Failed grants are committed before the 4xx goes out: a wrong password
counts towards the lockout, a replayed refresh token has revoked its
session, and both are audited in SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from fluxbase.auth.accounts import open_session, session_for
from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request, unprocessable
from fluxbase.auth.request import (
    account_key,
    client_ip,
    count_outcome,
    email_field,
    json_response,
    limit,
    read_body,
    service,
    user_caller,
)
from fluxbase.observability.logging import audit

REFRESH_ERRORS = {
    "refresh_token_not_found": "Invalid Refresh Token: Refresh Token Not Found",
    "refresh_token_already_used": "Invalid Refresh Token: Already Used",
    "session_expired": "Invalid Refresh Token: Session Expired",
    "user_banned": "User is banned",
}
SIGN_IN_ERRORS = {
    "invalid_credentials": (400, "Invalid login credentials"),
    "email_not_confirmed": (400, "Email not confirmed"),
    "user_banned": (400, "User is banned"),
}


PKCE_AUTH_CODE_TTL = dt.timedelta(minutes=5)  # GoTrue's flow-state expiry once the code is issued
PKCE_ERRORS = {
    "flow_state_not_found": (404, "invalid flow state, no valid flow state found"),
    "flow_state_expired": (422, "Flow state has expired. Please start the flow again."),
    "bad_code_verifier": (403, "code challenge does not match previously saved code verifier"),
}


async def token(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    grant = request.query.get("grant_type")
    body = await read_body(request)
    if grant == "password":
        return await _password_grant(request, ctx, body)
    if grant == "refresh_token":
        return await _refresh_grant(request, ctx, body)
    if grant == "pkce":
        return await _pkce_grant(request, ctx, body)
    raise bad_request("unsupported_grant_type: grant_type must be password, refresh_token or pkce")


async def _pkce_grant(request: web.Request, ctx: AuthContext, body: dict[str, Any]) -> web.StreamResponse:
    auth_code, verifier = body.get("auth_code"), body.get("code_verifier")
    if not isinstance(auth_code, str) or not auth_code or not isinstance(verifier, str):
        raise bad_request("invalid request: both auth code and code verifier should be non-empty")
    if not 43 <= len(verifier) <= 128:
        raise bad_request("code verifier should be 43 to 128 characters long")
    ip = client_ip(request)
    session = None
    async with ctx.database.transaction(service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, authentication_method, error"
            " from auth.exchange_auth_code($1, $2, $3::interval, $4::inet)",
            auth_code,
            verifier,
            PKCE_AUTH_CODE_TTL,
            ip,
        )
        assert row is not None
        error = row["error"]
        if error is None:
            session = await open_session(tx, ctx, request, row["user_id"], row["authentication_method"])
    # Committed either way: the failure is audited, an expired flow used up.
    count_outcome("pkce", error or "ok")
    audit("auth.pkce_exchange", success=error is None, user_id=row["user_id"], ip=ip, outcome=error or "ok")
    if session is None:
        status, message = PKCE_ERRORS.get(error, (400, error))
        raise AuthError(status, error, message)
    return json_response(session)


async def _password_grant(request: web.Request, ctx: AuthContext, body: dict[str, Any]) -> web.StreamResponse:
    email = email_field(body)
    password = body.get("password")
    if email is None or not isinstance(password, str):
        if body.get("phone"):
            raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
        raise bad_request("missing email or password")
    ip = client_ip(request)
    try:
        limit(ctx.sign_in_by_ip, "auth_sign_in_ip", ip or "unknown")
        # Per account *and* source: attempts from elsewhere never spend the owner's budget.
        # Many sources against one account meet the account's backoff in SQL, shared by replicas.
        limit(ctx.sign_in_by_account, "auth_sign_in_account", f"{account_key(email)}:{ip or 'unknown'}")
    except AuthError:
        count_outcome("password", "rate_limited")
        raise
    lockout = ctx.config.lockout
    async with ctx.database.transaction(service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, outcome, lock_scope"
            " from auth.check_password($1, $2, $3::inet, $4, $5, $6::interval, $7::interval, $8::interval)",
            email,
            password,
            ip,
            lockout.failures_per_source,
            lockout.failures_per_account,
            dt.timedelta(seconds=lockout.window),
            dt.timedelta(seconds=lockout.duration),
            dt.timedelta(seconds=lockout.max_duration),
        )
        assert row is not None
        outcome = row["outcome"]
        session = (
            await open_session(tx, ctx, request, row["user_id"], "password") if outcome == "ok" else None
        )
    # Committed either way: a failure counts towards the lockout and is audited in SQL.
    count_outcome("password", outcome)
    audit("auth.login", success=outcome == "ok", user_id=row["user_id"], ip=ip, outcome=outcome)
    if row["lock_scope"] is not None:
        audit("auth.user_locked", success=False, ip=ip, scope=row["lock_scope"])
    if session is None:
        # A lock answers as a wrong password: it exists only for real accounts, so saying so would tell.
        status, message = SIGN_IN_ERRORS.get(outcome, (400, "Invalid login credentials"))
        raise AuthError(status, "invalid_credentials" if outcome == "locked" else outcome, message)
    return json_response(session)


async def _refresh_grant(request: web.Request, ctx: AuthContext, body: dict[str, Any]) -> web.StreamResponse:
    presented = body.get("refresh_token")
    if not isinstance(presented, str) or not presented:
        raise bad_request("refresh_token required", "refresh_token_not_found")
    ip = client_ip(request)
    async with ctx.database.transaction(service(request)) as tx:
        row = await tx.fetchrow(
            "select refresh_token, session_id::text, user_id::text, error"
            " from auth.rotate_refresh_token($1, $2, $3::inet)",
            presented,
            int(ctx.config.refresh_reuse_window),
            ip,
        )
        assert row is not None
        error = row["error"]
        session = None if error else await session_for(tx, ctx, row["session_id"], row["refresh_token"])
    # Committed before answering: a detected reuse has deleted the session.
    count_outcome("refresh_token", error or "ok")
    audit("auth.token_refreshed", success=error is None, user_id=row["user_id"], ip=ip, outcome=error or "ok")
    if session is None:
        raise AuthError(400 if error != "user_banned" else 403, error, REFRESH_ERRORS.get(error, error))
    return json_response(session)


async def logout(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = user_caller(request, ctx)
    scope = request.query.get("scope", "global")
    if scope not in ("global", "local", "others"):
        raise bad_request("scope must be global, local or others")
    session_id = caller.session_id
    if session_id is None:
        raise AuthError(403, "session_not_found", "The token carries no session")
    async with ctx.database.transaction(service(request)) as tx:
        ended = await tx.fetchval(
            "select auth.sign_out($1::uuid, $2, $3::inet)", session_id, scope, client_ip(request)
        )
    if scope != "others":
        # This process refuses the token at once; others learn it at their next session check.
        ctx.authenticator.revocations.revoke(session_id)
    audit("auth.logout", user_id=caller.user_id, scope=scope, sessions_ended=ended)
    return web.Response(status=204)
