"""Who calls the dashboard and admin API: dashboard tokens, session cookies, CSRF, the live-session check.

Dashboard tokens are JWTs with role `dashboard_admin` and audience
`fluxbase-dashboard`, signed with a key derived from the JWT secret, so the
data API, storage and realtime (which verify with the secret itself) can
never accept one, and no app token can pass for one.  A 2FA challenge is a
token of its own audience, good only for POST /dashboard/auth/2fa/verify.

Every admin request checks in the database that its session still exists
(dashboard.session_user): a revoked session stops at once, on every replica.
Browsers hold the token in an HttpOnly, SameSite=Strict cookie; a request
authenticated by that cookie must also echo the CSRF cookie in X-CSRF-Token
when it changes anything.  Shared by dashboard/ and admin_api/.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import jwt
import orjson
from aiohttp import web

from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext
from fluxbase.security import csrf
from fluxbase.security.authenticate import AUTHENTICATOR
from fluxbase.security.key_registry import ApiKeyGrant, UnknownApiKey, is_dashboard_key
from fluxbase.security.scopes import ADMIN

ROLE: Final = "dashboard_admin"
AUDIENCE: Final = "fluxbase-dashboard"
CHALLENGE_AUDIENCE: Final = "fluxbase-dashboard-2fa"
ALGORITHM: Final = "HS256"
SESSION_COOKIE: Final = "fluxbase_dashboard"
REFRESH_COOKIE: Final = "fluxbase_dashboard_refresh"
REFRESH_COOKIE_PATH: Final = "/dashboard/auth"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SERVICE: Final = RequestContext("service_role", {"role": "service_role"})
CLOCK_SKEW_SECONDS: Final = 30


class DashboardAuthError(Exception):
    """Refused: status 401 (no admin credential) or 403 (a credential, not enough)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def signing_key(jwt_secret: str) -> bytes:
    """The dashboard's own HMAC key: derived, so tokens signed with it never verify with the secret."""
    return hmac.new(jwt_secret.encode(), b"fluxbase dashboard tokens", hashlib.sha256).digest()


def totp_encryption_key(jwt_secret: str) -> bytes:
    """The AES-256 key that encrypts TOTP secrets; the database never sees it."""
    return hmac.new(jwt_secret.encode(), b"fluxbase dashboard totp secrets", hashlib.sha256).digest()


def issue_access_token(
    jwt_secret: str, *, user_id: str, session_id: str, email: str, aal: str, ttl: int, issuer: str
) -> tuple[str, int]:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": AUDIENCE,
        "role": ROLE,
        "email": email,
        "session_id": session_id,
        "aal": aal,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, signing_key(jwt_secret), algorithm=ALGORITHM), now + ttl


def issue_challenge_token(jwt_secret: str, *, challenge_id: str, user_id: str, ttl: int, issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": CHALLENGE_AUDIENCE,
        "role": ROLE,
        "challenge_id": challenge_id,
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, signing_key(jwt_secret), algorithm=ALGORITHM)


def _decode(jwt_secret: str, token: str, audience: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        signing_key(jwt_secret),
        algorithms=[ALGORITHM],
        audience=audience,
        leeway=CLOCK_SKEW_SECONDS,
        options={"require": ["exp", "sub", "aud"]},
    )
    if claims.get("role") != ROLE:
        raise jwt.InvalidTokenError("not a dashboard token")
    return claims


def verify_challenge_token(jwt_secret: str, token: str) -> dict[str, Any]:
    """The claims of a 2FA challenge token; raises DashboardAuthError."""
    try:
        claims = _decode(jwt_secret, token, CHALLENGE_AUDIENCE)
        uuid.UUID(str(claims.get("challenge_id")))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise DashboardAuthError(401, "invalid_challenge", "The 2FA challenge is invalid or expired") from exc
    return claims


@dataclass(frozen=True)
class DashboardAdmin:
    """An authenticated administrator (or an admin-scoped API key acting for its creator)."""

    user_id: str | None
    session_id: str | None
    email: str
    role: str
    aal: str
    user: dict[str, Any]
    via_cookie: bool = False
    api_key: ApiKeyGrant | None = None

    @property
    def read_only(self) -> bool:
        return self.role == "dashboard_viewer"


def _presented(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise DashboardAuthError(401, "invalid_token", "Authorization header must be 'Bearer <token>'")
        return token.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


def _classify(jwt_secret: str, token: str) -> dict[str, Any]:
    try:
        return _decode(jwt_secret, token, AUDIENCE)
    except jwt.InvalidAudienceError:
        pass
    except jwt.ExpiredSignatureError as exc:
        raise DashboardAuthError(401, "token_expired", "The dashboard session token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise DashboardAuthError(401, "invalid_token", "Not a dashboard session token") from exc
    try:
        verify_challenge_token(jwt_secret, token)
    except DashboardAuthError as exc:
        raise DashboardAuthError(401, "invalid_token", "Not a dashboard session token") from exc
    raise DashboardAuthError(
        403, "mfa_required", "Two-factor verification is not complete: POST /dashboard/auth/2fa/verify"
    )


def check_csrf(request: web.Request) -> None:
    """A cookie-authenticated request that changes state must echo the CSRF cookie in the header."""
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(csrf.COOKIE, "")
    sent = request.headers.get(csrf.HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise DashboardAuthError(
            403, "csrf_failed", f"Missing or wrong CSRF token: send the {csrf.COOKIE} cookie in {csrf.HEADER}"
        )


async def authenticate_admin(
    request: web.Request, database: Database, jwt_secret: str, *, allow_api_key: bool = False
) -> DashboardAdmin:
    """The administrator behind a request, or DashboardAuthError (deny by default).

    An app user's JWT, the anon/service_role keys and any other token are
    refused (401); an API key only where allow_api_key and with the admin scope.
    """
    token, via_cookie = _presented(request)
    apikey = request.headers.get("apikey")
    if token is None and is_dashboard_key(apikey):
        token = apikey
    if token is None:
        raise DashboardAuthError(401, "no_session", "This endpoint requires a dashboard session")
    if is_dashboard_key(token):
        return await _key_admin(request, database, token, allow_api_key)
    claims = _classify(jwt_secret, token)
    session_id = claims.get("session_id")
    if not isinstance(session_id, str):
        raise DashboardAuthError(401, "invalid_token", "The token names no session")
    async with database.transaction(SERVICE, read_only=True) as tx:
        raw = await tx.fetchval("select dashboard.session_user($1::uuid)::text", session_id)
    if raw is None:
        raise DashboardAuthError(401, "session_not_found", "The dashboard session has ended")
    user = orjson.loads(raw)
    if user["id"] != claims["sub"]:
        raise DashboardAuthError(401, "session_not_found", "The dashboard session has ended")
    if via_cookie:
        check_csrf(request)
    aal = user.pop("aal")
    return DashboardAdmin(user["id"], session_id, user["email"], user["role"], aal, user, via_cookie)


async def _key_admin(request: web.Request, database: Database, key: str, allowed: bool) -> DashboardAdmin:
    try:
        grant = request.app[AUTHENTICATOR].api_keys.lookup(key)
    except UnknownApiKey as exc:
        raise DashboardAuthError(401, "invalid_api_key", "API key is not valid") from exc
    if not allowed or ADMIN not in grant.scopes:
        raise DashboardAuthError(403, "api_key_not_allowed", "API keys cannot be used here")
    user: dict[str, Any] | None = None
    if grant.created_by is not None:
        async with database.transaction(SERVICE, read_only=True) as tx:
            raw = await tx.fetchval("select dashboard.user_json($1::uuid)::text", grant.created_by)
        user = orjson.loads(raw) if raw else None
    if user is None:
        # The administrator who made it is gone: the key acts for nobody.
        raise DashboardAuthError(
            403, "api_key_not_allowed", "The administrator who created this key no longer exists"
        )
    return DashboardAdmin(user["id"], None, user["email"], user["role"], "aal1", user, False, grant)
