"""What every auth flow reads from a request and answers with: the body, the address,
the password policy, rate limits, the verified caller, the service-role context.

Shared by the flow modules (sign_in, user, mail_flows, admin), which never
import each other.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import uuid
from typing import Any

import orjson
from aiohttp import web

from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import BODY_LIMIT, AuthError, bad_request, unprocessable
from fluxbase.config import AuthConfig
from fluxbase.db.transaction import RequestContext
from fluxbase.observability import metrics
from fluxbase.request_state import CLIENT_IP, USER_ID
from fluxbase.security.authenticate import AuthenticationError, Caller, bearer_token
from fluxbase.security.ratelimit import RateLimiter, refused

log = logging.getLogger("fluxbase.auth")
ADMIN_ROLES = frozenset({"service_role"})
SMTP_MISSING = (
    "Email confirmation is on (auth.autoconfirm is false) but no SMTP server is configured "
    "(auth.smtp.host): the mail cannot be sent"
)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


async def read_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if len(raw) > BODY_LIMIT:  # the web layer refuses it first (caps_body); kept for any other caller
        raise AuthError(413, "request_too_large", "Request body is larger than 64 KiB")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request("Could not parse request body as JSON") from exc
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    if _holds_nul(body):
        raise bad_request(NUL_MESSAGE)
    return body


NUL_MESSAGE = "Text must not contain the NUL character (\\u0000)"


def _holds_nul(value: Any) -> bool:
    """Whether any key or string in a parsed JSON value holds U+0000, which PostgreSQL text and jsonb refuse.

    Iterative: orjson bounds the depth it parses, but a walk must not rely on it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def client_ip(request: web.Request) -> str | None:
    value = request.get(CLIENT_IP)
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def email_field(body: dict[str, Any]) -> str | None:
    value = body.get("email")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "@" not in value or len(value) > 320:
        raise bad_request("Unable to validate email address: invalid format", "email_address_invalid")
    return value.strip().lower()


def account_key(email: str) -> str:
    # Rate-limit keys reach the log; a digest keeps the address out of it.
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def check_password_policy(config: AuthConfig, password: Any) -> str:
    """The password if it meets the policy; else GoTrue's weak_password error with its reasons."""
    if password is not None and not isinstance(password, str):
        raise bad_request("password must be a string")
    text: str = password or ""
    reasons, messages = [], []
    if len(text) < config.password_min_length:
        reasons.append("length")
        messages.append(f"Password should be at least {config.password_min_length} characters.")
    required = config.password_required_characters
    if any(group and not set(group) & set(text) for group in required):
        reasons.append("characters")
        messages.append(f"Password should contain at least one character of each: {', '.join(required)}.")
    if reasons:
        raise AuthError(
            422, "weak_password", " ".join(messages), extra={"weak_password": {"reasons": reasons}}
        )
    if len(text.encode()) > 72:
        raise unprocessable("validation_failed", "Password cannot be longer than 72 bytes")
    return text


def limit(limiter: RateLimiter, scope: str, key: str) -> None:
    decision = limiter.hit(key)
    if not decision.allowed:
        error = refused(decision, scope, key)
        raise AuthError(429, "over_request_rate_limit", "Request rate limit reached", headers=error.headers)


def _bearer_caller(request: web.Request, ctx: AuthContext, *, refuse_revoked: bool = True) -> Caller:
    """The verified caller of a request: GoTrue reads only Authorization: Bearer, never apikey."""
    try:
        token = bearer_token(request.headers)
        if token is None:
            raise AuthError(401, "no_authorization", "This endpoint requires a Bearer token")
        return ctx.authenticator.verify(token, refuse_revoked=refuse_revoked)
    except AuthenticationError as exc:
        raise AuthError(401, "bad_jwt", f"invalid JWT: {exc.reason}") from exc


def user_caller(request: web.Request, ctx: AuthContext, *, session_checked_in_db: bool = False) -> Caller:
    """The signed-in user of a request: a user's access token, not an API key's.

    A handler that reads the session from the database itself (session_checked_in_db) gets
    the caller of an ended session too, so that it can answer GoTrue's 403 session_not_found
    whether or not this process has already learnt that the session ended.
    """
    caller = _bearer_caller(request, ctx, refuse_revoked=not session_checked_in_db)
    if caller.role != "authenticated" or caller.user_id is None:
        raise AuthError(401, "bad_jwt", "invalid JWT: not a user's access token")
    try:
        uuid.UUID(caller.user_id)
    except ValueError as exc:  # the secret's holder can sign any sub; the user tables key on uuid
        raise AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID") from exc
    request[USER_ID] = caller.user_id
    return caller


def admin_caller(request: web.Request, ctx: AuthContext) -> Caller:
    caller = _bearer_caller(request, ctx)
    if caller.role not in ADMIN_ROLES:
        raise AuthError(403, "not_admin", "User not allowed")
    return caller


def service(request: web.Request) -> RequestContext:
    return RequestContext("service_role", {"role": "service_role"}, request.method, request.path)


def require_mail(ctx: AuthContext) -> None:
    if not ctx.mailer.configured:
        log.error("auth mail needed but auth.smtp.host is not set")
        raise AuthError(500, "smtp_not_configured", SMTP_MISSING)


def count_outcome(kind: str, outcome: str) -> None:
    metrics.auth_attempts_total.labels(kind, outcome).inc()
