"""GoTrue's endpoints at /auth/v1 and /api/v1/auth: parse the request, call the auth.* SQL functions, answer.

Every call runs as service_role in one role-switched transaction; outcomes
the SQL returns as values (a failed sign-in, a replayed refresh token) are
committed before the 4xx goes out, so counters, revocations and audit rows
persist.  Mail for addresses a client names (recover, otp, resend, signup)
is sent after the answer, so neither the answer nor its timing tells
whether the address has an account.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import orjson
from aiohttp import web

from fluxbase import __version__
from fluxbase.auth import sessions as session_watch
from fluxbase.auth.errors import AuthError, bad_request, database_unavailable, error_response, unprocessable
from fluxbase.auth.mailer import Mailer, allowed_redirect, verify_link
from fluxbase.auth.tokens import issuer, session_object
from fluxbase.config import AuthConfig
from fluxbase.db.errors import DatabaseUnavailable
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.errors import HttpError
from fluxbase.observability import metrics
from fluxbase.observability.logging import audit
from fluxbase.request_state import CLIENT_IP, USER_ID
from fluxbase.security.authenticate import AuthenticationError, Authenticator, Caller, bearer_token
from fluxbase.security.ratelimit import RateLimiter, refused
from fluxbase.security.signing_keys import SigningKeys

log = logging.getLogger("fluxbase.auth")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIXES = ("/auth/v1", "/api/v1/auth")
MAX_BODY = 1024 * 1024  # GoTrue's limit
SERVICE = RequestContext("service_role", {"role": "service_role"})
ADMIN_ROLES = frozenset({"service_role"})
# /verify's `type` -> (one-time token type, the session's amr method).
VERIFY_TYPES = {
    "signup": ("confirmation", "otp"),
    "invite": ("confirmation", "invite"),
    "magiclink": ("magic_link", "otp"),
    "recovery": ("recovery", "recovery"),
    "email_change": ("email_change", "email_change"),
}
# One-time token kinds that also carry a 6-digit code, and which of them each /verify `type` accepts.
CODE_KINDS = frozenset({"confirmation", "recovery", "magic_link"})
CODE_TYPES = {
    "email": ("magic_link", "confirmation"),
    "signup": ("confirmation",),
    "magiclink": ("magic_link",),
    "recovery": ("recovery",),
}
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
# What a user may send to PUT /user; role, app_metadata and verification state are not among them.
USER_UPDATE_KEYS = frozenset(
    {"email", "password", "data", "phone", "nonce", "current_password", "channel", "code_challenge",
     "code_challenge_method"}
)  # fmt: skip
SMTP_MISSING = (
    "Email confirmation is on (auth.autoconfirm is false) but no SMTP server is configured "
    "(auth.smtp.host): the mail cannot be sent"
)


@dataclass
class AuthContext:
    """What the auth handlers share: configuration, database, mailer, limiters and mail in flight."""

    config: AuthConfig
    base_url: str
    secret: str
    database: Database
    authenticator: Authenticator
    mailer: Mailer
    sign_in_by_ip: RateLimiter
    sign_in_by_account: RateLimiter
    mail_by_ip: RateLimiter
    mail_by_address: RateLimiter
    signing_keys: SigningKeys | None = None
    pending_mail: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def site_url(self) -> str:
        return self.config.site_url or self.base_url

    @property
    def issuer(self) -> str:
        return issuer(self.base_url)


AUTH = web.AppKey("auth", AuthContext)


def make_context(
    config: AuthConfig, base_url: str, database: Database, authenticator: Authenticator
) -> AuthContext:
    limits = config.rate_limit
    if config.jwt_secret is None:
        raise ValueError("auth needs a JWT secret")
    return AuthContext(
        config=config,
        base_url=base_url,
        secret=config.jwt_secret,
        database=database,
        authenticator=authenticator,
        mailer=Mailer(config.smtp, config.templates_dir),
        sign_in_by_ip=RateLimiter(limits.sign_in_attempts, limits.sign_in_window),
        sign_in_by_account=RateLimiter(limits.sign_in_attempts, limits.sign_in_window),
        mail_by_ip=RateLimiter(limits.emails_per_hour, 3600.0),
        mail_by_address=RateLimiter(limits.emails_per_hour, 3600.0),
        signing_keys=authenticator.signing_keys,
    )


# ---------------------------------------------------------------------------
# Request helpers
# ---------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise AuthError(413, "request_too_large", "Request body is larger than 1 MB")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request("Could not parse request body as JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def _client_ip(request: web.Request) -> str | None:
    value = request.get(CLIENT_IP)
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def _email(body: dict[str, Any]) -> str | None:
    value = body.get("email")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "@" not in value or len(value) > 320:
        raise bad_request("Unable to validate email address: invalid format", "email_address_invalid")
    return value.strip().lower()


def _account_key(email: str) -> str:
    # Rate-limit keys reach the log; a digest keeps the address out of it.
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def _check_password_policy(config: AuthConfig, password: Any) -> str:
    if not isinstance(password, str) or len(password) < config.password_min_length:
        error = AuthError(
            422, "weak_password", f"Password should be at least {config.password_min_length} characters."
        )
        raise error
    if len(password.encode()) > 72:
        raise unprocessable("validation_failed", "Password cannot be longer than 72 bytes")
    return password


def _limit(limiter: RateLimiter, scope: str, key: str) -> None:
    decision = limiter.hit(key)
    if not decision.allowed:
        error = refused(decision, scope, key)
        raise AuthError(429, "over_request_rate_limit", "Request rate limit reached", headers=error.headers)


def _user_caller(request: web.Request, ctx: AuthContext) -> Caller:
    """The signed-in user of a request: GoTrue reads only Authorization: Bearer, never apikey."""
    try:
        token = bearer_token(request.headers)
        if token is None:
            raise AuthError(401, "no_authorization", "This endpoint requires a Bearer token")
        caller = ctx.authenticator.verify(token)
    except AuthenticationError as exc:
        raise AuthError(401, "bad_jwt", f"invalid JWT: {exc.reason}") from exc
    if caller.role != "authenticated" or caller.user_id is None:
        raise AuthError(401, "bad_jwt", "invalid JWT: not a user's access token")
    request[USER_ID] = caller.user_id
    return caller


def _admin_caller(request: web.Request, ctx: AuthContext) -> Caller:
    try:
        token = bearer_token(request.headers)
        if token is None:
            raise AuthError(401, "no_authorization", "This endpoint requires a Bearer token")
        caller = ctx.authenticator.verify(token)
    except AuthenticationError as exc:
        raise AuthError(401, "bad_jwt", f"invalid JWT: {exc.reason}") from exc
    if caller.role not in ADMIN_ROLES:
        raise AuthError(403, "not_admin", "User not allowed")
    return caller


def _service(request: web.Request) -> RequestContext:
    return RequestContext("service_role", {"role": "service_role"}, request.method, request.path)


async def _user_json(tx: RoleSwitchedTransaction, user_id: str) -> dict[str, Any] | None:
    raw = await tx.fetchval("select auth.user_json($1::uuid)::text", user_id)
    return orjson.loads(raw) if raw else None


async def _open_session(
    tx: RoleSwitchedTransaction, ctx: AuthContext, request: web.Request, user_id: str, method: str
) -> dict[str, Any]:
    row = await tx.fetchrow(
        "select session_id::text, refresh_token from auth.open_session($1::uuid, $2, 'aal1', $3::inet, $4)",
        user_id,
        method,
        _client_ip(request),
        request.headers.get("User-Agent"),
    )
    assert row is not None
    return await _session_for(tx, ctx, row["session_id"], row["refresh_token"])


async def _session_for(
    tx: RoleSwitchedTransaction, ctx: AuthContext, session_id: str, refresh_token: str
) -> dict[str, Any]:
    raw = await tx.fetchval("select auth.session_info($1::uuid)::text", session_id)
    if raw is None:
        raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    info = orjson.loads(raw)
    user = await _user_json(tx, info["user_id"])
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


def _send_later(
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


def _require_mail(ctx: AuthContext) -> None:
    if not ctx.mailer.configured:
        log.error("auth mail needed but auth.smtp.host is not set")
        raise AuthError(500, "smtp_not_configured", SMTP_MISSING)


def _outcome(kind: str, outcome: str) -> None:
    metrics.auth_attempts_total.labels(kind, outcome).inc()


def endpoint(
    handler: Callable[[web.Request, AuthContext], Awaitable[web.StreamResponse]], *, oauth: bool = False
) -> Handler:
    """Renders AuthError (and the shared HttpError, database errors) in GoTrue's shape."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request, request.app[AUTH])
        except AuthError as error:
            return error_response(request, error, oauth=oauth)
        except DatabaseUnavailable as error:
            return error_response(request, database_unavailable(error), oauth=oauth)
        except HttpError as error:  # a rate limit from security/
            code = "over_request_rate_limit" if error.status == 429 else error.code
            return error_response(
                request, AuthError(error.status, code, error.message, headers=error.headers)
            )
        except asyncpg.PostgresError as error:
            if error.sqlstate == "22023":  # the SQL refused a value: the client's mistake
                return error_response(request, unprocessable("validation_failed", str(error)), oauth=oauth)
            if error.sqlstate == "28000":
                reason = str(error)
                status = 404 if reason == "user_not_found" else 403
                return error_response(
                    request, AuthError(status, reason, reason.replace("_", " ")), oauth=oauth
                )
            raise

    return handle


# ---------------------------------------------------------------------------
# Sign up, sign in, tokens, sign out
# ---------------------------------------------------------------------------


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
    body = await _body(request)
    email = _email(body)
    metadata = body.get("data") or {}
    if not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    ip = _client_ip(request)
    if email is None and body.get("password") is None and not body.get("phone"):
        return await _anonymous(request, ctx, metadata, ip)
    if body.get("phone") and email is None:
        raise unprocessable("phone_provider_disabled", "Phone signups are disabled")
    if email is None:
        raise bad_request("To signup, please provide your email")
    if ctx.config.disable_signup:
        raise unprocessable("signup_disabled", "Signups not allowed for this instance")
    password = _check_password_policy(ctx.config, body.get("password"))
    pkce = _pkce(body)
    if not ctx.config.autoconfirm:
        _require_mail(ctx)
    _limit(ctx.mail_by_ip, "auth_mail_ip", ip or "unknown")
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, created from auth.sign_up($1, $2, $3::jsonb, $4, $5, $6::inet)",
            email,
            password,
            orjson.dumps(metadata).decode(),
            ctx.config.bcrypt_cost,
            ctx.config.autoconfirm,
            ip,
        )
        assert row is not None
        user_id, created = row["user_id"], row["created"]
        issued: Issued | None = None
        user: dict[str, Any] | None = None
        if created and ctx.config.autoconfirm:
            session = await _open_session(tx, ctx, request, user_id, "password")
            audit("auth.signup", user_id=user_id, ip=ip, autoconfirm=True)
            return _json(session)
        if created:
            issued = await _issue(tx, ctx, user_id, "confirmation", email, ip, pkce)
            user = await _user_json(tx, user_id)
    audit("auth.signup", success=created, user_id=user_id if created else None, ip=ip)
    if not created:
        if ctx.config.autoconfirm:
            raise unprocessable("user_already_exists", "User already registered")
        # Same shape as a real pending signup; a fresh id, so the existing one is not revealed.
        now = dt.datetime.now(dt.UTC).isoformat()
        return _json(_pending_user(str(uuid.uuid4()), email, metadata, now))
    assert user is not None and issued is not None
    _send_later(ctx, "confirmation", email, issued.token, request.query.get("redirect_to"), issued.code)
    return _json(_pending_user(user_id, email, metadata, user["confirmation_sent_at"]))


async def _anonymous(
    request: web.Request, ctx: AuthContext, metadata: dict[str, Any], ip: str | None
) -> web.StreamResponse:
    if not ctx.config.anonymous_sign_ins:
        raise unprocessable("anonymous_provider_disabled", "Anonymous sign-ins are disabled")
    _limit(ctx.mail_by_ip, "auth_anonymous_ip", ip or "unknown")
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = str(
            await tx.fetchval(
                "select auth.sign_up_anonymous($1::jsonb, $2::inet)", orjson.dumps(metadata).decode(), ip
            )
        )
        session = await _open_session(tx, ctx, request, user_id, "anonymous")
    audit("auth.signup", user_id=user_id, ip=ip, anonymous=True)
    _outcome("anonymous", "ok")
    return _json(session)


async def token(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    grant = request.query.get("grant_type")
    body = await _body(request)
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
    ip = _client_ip(request)
    session = None
    async with ctx.database.transaction(_service(request)) as tx:
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
            session = await _open_session(tx, ctx, request, row["user_id"], row["authentication_method"])
    # Committed either way: the failure is audited, an expired flow used up.
    _outcome("pkce", error or "ok")
    audit("auth.pkce_exchange", success=error is None, user_id=row["user_id"], ip=ip, outcome=error or "ok")
    if session is None:
        status, message = PKCE_ERRORS.get(error, (400, error))
        raise AuthError(status, error, message)
    return _json(session)


async def _password_grant(request: web.Request, ctx: AuthContext, body: dict[str, Any]) -> web.StreamResponse:
    email = _email(body)
    password = body.get("password")
    if email is None or not isinstance(password, str):
        if body.get("phone"):
            raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
        raise bad_request("missing email or password")
    ip = _client_ip(request)
    try:
        _limit(ctx.sign_in_by_ip, "auth_sign_in_ip", ip or "unknown")
        _limit(ctx.sign_in_by_account, "auth_sign_in_account", _account_key(email))
    except AuthError:
        _outcome("password", "rate_limited")
        raise
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, outcome from auth.check_password($1, $2, $3::inet)", email, password, ip
        )
        assert row is not None
        outcome = row["outcome"]
        session = (
            await _open_session(tx, ctx, request, row["user_id"], "password") if outcome == "ok" else None
        )
    # Committed either way: a failure counts towards the lockout and is audited in SQL.
    _outcome("password", outcome)
    audit("auth.login", success=outcome == "ok", user_id=row["user_id"], ip=ip, outcome=outcome)
    if session is None:
        status, message = SIGN_IN_ERRORS.get(outcome, (400, "Invalid login credentials"))
        raise AuthError(status, outcome, message)
    return _json(session)


async def _refresh_grant(request: web.Request, ctx: AuthContext, body: dict[str, Any]) -> web.StreamResponse:
    presented = body.get("refresh_token")
    if not isinstance(presented, str) or not presented:
        raise bad_request("refresh_token required", "refresh_token_not_found")
    ip = _client_ip(request)
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select refresh_token, session_id::text, user_id::text, error"
            " from auth.rotate_refresh_token($1, $2, $3::inet)",
            presented,
            int(ctx.config.refresh_reuse_window),
            ip,
        )
        assert row is not None
        error = row["error"]
        session = None if error else await _session_for(tx, ctx, row["session_id"], row["refresh_token"])
    # Committed before answering: a detected reuse has deleted the session.
    _outcome("refresh_token", error or "ok")
    audit("auth.token_refreshed", success=error is None, user_id=row["user_id"], ip=ip, outcome=error or "ok")
    if session is None:
        raise AuthError(400 if error != "user_banned" else 403, error, REFRESH_ERRORS.get(error, error))
    return _json(session)


async def logout(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _user_caller(request, ctx)
    scope = request.query.get("scope", "global")
    if scope not in ("global", "local", "others"):
        raise bad_request("scope must be global, local or others")
    session_id = caller.session_id
    if session_id is None:
        raise AuthError(403, "session_not_found", "The token carries no session")
    async with ctx.database.transaction(_service(request)) as tx:
        ended = await tx.fetchval(
            "select auth.sign_out($1::uuid, $2, $3::inet)", session_id, scope, _client_ip(request)
        )
    if scope != "others":
        # This process refuses the token at once; others learn it at their next session check.
        ctx.authenticator.revocations.revoke(session_id)
    audit("auth.logout", user_id=caller.user_id, scope=scope, sessions_ended=ended)
    return web.Response(status=204)


# ---------------------------------------------------------------------------
# The signed-in user
# ---------------------------------------------------------------------------


async def _live_user(tx: RoleSwitchedTransaction, caller: Caller) -> dict[str, Any]:
    if caller.session_id is not None:
        alive = await tx.fetchval("select auth.session_info($1::uuid) is not null", caller.session_id)
        if not alive:
            raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    user = await _user_json(tx, caller.user_id or "")
    if user is None or user.get("deleted_at"):
        raise AuthError(404, "user_not_found", "User from sub claim in JWT does not exist")
    return user


async def get_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _user_caller(request, ctx)
    async with ctx.database.transaction(_service(request), read_only=True) as tx:
        user = await _live_user(tx, caller)
    return _json(user)


async def update_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _user_caller(request, ctx)
    body = await _body(request)
    refused_keys = sorted(set(body) - USER_UPDATE_KEYS)
    if refused_keys:
        raise AuthError(403, "not_admin", f"Only an administrator can change {', '.join(refused_keys)}")
    if body.get("phone"):
        raise unprocessable("phone_provider_disabled", "Phone changes are disabled")
    password = (
        _check_password_policy(ctx.config, body["password"]) if body.get("password") is not None else None
    )
    new_email = _email(body)
    metadata = body.get("data")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    if new_email is not None:
        _require_mail(ctx)
    ip = _client_ip(request)
    async with ctx.database.transaction(_service(request)) as tx:
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
            user = await _user_json(tx, caller.user_id or "")
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
        _send_later(
            ctx, "email_change", new_email, row["email_change_token"], request.query.get("redirect_to")
        )
    return _json(user)


# ---------------------------------------------------------------------------
# Mail: recover, magic link, resend, and the links' target /verify
# ---------------------------------------------------------------------------


async def _mail_request(
    request: web.Request, ctx: AuthContext, body: dict[str, Any]
) -> tuple[str, str | None]:
    email = _email(body)
    if email is None:
        raise unprocessable("validation_failed", "An email address is required")
    _require_mail(ctx)
    ip = _client_ip(request)
    _limit(ctx.mail_by_ip, "auth_mail_ip", ip or "unknown")
    _limit(ctx.mail_by_address, "auth_mail_address", _account_key(email))
    return email, ip


PKCE_METHODS = frozenset({"s256", "plain"})
PKCE_AUTH_CODE_TTL = dt.timedelta(minutes=5)  # GoTrue's flow-state expiry once the code is issued
PKCE_ERRORS = {
    "flow_state_not_found": (404, "invalid flow state, no valid flow state found"),
    "flow_state_expired": (422, "Flow state has expired. Please start the flow again."),
    "bad_code_verifier": (403, "code challenge does not match previously saved code verifier"),
}


def _pkce(body: dict[str, Any]) -> tuple[str, str] | None:
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


async def _issue(
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


async def recover(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await _body(request)
    pkce = _pkce(body)
    email, ip = await _mail_request(request, ctx, body)
    issued = None
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = await tx.fetchval("select auth.find_user_by_email($1)::text", email)
        if user_id is not None:
            issued = await _issue(tx, ctx, user_id, "recovery", email, ip, pkce)
    if issued is not None:
        _send_later(ctx, "recovery", email, issued.token, request.query.get("redirect_to"), issued.code)
    audit("auth.recovery_requested", ip=ip)
    return _json({})


async def otp(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await _body(request)
    if body.get("phone") and not body.get("email"):
        raise unprocessable("phone_provider_disabled", "Phone logins are disabled")
    pkce = _pkce(body)
    email, ip = await _mail_request(request, ctx, body)
    metadata = body.get("data") or {}
    if not isinstance(metadata, dict):
        raise bad_request("data must be a JSON object")
    create = body.get("create_user", True) is not False and not ctx.config.disable_signup
    issued = None
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = await tx.fetchval("select auth.find_user_by_email($1)::text", email)
        if user_id is None and create:
            # A magic-link-only account: its password is random and never told to anyone.
            row = await tx.fetchrow(
                "select user_id::text from auth.sign_up($1, $2, $3::jsonb, $4, false, $5::inet)",
                email,
                secrets.token_urlsafe(32),
                orjson.dumps(metadata).decode(),
                ctx.config.bcrypt_cost,
                ip,
            )
            user_id = row["user_id"] if row else None
        if user_id is not None:
            issued = await _issue(tx, ctx, user_id, "magic_link", email, ip, pkce)
    if issued is not None:
        _send_later(ctx, "magic_link", email, issued.token, request.query.get("redirect_to"), issued.code)
    audit("auth.otp_requested", ip=ip)
    # GoTrue answers 422 for an unknown address when create_user is false, which tells a
    # caller who has an account; the same answer for both keeps that to the mailbox owner.
    return _json({})


async def resend(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await _body(request)
    kind = body.get("type")
    if kind not in ("signup", "email_change"):
        raise bad_request("type must be signup or email_change")
    email, ip = await _mail_request(request, ctx, body)
    to = issued = None
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = await tx.fetchval("select auth.find_user_by_email($1)::text", email)
        user = await _user_json(tx, user_id) if user_id else None
        if user is not None and kind == "signup" and not user.get("email_confirmed_at"):
            to, issued = email, await _issue(tx, ctx, user["id"], "confirmation", email, ip)
        elif user is not None and kind == "email_change" and user.get("new_email"):
            to = user["new_email"]
            issued = await _issue(tx, ctx, user["id"], "email_change", to, ip)
    if issued is not None and to is not None:
        _send_later(
            ctx,
            "confirmation" if kind == "signup" else "email_change",
            to,
            issued.token,
            request.query.get("redirect_to"),
            issued.code,
        )
    audit("auth.resend_requested", ip=ip, kind=kind)
    return _json({})


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
    ip = _client_ip(request)
    error = "otp_expired"
    session = None
    async with ctx.database.transaction(_service(request)) as tx:
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
                    session = await _open_session(tx, ctx, request, row["user_id"], method)
                break
    _outcome("verify", error or "ok")
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
    ip = _client_ip(request)
    session = None
    async with ctx.database.transaction(_service(request)) as tx:
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
            session = await _open_session(tx, ctx, request, row["user_id"], method)
    # Committed either way: a wrong code counts towards the lock.
    _outcome("verify_code", error or "ok")
    audit("auth.verify", success=session is not None, ip=ip, kind=kind, by="code", outcome=error or "ok")
    if session is None:
        raise AuthError(403, "otp_expired", "Token has expired or is invalid")
    return session


async def verify_post(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    body = await _body(request)
    email = _email(body)
    kind = str(body.get("type", ""))
    code = body.get("token")
    if email is not None and not body.get("token_hash") and isinstance(code, str) and code:
        return _json(await _verify_code(request, ctx, kind, email, code.strip()))
    # Our links carry the token itself; token_hash is accepted as the same value (see generate_link).
    presented = body.get("token_hash") or body.get("token")
    if not isinstance(presented, str) or not presented:
        raise bad_request("Verify requires a token or a token_hash")
    return _json(await _verify(request, ctx, str(body.get("type", "")), presented))


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


# ---------------------------------------------------------------------------
# Open endpoints
# ---------------------------------------------------------------------------


async def settings(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    return _json(
        {
            "external": {"email": True, "phone": False, "anonymous_users": ctx.config.anonymous_sign_ins},
            "disable_signup": ctx.config.disable_signup,
            "mailer_autoconfirm": ctx.config.autoconfirm,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
            "passkeys_enabled": False,
        }
    )


async def health(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    return _json(
        {"version": __version__, "name": "GoTrue", "description": "Fluxbase auth (GoTrue-compatible)"}
    )


async def jwks(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    # HS256 keys are secret: GoTrue publishes none of them, so the set is empty then.
    keys = ctx.signing_keys
    return _json({"keys": [keys.jwk()] if keys is not None else []})


# ---------------------------------------------------------------------------
# Admin (service_role)
# ---------------------------------------------------------------------------


def _user_id_param(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["user_id"]))
    except ValueError as exc:
        raise AuthError(404, "user_not_found", "User not found") from exc


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request(f"{name} must be a positive integer")
    return int(raw)


async def admin_list_users(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    _admin_caller(request, ctx)
    page, per_page = _int_param(request, "page", 1), min(_int_param(request, "per_page", 50), 1000)
    async with ctx.database.transaction(_service(request), read_only=True) as tx:
        row = await tx.fetchrow("select users::text, total from auth.list_users($1, $2)", page, per_page)
    assert row is not None
    total = int(row["total"])
    last = max(1, -(-total // per_page))
    base = f"{request.path}?per_page={per_page}&page="
    links = [f'<{base}{page + 1}>; rel="next"'] if page < last else []
    links.append(f'<{base}{last}>; rel="last"')
    return _json(
        {"users": orjson.loads(row["users"]), "aud": "authenticated"},
        headers={"X-Total-Count": str(total), "Link": ", ".join(links)},
    )


async def admin_create_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _admin_caller(request, ctx)
    body = await _body(request)
    email = _email(body)
    if email is None:
        raise bad_request("Creating a user needs an email address (phone users are not supported)")
    password = body.get("password")
    if password is not None:
        _check_password_policy(ctx.config, password)
    metadata = body.get("user_metadata") or body.get("data") or {}
    rest = {
        k: v
        for k, v in body.items()
        if k not in ("email", "password", "user_metadata", "data", "email_confirm")
    }
    ip = _client_ip(request)
    async with ctx.database.transaction(_service(request)) as tx:
        row = await tx.fetchrow(
            "select user_id::text, created from auth.sign_up($1, $2, $3::jsonb, $4, $5, $6::inet)",
            email,
            # No password given: a random one nobody knows, so the account signs in by link only.
            password if isinstance(password, str) else secrets.token_urlsafe(32),
            orjson.dumps(metadata).decode(),
            ctx.config.bcrypt_cost,
            bool(body.get("email_confirm")),
            ip,
        )
        assert row is not None
        if not row["created"]:
            raise unprocessable("email_exists", "A user with this email address has already been registered")
        if rest:
            error = await tx.fetchval(
                "select auth.admin_update_user($1::uuid, $2::jsonb, null, $3::inet, $4)",
                row["user_id"],
                orjson.dumps(rest).decode(),
                ip,
                ctx.config.bcrypt_cost,
            )
            if error:
                raise unprocessable(error, error.replace("_", " "))
        user = await _user_json(tx, row["user_id"])
    audit("auth.admin_user_created", user_id=row["user_id"], actor_role=caller.role, ip=ip)
    return _json(user)


async def admin_get_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    _admin_caller(request, ctx)
    async with ctx.database.transaction(_service(request), read_only=True) as tx:
        user = await _user_json(tx, _user_id_param(request))
    if user is None:
        raise AuthError(404, "user_not_found", "User not found")
    return _json(user)


async def admin_update_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _admin_caller(request, ctx)
    user_id = _user_id_param(request)
    body = await _body(request)
    if "data" in body and "user_metadata" not in body:
        body["user_metadata"] = body.pop("data")
    if isinstance(body.get("password"), str):
        _check_password_policy(ctx.config, body["password"])
    ip = _client_ip(request)
    async with ctx.database.transaction(_service(request)) as tx:
        error = await tx.fetchval(
            "select auth.admin_update_user($1::uuid, $2::jsonb, null, $3::inet, $4)",
            user_id,
            orjson.dumps(body).decode(),
            ip,
            ctx.config.bcrypt_cost,
        )
        user = None if error else await _user_json(tx, user_id)
    if error:
        raise AuthError(404 if error == "user_not_found" else 422, error, error.replace("_", " "))
    audit("auth.admin_user_modified", user_id=user_id, actor_role=caller.role, ip=ip, fields=sorted(body))
    return _json(user)


async def admin_delete_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = _admin_caller(request, ctx)
    user_id = _user_id_param(request)
    body = await _body(request)
    ip = _client_ip(request)
    async with ctx.database.transaction(_service(request)) as tx:
        deleted = await tx.fetchval(
            "select auth.delete_user($1::uuid, $2, null, $3::inet)",
            user_id,
            bool(body.get("should_soft_delete")),
            ip,
        )
    if not deleted:
        raise AuthError(404, "user_not_found", "User not found")
    audit("auth.admin_user_deleted", user_id=user_id, actor_role=caller.role, ip=ip)
    return _json({})


GENERATE_LINK_TYPES = {
    "signup",
    "invite",
    "magiclink",
    "recovery",
    "email_change_current",
    "email_change_new",
}


async def admin_generate_link(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    """A verification link without sending it (GoTrue's generate_link).

    `hashed_token` is the token itself: our one-time tokens are verified by
    hashing what is presented, so the stored digest would verify nothing.
    """
    _admin_caller(request, ctx)
    body = await _body(request)
    kind = body.get("type")
    if kind not in GENERATE_LINK_TYPES:
        raise bad_request(f"type must be one of {', '.join(sorted(GENERATE_LINK_TYPES))}")
    email = _email(body)
    if email is None:
        raise bad_request("An email address is required")
    ip = _client_ip(request)
    metadata = body.get("data") or {}
    async with ctx.database.transaction(_service(request)) as tx:
        user_id = await tx.fetchval("select auth.find_user_by_email($1)::text", email)
        if user_id is None and kind in ("signup", "invite"):
            password = body.get("password") if kind == "signup" else None
            if password is not None:
                _check_password_policy(ctx.config, password)
            row = await tx.fetchrow(
                "select user_id::text from auth.sign_up($1, $2, $3::jsonb, $4, false, $5::inet)",
                email,
                password or secrets.token_urlsafe(32),
                orjson.dumps(metadata).decode(),
                ctx.config.bcrypt_cost,
                ip,
            )
            user_id = row["user_id"] if row else None
        elif kind in ("signup", "invite"):
            raise unprocessable("email_exists", "A user with this email address has already been registered")
        if user_id is None:
            raise AuthError(404, "user_not_found", "User with this email not found")
        if kind in ("email_change_current", "email_change_new"):
            new_email = _email({"email": body.get("new_email")})
            if new_email is None:
                raise bad_request("new_email is required")
            row = await tx.fetchrow(
                "select error, email_change_token from auth.update_user($1::uuid, null, null, $2, $3, null,"
                " $4::interval, $5::inet)",
                user_id,
                new_email,
                ctx.config.bcrypt_cost,
                dt.timedelta(seconds=ctx.config.otp_ttl),
                ip,
            )
            if row is None or row["error"]:
                error = row["error"] if row else "user_not_found"
                raise unprocessable(error, error.replace("_", " "))
            mail_kind, issued = "email_change", Issued(row["email_change_token"])
        else:
            mail_kind = {"signup": "confirmation", "invite": "confirmation", "magiclink": "magic_link"}.get(
                kind, "recovery"
            )
            issued = await _issue(tx, ctx, user_id, mail_kind, email, ip)
        user = await _user_json(tx, user_id)
    redirect_to = allowed_redirect(
        body.get("redirect_to") or request.query.get("redirect_to"), ctx.site_url, ctx.config.redirect_urls
    )
    verification_type = {"confirmation": "signup", "magic_link": "magiclink"}.get(mail_kind, mail_kind)
    if kind == "invite":
        verification_type = "invite"
    link = verify_link(ctx.base_url, issued.token, mail_kind, redirect_to)
    if kind == "invite":
        link = link.replace("type=signup", "type=invite")
    properties = {
        "action_link": link,
        "email_otp": issued.code,
        "hashed_token": issued.token,
        "redirect_to": redirect_to,
        "verification_type": verification_type,
    }
    return _json({**(user or {}), **properties, "properties": properties})


# ---------------------------------------------------------------------------
# Routes and lifecycle
# ---------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/signup", endpoint(signup)),
        ("POST", "/token", endpoint(token, oauth=True)),
        ("POST", "/logout", endpoint(logout)),
        ("GET", "/user", endpoint(get_user)),
        ("PUT", "/user", endpoint(update_user)),
        ("POST", "/recover", endpoint(recover)),
        ("POST", "/otp", endpoint(otp)),
        ("POST", "/magiclink", endpoint(otp)),
        ("POST", "/resend", endpoint(resend)),
        ("GET", "/verify", endpoint(verify_get)),
        ("POST", "/verify", endpoint(verify_post)),
        ("GET", "/settings", endpoint(settings)),
        ("GET", "/health", endpoint(health)),
        ("GET", "/.well-known/jwks.json", endpoint(jwks)),
        ("GET", "/admin/users", endpoint(admin_list_users)),
        ("POST", "/admin/users", endpoint(admin_create_user)),
        ("GET", "/admin/users/{user_id}", endpoint(admin_get_user)),
        ("PUT", "/admin/users/{user_id}", endpoint(admin_update_user)),
        ("DELETE", "/admin/users/{user_id}", endpoint(admin_delete_user)),
        ("POST", "/admin/generate_link", endpoint(admin_generate_link)),
    ]
    for prefix in PREFIXES:
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, handler)


async def start(app: web.Application, ctx: AuthContext) -> asyncio.Task[None]:
    """Installs the context and starts the revoked-session check."""
    app[AUTH] = ctx
    return asyncio.create_task(
        session_watch.watch_sessions(
            ctx.database, ctx.authenticator.revocations, ctx.config.session_check_interval
        )
    )


async def stop(ctx: AuthContext, watcher: asyncio.Task[None]) -> None:
    await session_watch.stop(watcher)
    if ctx.pending_mail:
        # Mail already promised to a client is given a moment to leave.
        await asyncio.wait(set(ctx.pending_mail), timeout=10)
