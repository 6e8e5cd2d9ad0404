"""The flows that go through a mailbox: signup (and anonymous sign-in), recover, otp and
magiclink, resend, and /verify, where the mail's link or 6-digit code leads.

Mail for an address a client names is sent after the answer, so neither the
answer nor its timing tells whether the address has an account.  A flow
started with a PKCE challenge ends its link in ?code= (see auth.request_mail).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from aiohttp import web

from fluxbase.auth.accounts import (
    MailRequest,
    open_session,
    pkce_request,
    request_mail,
    send_later,
    sign_up,
)
from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request, unprocessable
from fluxbase.auth.mailer import allowed_redirect
from fluxbase.auth.request import (
    account_key,
    check_password_policy,
    client_ip,
    count_outcome,
    email_field,
    json_response,
    limit,
    read_body,
    require_mail,
    service,
)
from fluxbase.observability.logging import audit

# /verify's `type` -> (one-time token type, the session's amr method).
VERIFY_TYPES = {
    "signup": ("confirmation", "otp"),
    "invite": ("confirmation", "invite"),
    "magiclink": ("magic_link", "otp"),
    "recovery": ("recovery", "recovery"),
    "email_change": ("email_change", "email_change"),
}
# Which one-time token kinds with a 6-digit code (accounts.CODE_KINDS) each /verify `type` accepts.
CODE_TYPES = {
    "email": ("magic_link", "confirmation"),
    "signup": ("confirmation",),
    "magiclink": ("magic_link",),
    "recovery": ("recovery",),
}


def _pending_user(user_id: str, email: str, metadata: dict[str, Any], now: str) -> dict[str, Any]:
    """The answer to a signup that awaits confirmation: the same fields whether the address was new or not."""
    return {
        "id": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "phone": "",
        "confirmation_sent_at": now,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": metadata,
        "identities": [],
        "created_at": now,
        "updated_at": now,
        "is_anonymous": False,
    }


async def signup(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await read_body(request)
    email = email_field(body)
    metadata = body.get("data") or {}
    if not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    ip = client_ip(request)
    if email is None and body.get("password") is None and not body.get("phone"):
        return await _anonymous(request, ctx, metadata, ip)
    if body.get("phone") and email is None:
        raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
    if email is None:
        raise bad_request("To signup, please provide your email")
    if ctx.config.disable_signup:
        raise unprocessable("signup_disabled", "Signups not allowed for this instance")
    password = check_password_policy(ctx.config, body.get("password"))
    pkce = pkce_request(body)
    if not ctx.config.autoconfirm:
        require_mail(ctx)
    limit(ctx.mail_by_ip, "auth_mail_ip", ip or "unknown")
    if ctx.config.autoconfirm:
        return await _signup_signed_in(request, ctx, email, password, metadata, ip)
    async with ctx.database.transaction(service(request)) as tx:
        mail = await request_mail(
            tx, ctx, "signup", email, ip, password=password, metadata=metadata, pkce=pkce
        )
    audit("auth.signup", success=mail.created, user_id=mail.user_id, ip=ip)
    _send_later(request, ctx, "confirmation", mail)
    # The same shape whether the address was new or not; for a taken one a fresh id, so the
    # existing one is not revealed.
    pending_id = mail.user_id if mail.created and mail.user_id else str(uuid.uuid4())
    return json_response(_pending_user(pending_id, email, metadata, mail.requested_at.isoformat()))


async def _signup_signed_in(
    request: web.Request,
    ctx: AuthContext,
    email: str,
    password: str,
    metadata: dict[str, Any],
    ip: str | None,
) -> web.StreamResponse:
    """Signup with auth.autoconfirm: a session at once, and GoTrue's 422 for a taken address."""
    async with ctx.database.transaction(service(request)) as tx:
        user_id, created = await sign_up(tx, ctx, email, password, metadata, confirmed=True, ip=ip)
        if created:
            session = await open_session(tx, ctx, request, user_id, "password")
    audit("auth.signup", success=created, user_id=user_id if created else None, ip=ip, autoconfirm=True)
    if not created:
        raise unprocessable("user_already_exists", "User already registered")
    return json_response(session)


async def _anonymous(
    request: web.Request, ctx: AuthContext, metadata: dict[str, Any], ip: str | None
) -> web.StreamResponse:
    if not ctx.config.anonymous_sign_ins:
        raise unprocessable("anonymous_provider_disabled", "Anonymous sign-ins are disabled")
    limit(ctx.mail_by_ip, "auth_anonymous_ip", ip or "unknown")
    async with ctx.database.transaction(service(request)) as tx:
        user_id = str(
            await tx.fetchval(
                "select auth.sign_up_anonymous($1::jsonb, $2::inet)", orjson.dumps(metadata).decode(), ip
            )
        )
        session = await open_session(tx, ctx, request, user_id, "anonymous")
    audit("auth.signup", user_id=user_id, ip=ip, anonymous=True)
    count_outcome("anonymous", "ok")
    return json_response(session)


async def _mail_request(
    request: web.Request, ctx: AuthContext, body: dict[str, Any]
) -> tuple[str, str | None]:
    email = email_field(body)
    if email is None:
        raise unprocessable("validation_failed", "An email address is required")
    require_mail(ctx)
    ip = client_ip(request)
    limit(ctx.mail_by_ip, "auth_mail_ip", ip or "unknown")
    limit(ctx.mail_by_address, "auth_mail_address", account_key(email))
    return email, ip


def _send_later(request: web.Request, ctx: AuthContext, mail_kind: str, mail: MailRequest) -> None:
    if mail.issued is not None and mail.send_to is not None:
        send_later(
            ctx,
            mail_kind,
            mail.send_to,
            mail.issued.token,
            request.query.get("redirect_to"),
            mail.issued.code,
        )


async def recover(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await read_body(request)
    pkce = pkce_request(body)
    email, ip = await _mail_request(request, ctx, body)
    async with ctx.database.transaction(service(request)) as tx:
        mail = await request_mail(tx, ctx, "recovery", email, ip, pkce=pkce)
    _send_later(request, ctx, "recovery", mail)
    audit("auth.recovery_requested", ip=ip)
    return json_response({})


async def otp(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await read_body(request)
    if body.get("phone") and not body.get("email"):
        raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
    pkce = pkce_request(body)
    email, ip = await _mail_request(request, ctx, body)
    metadata = body.get("data") or {}
    if not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    create = body.get("create_user", True) is not False and not ctx.config.disable_signup
    async with ctx.database.transaction(service(request)) as tx:
        # An unknown address with create_user gets a magic-link-only account: a random password.
        mail = await request_mail(
            tx, ctx, "magic_link", email, ip, metadata=metadata, create=create, pkce=pkce
        )
    _send_later(request, ctx, "magic_link", mail)
    audit("auth.otp_requested", ip=ip)
    # GoTrue answers 422 for an unknown address when create_user is false, which tells a
    # caller who has an account; the same answer for both keeps that to the mailbox owner.
    return json_response({})


async def resend(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await read_body(request)
    kind = body.get("type")
    if kind not in ("signup", "email_change"):
        raise bad_request("type must be signup or email_change")
    email, ip = await _mail_request(request, ctx, body)
    token_kind = "confirmation" if kind == "signup" else "email_change"
    async with ctx.database.transaction(service(request)) as tx:
        mail = await request_mail(tx, ctx, token_kind, email, ip)
    _send_later(request, ctx, token_kind, mail)
    audit("auth.resend_requested", ip=ip, kind=kind)
    return json_response({})


async def _verify(
    request: web.Request, ctx: AuthContext, kind: str, presented: str, *, pkce: bool = False
) -> dict[str, Any]:
    """Verifies a link token and opens a session; with pkce, a token that started a PKCE flow
    gives `{"auth_code": ...}` instead, to be exchanged at /token?grant_type=pkce."""
    if kind == "email":  # a link or code from signInWithOtp: magic link, or a signup confirmation
        kinds = [VERIFY_TYPES["magiclink"], VERIFY_TYPES["signup"]]
    elif kind in VERIFY_TYPES:
        kinds = [VERIFY_TYPES[kind]]
    else:
        raise bad_request("type must be one of signup, invite, magiclink, recovery, email_change, email")
    ip = client_ip(request)
    error = "otp_expired"
    session = None
    async with ctx.database.transaction(service(request)) as tx:
        for token_type, method in kinds:
            row = await tx.fetchrow(
                "select user_id::text, error from auth.verify_one_time_token($1, $2, $3::inet)",
                presented,
                token_type,
                ip,
            )
            assert row is not None
            error = row["error"]
            if error is None:
                auth_code = (
                    await tx.fetchval("select auth.issue_auth_code($1, $2::inet)", presented, ip)
                    if pkce
                    else None
                )
                if auth_code is not None:
                    session = {"auth_code": auth_code}
                else:
                    session = await open_session(tx, ctx, request, row["user_id"], method)
                break
    count_outcome("verify", error or "ok")
    audit("auth.verify", success=session is not None, ip=ip, kind=kind, outcome=error or "ok")
    if session is None:
        if error == "email_exists":
            raise unprocessable("email_exists", "A user with this email address has already been registered")
        raise AuthError(403, "otp_expired", "Email link is invalid or has expired")
    return session


async def _verify_code(
    request: web.Request, ctx: AuthContext, kind: str, email: str, code: str
) -> dict[str, Any]:
    """A 6-digit code from a mail: checked against that address's codes only, with a wrong-try limit."""
    kinds = CODE_TYPES.get(kind)
    if kinds is None:
        raise bad_request("type must be one of email, signup, magiclink, recovery for an email code")
    ip = client_ip(request)
    session = None
    async with ctx.database.transaction(service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, token_type, error from auth.verify_email_code($1, $2, $3, $4::inet, $5)",
            email,
            code,
            list(kinds),
            ip,
            ctx.config.otp_max_attempts,
        )
        assert row is not None
        error = row["error"]
        if error is None:
            method = {"recovery": "recovery"}.get(row["token_type"], "otp")
            session = await open_session(tx, ctx, request, row["user_id"], method)
    # Committed either way: a wrong code counts towards the lock.
    count_outcome("verify_code", error or "ok")
    audit("auth.verify", success=session is not None, ip=ip, kind=kind, by="code", outcome=error or "ok")
    if session is None:
        raise AuthError(403, "otp_expired", "Token has expired or is invalid")
    return session


async def verify_post(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await read_body(request)
    email = email_field(body)
    kind = str(body.get("type", ""))
    code = body.get("token")
    if email is not None and not body.get("token_hash") and isinstance(code, str) and code:
        return json_response(await _verify_code(request, ctx, kind, email, code.strip()))
    # Our links carry the token itself; token_hash is accepted as the same value (see generate_link).
    presented = body.get("token_hash") or body.get("token")
    if not isinstance(presented, str) or not presented:
        raise bad_request("Verify requires a token or a token_hash")
    return json_response(await _verify(request, ctx, str(body.get("type", "")), presented))


async def verify_get(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    """The link in a mail: verifies, then redirects to the app with the session in the fragment."""
    kind = request.query.get("type", "")
    target = allowed_redirect(request.query.get("redirect_to"), ctx.site_url, ctx.config.redirect_urls)
    try:
        session = await _verify(request, ctx, kind, request.query.get("token", ""), pkce=True)
    except AuthError as error:
        fragment = urlencode(
            {"error": "access_denied", "error_code": error.code, "error_description": error.message}
        )
        return web.Response(status=303, headers={"Location": f"{target}#{fragment}"})
    if "auth_code" in session:  # PKCE: the app exchanges the code with its verifier
        separator = "&" if urlsplit(target).query else "?"
        location = f"{target}{separator}{urlencode({'code': session['auth_code']})}"
        return web.Response(status=303, headers={"Location": location})
    fragment = urlencode(
        {
            "access_token": session["access_token"],
            "expires_at": session["expires_at"],
            "expires_in": session["expires_in"],
            "refresh_token": session["refresh_token"],
            "token_type": "bearer",
            "type": kind,
        }
    )
    return web.Response(status=303, headers={"Location": f"{target}#{fragment}"})
