"""API-key registry, scopes, dashboard tokens and the admin API's redaction, without a database."""

from __future__ import annotations

import time

import jwt
import pytest

from fluxbase.admin_api.database import policy_sql, redact_literals
from fluxbase.config import RateLimitConfig
from fluxbase.errors import HttpError
from fluxbase.security import dashboard_auth as da
from fluxbase.security.authenticate import AuthenticationError, Authenticator
from fluxbase.security.key_registry import ApiKeyGrant, ApiKeyRegistry, key_digest
from fluxbase.security.ratelimit import Tier, request_tier
from fluxbase.security.scopes import REALTIME, STORAGE, ScopeError, require_scope, rest_scope

SECRET = "0f3c5a9e7d1b2468ace13579bdf02468ace13579bdf02468ace13579bdf0aa55"
KEY = "fbk_" + "a" * 43


def registry(
    expires_at: float | None = None, scopes: frozenset[str] = frozenset({"rest:read"})
) -> ApiKeyRegistry:
    keys = ApiKeyRegistry()
    keys.replace({key_digest(KEY): ApiKeyGrant("k1", "anon", scopes, 2, expires_at, None)})
    return keys


def test_a_live_key_becomes_a_caller_with_its_role_and_scopes() -> None:
    authenticator = Authenticator(SECRET, api_keys=registry())
    caller = authenticator.caller({"apikey": KEY})
    assert caller.role == "anon" and caller.api_key is not None and caller.claims["api_key_id"] == "k1"
    assert authenticator.caller({"Authorization": f"Bearer {KEY}"}).api_key == caller.api_key
    require_scope(caller, rest_scope("GET"))
    with pytest.raises(ScopeError):
        require_scope(caller, rest_scope("POST"))
    with pytest.raises(ScopeError):
        require_scope(caller, REALTIME)
    with pytest.raises(ScopeError):
        require_scope(caller, STORAGE)


def test_unknown_and_expired_keys_are_refused() -> None:
    with pytest.raises(AuthenticationError):
        Authenticator(SECRET, api_keys=registry()).caller({"apikey": "fbk_" + "b" * 43})
    with pytest.raises(AuthenticationError):
        Authenticator(SECRET, api_keys=registry(expires_at=time.time() - 1)).caller({"apikey": KEY})


def test_a_key_next_to_a_user_token_keeps_its_scopes() -> None:
    user = jwt.encode(
        {"sub": "u1", "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 60}, SECRET
    )
    caller = Authenticator(SECRET, api_keys=registry()).caller(
        {"apikey": KEY, "Authorization": f"Bearer {user}"}
    )
    assert caller.role == "authenticated" and caller.user_id == "u1"
    with pytest.raises(ScopeError):
        require_scope(caller, rest_scope("DELETE"))


def test_jwt_callers_have_no_scopes_to_check() -> None:
    require_scope(Authenticator(SECRET).caller({}), STORAGE)


def test_each_key_spends_its_own_budget_in_the_api_key_tier() -> None:
    keys = registry()
    caller = Authenticator(SECRET, api_keys=keys).caller({"apikey": KEY})
    grant = keys.lookup(KEY)
    tier = request_tier(caller, "127.0.0.1", RateLimitConfig())
    assert tier == Tier("api_key", grant.id, grant.rate_limit_per_minute)


def test_dashboard_tokens_never_verify_as_api_tokens() -> None:
    token, _ = da.issue_access_token(
        SECRET, user_id="u", session_id="s", email="e", aal="aal1", ttl=60, issuer="i"
    )
    with pytest.raises(AuthenticationError):
        Authenticator(SECRET).verify(token)
    # And an app token signed with the secret itself never passes for a dashboard one.
    forged = jwt.encode(
        {"sub": "u", "aud": da.AUDIENCE, "role": da.ROLE, "exp": int(time.time()) + 60}, SECRET
    )
    with pytest.raises(da.DashboardAuthError) as refused:
        da._classify(SECRET, forged)
    assert refused.value.status == 401
    challenge_id = "00000000-0000-0000-0000-000000000000"
    challenge = da.issue_challenge_token(SECRET, challenge_id=challenge_id, user_id="u", ttl=60, issuer="i")
    with pytest.raises(da.DashboardAuthError) as half:
        da._classify(SECRET, challenge)
    assert half.value.status == 403


def test_sql_literals_are_blanked_for_the_log() -> None:
    assert redact_literals("alter role x password 'hunter2'") == "alter role x password '…'"
    assert redact_literals("select E'it\\'s', $$body$$, $t$x$t$, 'a''b'") == "select '…', '…', '…', '…'"


def test_policy_sql_quotes_every_identifier() -> None:
    sql = policy_sql("public", "notes", {"name": 'a"b', "roles": ["anon"], "using": "true"})
    assert sql == 'create policy "a""b" on "public"."notes" as permissive for all to "anon" using (true)'
    with pytest.raises(HttpError):
        policy_sql("public", "notes", {"name": "x", "roles": ["anon; drop table t"], "using": "true"})
    with pytest.raises(HttpError):
        policy_sql("public", "notes", {"name": "x", "command": "truncate", "using": "true"})


def test_a_totp_secret_sealed_under_another_key_is_a_clear_409() -> None:
    from fluxbase.dashboard import totp

    sealed = totp.encrypt(b"k" * 32, totp.new_secret())
    with pytest.raises(HttpError) as refused:
        totp.decrypt(b"o" * 32, sealed)
    assert refused.value.status == 409 and refused.value.code == "totp_unreadable"
