"""The steps several auth flows share inside their transaction: create or find a user,
open a session, issue a mail's one-time token (and PKCE flow), send the mail later.

Each is one auth.* SQL function call (sql/2x_auth_*.sql); the flow modules
decide when to take them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request
from fluxbase.auth.mailer import allowed_redirect, verify_link
from fluxbase.auth.request import client_ip
from fluxbase.auth.tokens import session_object
from fluxbase.db.transaction import RoleSwitchedTransaction

log = logging.getLogger("fluxbase.auth")
# One-time token kinds that also carry a 6-digit code.
CODE_KINDS = frozenset({"confirmation", "recovery", "magic_link"})


async def user_json(tx: RoleSwitchedTransaction, user_id: str) -> dict[str, Any] | None:
    raw = await tx.fetchval("select auth.user_json($1::uuid)::text", user_id)
    return orjson.loads(raw) if raw else None


async def open_session(
    tx: RoleSwitchedTransaction, ctx: AuthContext, request: web.Request, user_id: str, method: str
) -> dict[str, Any]:
    row = await tx.fetchrow(
        "select session_id::text, refresh_token from auth.open_session($1::uuid, $2, 'aal1', $3::inet, $4)",
        user_id,
        method,
        client_ip(request),
        request.headers.get("User-Agent"),
    )
    assert row is not None
    return await session_for(tx, ctx, row["session_id"], row["refresh_token"])


async def session_for(
    tx: RoleSwitchedTransaction, ctx: AuthContext, session_id: str, refresh_token: str
) -> dict[str, Any]:
    raw = await tx.fetchval("select auth.session_info($1::uuid)::text", session_id)
    if raw is None:
        raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    info = orjson.loads(raw)
    user = await user_json(tx, info["user_id"])
    if user is None:
        raise AuthError(404, "user_not_found", "User not found")
    return session_object(
        user,
        session_id=session_id,
        aal=info["aal"],
        amr=info["amr"],
        refresh_token=refresh_token,
        secret=ctx.secret,
        issuer=ctx.issuer,
        ttl=int(ctx.config.access_token_ttl),
        keys=ctx.signing_keys,
    )


def send_later(
    ctx: AuthContext, kind: str, to: str, token: str, redirect_to: str | None, code: str = ""
) -> None:
    """Sends a mail after the answer: the client cannot time whether there was one."""
    link = verify_link(
        ctx.base_url, token, kind, allowed_redirect(redirect_to, ctx.site_url, ctx.config.redirect_urls)
    )
    mail = ctx.mailer.render(kind, to, link, token, code)

    async def send() -> None:
        try:
            await ctx.mailer.send(mail)
        except Exception as exc:
            log.error("auth mail not sent", extra={"mail_kind": kind, "reason": str(exc)})

    task = asyncio.create_task(send())
    ctx.pending_mail.add(task)
    task.add_done_callback(ctx.pending_mail.discard)


PKCE_METHODS = frozenset({"s256", "plain"})


def pkce_request(body: dict[str, Any]) -> tuple[str, str] | None:
    """The request's (code_challenge, method) when the client uses PKCE; both or neither."""
    challenge, method = body.get("code_challenge"), body.get("code_challenge_method")
    if not challenge and not method:
        return None
    if not isinstance(challenge, str) or not isinstance(method, str) or method.lower() not in PKCE_METHODS:
        raise bad_request("PKCE needs code_challenge and code_challenge_method (s256 or plain)")
    return challenge, method.lower()


async def _start_flow(
    tx: RoleSwitchedTransaction,
    ctx: AuthContext,
    pkce: tuple[str, str] | None,
    user_id: str,
    kind: str,
    ip: str | None,
) -> None:
    """Ties the mail's token to a PKCE flow: its link will end in ?code= instead of a session."""
    if pkce is None:
        return
    await tx.execute(
        "select auth.create_flow_state($1::uuid, $2, $3, $4, $5, $6::interval, $7::inet)",
        user_id,
        kind,
        pkce[0],
        pkce[1],
        "recovery" if kind == "recovery" else "otp",
        dt.timedelta(seconds=ctx.config.otp_ttl),
        ip,
    )


@dataclass(frozen=True)
class Issued:
    """A one-time token for a mail: the link's token and, but for email changes, its 6-digit code."""

    token: str
    code: str = ""


async def issue(
    tx: RoleSwitchedTransaction,
    ctx: AuthContext,
    user_id: str,
    kind: str,
    to: str,
    ip: str | None,
    pkce: tuple[str, str] | None = None,
) -> Issued:
    """Issues the mail's one-time token (and code); with PKCE, ties it to the new flow."""
    issued = await _issue_token(tx, ctx, user_id, kind, to, ip)
    await _start_flow(tx, ctx, pkce, user_id, kind, ip)
    return issued


async def _issue_token(
    tx: RoleSwitchedTransaction, ctx: AuthContext, user_id: str, kind: str, to: str, ip: str | None
) -> Issued:
    lifetime = dt.timedelta(seconds=ctx.config.otp_ttl)
    if kind not in CODE_KINDS:
        token: str = await tx.fetchval(
            "select auth.issue_one_time_token($1::uuid, $2, $3, $4::interval, $5::inet)",
            user_id,
            kind,
            to,
            lifetime,
            ip,
        )
        return Issued(token)
    row = await tx.fetchrow(
        "select token, code from auth.issue_email_otp($1::uuid, $2, $3, $4::interval, $5::inet)",
        user_id,
        kind,
        to,
        lifetime,
        ip,
    )
    assert row is not None
    return Issued(row["token"], row["code"])


async def sign_up(
    tx: RoleSwitchedTransaction,
    ctx: AuthContext,
    email: str,
    password: str | None,
    metadata: Any,
    *,
    confirmed: bool,
    ip: str | None,
) -> tuple[str, bool]:
    """Creates an email user: (user id, created); for an address in use, its id and False.

    Without a password the account gets a random one nobody knows, so it signs in by link only.
    """
    row = await tx.fetchrow(
        "select user_id::text, created from auth.sign_up($1, $2, $3::jsonb, $4, $5, $6::inet)",
        email,
        password if password is not None else secrets.token_urlsafe(32),
        orjson.dumps(metadata).decode(),
        ctx.config.bcrypt_cost,
        confirmed,
        ip,
    )
    assert row is not None
    return row["user_id"], row["created"]


@dataclass(frozen=True)
class MailRequest:
    """What auth.request_mail decided: the mail to send after the answer, if any."""

    user_id: str | None
    send_to: str | None
    issued: Issued | None
    created: bool
    requested_at: dt.datetime


async def request_mail(
    tx: RoleSwitchedTransaction,
    ctx: AuthContext,
    kind: str,
    email: str,
    ip: str | None,
    *,
    password: str | None = None,
    metadata: Any = None,
    create: bool = False,
    pkce: tuple[str, str] | None = None,
) -> MailRequest:
    """One call that costs the same (one bcrypt, one round trip) for known and unknown addresses."""
    row = await tx.fetchrow(
        "select user_id::text, send_to, token, code, created, requested_at"
        " from auth.request_mail($1, $2, $3, $4::jsonb, $5, $6, $7::interval, $8::inet, $9, $10)",
        kind,
        email,
        password,
        orjson.dumps(metadata or {}).decode(),
        create,
        ctx.config.bcrypt_cost,
        dt.timedelta(seconds=ctx.config.otp_ttl),
        ip,
        pkce[0] if pkce else None,
        pkce[1] if pkce else None,
    )
    assert row is not None
    issued = Issued(row["token"], row["code"] or "") if row["token"] is not None else None
    return MailRequest(row["user_id"], row["send_to"], issued, row["created"], row["requested_at"])


async def find_user(tx: RoleSwitchedTransaction, email: str) -> str | None:
    """The live user with this address: decides whether mail goes out, never what the client hears."""
    user_id: str | None = await tx.fetchval("select auth.find_user_by_email($1)::text", email)
    return user_id
