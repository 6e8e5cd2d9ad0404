"""Turning apikey / Bearer headers into a caller: verification rules, refusals, cache."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from fluxbase.security import authenticate as authenticate_module
from fluxbase.security.api_keys import api_key
from fluxbase.security.authenticate import (
    ANONYMOUS,
    AuthenticationError,
    Authenticator,
)

SECRET = "b" * 64
USER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: object) -> str:
    base: dict[str, object] = {
        "sub": USER,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 3600,
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, algorithm=algorithm)


def unsigned(**claims: object) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def refused(headers: dict[str, str]) -> str:
    with pytest.raises(AuthenticationError) as error:
        Authenticator(SECRET).caller(headers)
    return error.value.reason


def test_no_credentials_is_anonymous() -> None:
    assert Authenticator(SECRET).caller({}) is ANONYMOUS


def test_api_keys_give_their_roles() -> None:
    auth = Authenticator(SECRET)
    assert auth.caller({"apikey": api_key(SECRET, "anon")}).role == "anon"
    assert auth.caller({"apikey": api_key(SECRET, "service_role")}).role == "service_role"


def test_user_token_gives_authenticated_with_claims() -> None:
    caller = Authenticator(SECRET).caller({"Authorization": f"Bearer {token(email='a@b.c')}"})
    assert caller.role == "authenticated"
    assert caller.user_id == USER
    assert caller.claims["email"] == "a@b.c"


def test_bearer_wins_over_apikey() -> None:
    headers = {"apikey": api_key(SECRET, "anon"), "Authorization": f"Bearer {token()}"}
    assert Authenticator(SECRET).caller(headers).role == "authenticated"


def test_expired_token_is_refused() -> None:
    assert refused({"Authorization": f"Bearer {token(exp=int(time.time()) - 120)}"}) == "JWT expired"


def test_small_clock_skew_is_tolerated() -> None:
    skewed = token(exp=int(time.time()) - 5)
    assert Authenticator(SECRET).caller({"Authorization": f"Bearer {skewed}"}).role == "authenticated"


def test_token_signed_with_another_secret_is_refused() -> None:
    assert refused({"Authorization": f"Bearer {token(secret='c' * 64)}"}) == "JWT could not be verified"


def test_alg_none_is_refused() -> None:
    forged = unsigned(sub=USER, role="service_role", exp=int(time.time()) + 3600)
    assert refused({"Authorization": f"Bearer {forged}"}) == "JWT could not be verified"
    assert refused({"apikey": forged}) == "JWT could not be verified"


def test_other_algorithms_are_refused_even_with_the_right_secret() -> None:
    assert refused({"Authorization": f"Bearer {token(algorithm='HS512')}"}) == "JWT could not be verified"


def test_forged_service_role_without_the_secret_is_refused() -> None:
    forged = token(secret="attacker-secret-that-is-long-enough-000000", role="service_role")
    assert refused({"apikey": forged}) == "JWT could not be verified"


def test_roles_outside_the_api_roles_are_refused_even_when_signed() -> None:
    for role in ("postgres", "authenticator", "supabase_admin", ""):
        assert "is not allowed" in refused({"Authorization": f"Bearer {token(role=role)}"})


def test_user_tokens_need_the_audience_and_a_subject() -> None:
    assert refused({"Authorization": f"Bearer {token(aud=None)}"}) == "JWT audience is not accepted"
    assert refused({"Authorization": f"Bearer {token(aud='other')}"}) == "JWT audience is not accepted"
    assert refused({"Authorization": f"Bearer {token(sub=None)}"}) == "JWT is missing the 'sub' claim"


def test_exp_is_required() -> None:
    no_exp = jwt.encode({"role": "anon"}, SECRET, algorithm="HS256")
    assert refused({"apikey": no_exp}) == "JWT is missing the 'exp' claim"


def test_malformed_authorization_header() -> None:
    assert "Bearer" in refused({"Authorization": "Basic dXNlcjpwYXNz"})
    assert "Bearer" in refused({"Authorization": "Bearer "})
    assert refused({"Authorization": "Bearer not.a.jwt"}) == "JWT could not be verified"


def test_verified_tokens_are_cached_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = Authenticator(SECRET)
    user_token = token(exp=int(time.time()) + 60)
    first = auth.verify(user_token)
    assert auth.verify(user_token) is first
    # Past expiry (by our clock) the cached result is not reused: the token is verified again.
    later = time.time() + 3600
    monkeypatch.setattr(authenticate_module.time, "time", lambda: later)
    assert auth.verify(user_token) is not first
