"""Who is calling: the apikey header and the Bearer token, turned into a role and claims.

No database round trip: a JWT is verified with the configured secret, its
algorithm pinned (so `alg: none` and HS/RS confusion are refused), `exp`
required, clock skew bounded. Only the three API roles are accepted; user
tokens (role authenticated) must carry the expected audience. Verified
tokens are cached until they expire, so the hot path verifies each once.
Dashboard-issued API keys (fbk_...) are looked up in the process's key
registry (security/key_registry.py) instead: the key's role, and its scopes
for the services to check (security/scopes.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from fluxbase.db.transaction import API_ROLES
from fluxbase.request_state import USER_ID
from fluxbase.security.key_registry import ApiKeyGrant, ApiKeyRegistry, UnknownApiKey, is_dashboard_key
from fluxbase.security.sessions import SessionRevocations
from fluxbase.security.signing_keys import SigningKeys

ALGORITHM = "HS256"
USER_AUDIENCE = "authenticated"
CLOCK_SKEW_SECONDS = 30
CACHE_SIZE = 10_000


class AuthenticationError(Exception):
    """A credential was sent and is not acceptable; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """The verified identity of a request: what the role-switched transaction runs as."""

    role: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    # The raw token the role came from ("" for anonymous): realtime re-checks its expiry.
    token: str = ""
    # The API key the request came with, when it names one: its requests count against that
    # key's rate limit. Never the key itself (it reaches logs and Redis keys).
    api_key_id: str | None = None
    # Set when the request carries a dashboard-issued API key: its scopes limit what it may do,
    # and its own rate_limit_per_minute is its budget.
    api_key: ApiKeyGrant | None = None

    @property
    def user_id(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) and sub else None

    @property
    def session_id(self) -> str | None:
        session_id = self.claims.get("session_id")
        return session_id if isinstance(session_id, str) and session_id else None

    @property
    def expires_at(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None


ANONYMOUS = Caller("anon")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <token>`; None when there is no such header."""
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    """Verifies tokens against one secret and remembers the ones it verified."""

    def __init__(
        self,
        secret: str,
        revocations: SessionRevocations | None = None,
        signing_keys: SigningKeys | None = None,
        api_keys: ApiKeyRegistry | None = None,
    ) -> None:
        self._secret = secret
        self._keys = signing_keys
        self.api_keys = api_keys or ApiKeyRegistry()
        self._cache: OrderedDict[str, Caller] = OrderedDict()
        self.revocations = revocations or SessionRevocations()

    @property
    def signing_keys(self) -> SigningKeys | None:
        return self._keys

    def caller(self, headers: Mapping[str, str]) -> Caller:
        """The caller of a request: Authorization wins over apikey; neither means anonymous.

        An fbk_ key in `apikey` next to a user's Bearer token is checked too,
        and its scopes stay on the caller: the key says what, the token who.
        """
        bearer = bearer_token(headers)
        apikey = headers.get("apikey") or None
        if bearer is not None and is_dashboard_key(apikey) and not is_dashboard_key(bearer):
            assert apikey is not None
            key_caller = self._api_key(apikey)
            return dataclasses.replace(
                self.verify(bearer), api_key=key_caller.api_key, api_key_id=key_caller.api_key_id
            )
        token = bearer or apikey
        if token is None:
            return ANONYMOUS
        return self.verify(token)

    def _api_key(self, key: str) -> Caller:
        try:
            grant = self.api_keys.lookup(key)
        except UnknownApiKey as exc:
            raise AuthenticationError("API key is not valid (unknown, revoked or expired)") from exc
        return Caller(grant.role, {"role": grant.role, "api_key_id": grant.id}, key, grant.id, grant)

    def verify(self, token: str) -> Caller:
        if is_dashboard_key(token):
            return self._api_key(token)
        cached = self._cache.get(token)
        if cached is not None:
            expires_at = cached.expires_at
            if expires_at is not None and time.time() <= expires_at + CLOCK_SKEW_SECONDS:
                self._cache.move_to_end(token)
                self._refuse_revoked(cached)
                return cached
            del self._cache[token]
        caller = self._decode(token)
        session_id = caller.session_id
        if session_id is not None:
            self.revocations.seen(session_id, (caller.expires_at or 0.0) + CLOCK_SKEW_SECONDS)
        self._refuse_revoked(caller)
        self._cache[token] = caller
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return caller

    def _refuse_revoked(self, caller: Caller) -> None:
        session_id = caller.session_id
        if session_id is not None and self.revocations.is_revoked(session_id):
            raise AuthenticationError("JWT session has ended")

    def _decode(self, token: str) -> Caller:
        # One key per algorithm, each pinned: with RS256/ES256 configured, a token whose header says
        # so is checked with the public key and that algorithm only; anything else with the secret
        # and HS256 only.  So an HS256 token "signed" with the public key never meets the public key.
        keys = self._keys
        try:
            header_alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("JWT could not be verified") from exc
        asymmetric = keys is not None and header_alg == keys.algorithm
        try:
            claims = jwt.decode(
                token,
                keys.public_key if keys is not None and asymmetric else self._secret,
                algorithms=[keys.algorithm] if keys is not None and asymmetric else [ALGORITHM],
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("JWT expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"JWT is missing the {exc.claim!r} claim") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("JWT could not be verified") from exc
        role = claims.get("role", "anon")
        if role not in API_ROLES:
            raise AuthenticationError(f"JWT role {role!r} is not allowed")
        if keys is not None and not asymmetric and role == "authenticated":
            raise AuthenticationError(f"user JWTs must be signed with {keys.algorithm}")
        if role == "authenticated":
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if USER_AUDIENCE not in audiences:
                raise AuthenticationError("JWT audience is not accepted")
            if not isinstance(claims.get("sub"), str) or not claims["sub"]:
                raise AuthenticationError("JWT is missing the 'sub' claim")
        return Caller(role, claims, token, api_key_id=_legacy_key_id(role, claims))


def _legacy_key_id(role: str, claims: Mapping[str, Any]) -> str | None:
    # The service_role key is a server's secret: its calls share the per-key budget. The anon key
    # is public (every browser of an app sends it), so its callers are counted per client IP.
    if role == "service_role" and "sub" not in claims:
        return "service_role"
    return None


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
CALLER = web.RequestKey("caller", Caller)


def authenticate(request: web.Request) -> Caller:
    """The request's caller, verified once per request; raises AuthenticationError.

    Handlers call this rather than a middleware answering 401 itself: each
    service (data API, auth, storage) words its 401 in its own wire format.
    """
    caller = request.get(CALLER)
    if caller is None:
        caller = request.app[AUTHENTICATOR].caller(request.headers)
        request[CALLER] = caller
        if caller.user_id is not None:
            request[USER_ID] = caller.user_id
    return caller
