"""What every auth flow reads from a request and answers with: the body, the address,
the password policy, rate limits, the verified caller, the service-role context.

Shared by the flow modules (sign_in, user, mail_flows, admin), which never
import each other.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from typing import Any

import orjson
from aiohttp import web

from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request, unprocessable
from fluxbase.config import AuthConfig
from fluxbase.db.transaction import RequestContext
from fluxbase.observability import metrics
from fluxbase.request_state import CLIENT_IP, USER_ID
from fluxbase.security.authenticate import AuthenticationError, Caller, bearer_token
from fluxbase.security.ratelimit import RateLimiter, refused

log = logging.getLogger("fluxbase.auth")
MAX_BODY = 1024 * 1024  # GoTrue's limit
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
    if not isinstance(password, str) or len(password) < config.password_min_length:
        error = AuthError(
            422, "weak_password", f"Password should be at least {config.password_min_length} characters."
        )
        raise error
    if len(password.encode()) > 72:
        raise unprocessable("validation_failed", "Password cannot be longer than 72 bytes")
    return password


def limit(limiter: RateLimiter, scope: str, key: str) -> None:
    decision = limiter.hit(key)
    if not decision.allowed:
        error = refused(decision, scope, key)
        raise AuthError(429, "over_request_rate_limit", "Request rate limit reached", headers=error.headers)


def _bearer_caller(request: web.Request, ctx: AuthContext) -> Caller:
    """The verified caller of a request: GoTrue reads only Authorization: Bearer, never apikey."""
    try:
        token = bearer_token(request.headers)
        if token is None:
            raise AuthError(401, "no_authorization", "This endpoint requires a Bearer token")
        return ctx.authenticator.verify(token)
    except AuthenticationError as exc:
        raise AuthError(401, "bad_jwt", f"invalid JWT: {exc.reason}") from exc


def user_caller(request: web.Request, ctx: AuthContext) -> Caller:
    """The signed-in user of a request: a user's access token, not an API key's."""
    caller = _bearer_caller(request, ctx)
    if caller.role != "authenticated" or caller.user_id is None:
        raise AuthError(401, "bad_jwt", "invalid JWT: not a user's access token")
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
