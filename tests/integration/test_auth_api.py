"""The auth API's security properties over HTTP, against real PostgreSQL and a real SMTP server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import orjson
import psycopg
import pytest

from auth_support import Client, Inbox
from fluxbase.observability import metrics
from fluxbase.security.api_keys import api_key
from harness import JWT_SECRET

ANON = {"apikey": api_key(JWT_SECRET, "anon")}
SERVICE = {**ANON, "Authorization": f"Bearer {api_key(JWT_SECRET, 'service_role')}"}
V2024 = {"X-Supabase-Api-Version": "2024-01-01"}
PASSWORD = "correct horse battery"
StartApp = Callable[..., Awaitable[Client]]


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.org"


async def call(
    api: Client, method: str, path: str, body: Any = None, headers: Any = None
) -> tuple[int, Any, Any]:
    response = await api.request(
        method, "/auth/v1" + path, json=body, headers={**ANON, **(headers or {})}, allow_redirects=False
    )
    text = await response.text()
    is_json = response.content_type == "application/json" and text
    return response.status, (orjson.loads(text) if is_json else None), response.headers


async def signed_up(api: Client, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
    status, session, _ = await call(
        api, "POST", "/signup", {"email": email or new_email(), "password": password}
    )
    assert status == 200, session
    assert session["access_token"] and session["refresh_token"]
    return session


def bearer(session_or_token: dict[str, Any] | str) -> dict[str, str]:
    token = session_or_token if isinstance(session_or_token, str) else session_or_token["access_token"]
    return {"Authorization": f"Bearer {token}"}


def db_queries() -> float:
    return sum(
        sample.value
        for family in metrics.db_queries_total.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


# ---------------------------------------------------------------------------
# Sessions and tokens
# ---------------------------------------------------------------------------


async def test_signup_sign_in_user_and_both_mounts(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    email = new_email()
    session = await signed_up(api, email)
    claims = jwt.decode(session["access_token"], JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == session["user"]["id"] and claims["email"] == email
    assert claims["role"] == "authenticated" and claims["aal"] == "aal1" and claims["session_id"]
    assert claims["amr"][0]["method"] == "password" and claims["is_anonymous"] is False
    assert session["token_type"] == "bearer" and session["expires_in"] == 3600

    status, again, _ = await call(
        api, "POST", "/token?grant_type=password", {"email": email, "password": "correct horse battery"}
    )
    assert status == 200 and again["user"]["id"] == session["user"]["id"]
    response = await api.get("/api/v1/auth/user", headers={**ANON, **bearer(again)})
    assert response.status == 200 and (await response.json())["email"] == email


async def test_put_user_never_changes_role_or_app_metadata(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    session = await signed_up(api)
    for body in ({"role": "service_role"}, {"app_metadata": {"admin": True}}, {"email_confirmed_at": None}):
        status, error, _ = await call(api, "PUT", "/user", body, bearer(session))
        assert status == 403, error
    status, user, _ = await call(api, "PUT", "/user", {"data": {"nick": "z"}}, bearer(session))
    assert status == 200 and user["user_metadata"]["nick"] == "z" and user["role"] == "authenticated"
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}


async def test_refresh_replay_within_window_then_reuse_revokes_the_session(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    first = await signed_up(api)
    status, second, _ = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    # A client that lost the answer replays the parent: it gets the same child.
    status, replay, _ = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": first["refresh_token"]}
    )
    assert status == 200 and replay["refresh_token"] == second["refresh_token"]
    status, third, _ = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": second["refresh_token"]}
    )
    assert status == 200
    # The grandparent again: reuse. The whole session goes, the live token with it.
    status, error, headers = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": first["refresh_token"]}, V2024
    )
    assert status == 400 and error == {"code": "refresh_token_already_used", "message": error["message"]}
    assert headers["X-Supabase-Api-Version"] == "2024-01-01"
    status, error, _ = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": third["refresh_token"]}
    )
    assert (
        status == 400
        and error["error_code"] == "refresh_token_not_found"
        and error["error"] == "invalid_grant"
    )
    # The access token of the deleted session stops at the next session check at the latest.
    status, _, _ = await call(api, "GET", "/user", headers=bearer(third))
    assert status == 403


async def test_twenty_concurrent_refreshes_leave_one_live_successor(
    auth_app: StartApp, migrated_dsn: str
) -> None:
    api = await auth_app(autoconfirm=True)
    session = await signed_up(api)
    results = await asyncio.gather(
        *(
            call(api, "POST", "/token?grant_type=refresh_token", {"refresh_token": session["refresh_token"]})
            for _ in range(20)
        )
    )
    successors = {body["refresh_token"] for status, body, _ in results if status == 200}
    assert len(successors) == 1, results
    session_id = jwt.decode(session["access_token"], options={"verify_signature": False})["session_id"]
    with psycopg.connect(migrated_dsn) as conn:
        live = conn.execute(
            "select count(*) from auth.refresh_tokens where session_id = %s and not revoked", (session_id,)
        ).fetchone()
    assert live == (1,)


async def test_logout_stops_refresh_and_access_at_once(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    session = await signed_up(api)
    response = await api.get("/rest/v1/rpc/none", headers={**ANON, **bearer(session)})
    status, _, _ = await call(api, "POST", "/logout?scope=local", headers=bearer(session))
    assert status == 204
    status, _, _ = await call(
        api, "POST", "/token?grant_type=refresh_token", {"refresh_token": session["refresh_token"]}
    )
    assert status == 400
    response = await api.get("/rest/v1/rpc/none", headers={**ANON, **bearer(session)})
    assert response.status == 401
    # GoTrue's answer for a token whose session has ended, on which auth-js drops its session.
    status, error, _ = await call(api, "GET", "/user", headers=bearer(session))
    assert status == 403 and error["error_code"] == "session_not_found"


async def test_sessions_ended_elsewhere_stop_access_within_the_check_interval(
    auth_app: StartApp, migrated_dsn: str
) -> None:
    api = await auth_app(autoconfirm=True, session_check_interval=0.2)
    session = await signed_up(api)
    response = await api.get("/rest/v1/rpc/none", headers={**ANON, **bearer(session)})
    assert response.status != 401
    # Another replica (or an admin in SQL) ends the session; this process has not seen it happen.
    session_id = jwt.decode(session["access_token"], options={"verify_signature": False})["session_id"]
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("delete from auth.sessions where id = %s", (session_id,))
    await asyncio.sleep(0.6)
    response = await api.get("/rest/v1/rpc/none", headers={**ANON, **bearer(session)})
    assert response.status == 401


# ---------------------------------------------------------------------------
# Tokens the server must refuse without touching the database
# ---------------------------------------------------------------------------


def forged(claims: dict[str, Any], *, secret: str = JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def user_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated", "exp": now + 600,
            "iat": now, "session_id": str(uuid.uuid4()), **overrides}  # fmt: skip


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(forged(user_claims(exp=int(time.time()) - 3600)), id="expired"),
        pytest.param(forged(user_claims(), secret="not-the-secret-" * 4), id="forged"),
        pytest.param(unsigned(user_claims()), id="alg-none"),
        pytest.param(forged(user_claims(aud="someone-else")), id="wrong-audience"),
        pytest.param(forged(user_claims(role="postgres"), secret="guessed-secret-" * 4), id="role-postgres"),
        pytest.param(
            forged(user_claims(role="service_role"), secret="guessed-secret-" * 4), id="service-role"
        ),
        pytest.param(forged(user_claims(role="postgres")), id="role-postgres-signed"),
    ],
)
async def test_bad_tokens_get_401_and_no_database_work(auth_app: StartApp, token: str) -> None:
    api = await auth_app(autoconfirm=True)
    before = db_queries()
    for method, path in (("GET", "/user"), ("PUT", "/user"), ("POST", "/logout"), ("GET", "/admin/users")):
        status, error, _ = await call(api, method, path, {}, bearer(token))
        assert status == 401, (path, error)
        assert error["error_code"] in ("bad_jwt", "no_authorization")
    response = await api.get("/rest/v1/rpc/none", headers={**ANON, **bearer(token)})
    assert response.status == 401
    assert db_queries() == before


async def test_admin_endpoints_need_the_service_role(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    session = await signed_up(api)
    status, _, _ = await call(api, "GET", "/admin/users", headers=bearer(session))
    assert status == 403
    status, _, _ = await call(api, "GET", "/admin/users")  # the anon key alone
    assert status == 401
    status, body, headers = await call(api, "GET", "/admin/users?per_page=1", headers=SERVICE)
    assert status == 200 and len(body["users"]) == 1 and int(headers["X-Total-Count"]) >= 1


# ---------------------------------------------------------------------------
# Enumeration and rate limits
# ---------------------------------------------------------------------------


async def test_recover_otp_resend_answer_the_same_for_known_and_unknown(
    auth_app: StartApp, smtp: tuple[Inbox, int]
) -> None:
    api = await auth_app(autoconfirm=True)
    known = new_email()
    await signed_up(api, known)
    for path, extra in (
        ("/recover", {}),
        ("/otp", {"create_user": True}),
        ("/otp", {"create_user": False}),
        ("/resend", {"type": "signup"}),
    ):
        answers = []
        unknown = new_email()  # fresh each time: /otp with create_user makes the address known
        for address in (known, unknown):
            status, body, _ = await call(api, "POST", path, {"email": address, **extra})
            answers.append((status, body))
        assert answers[0] == answers[1] == (200, {}), (path, answers)
    await smtp[0].wait_for(known)  # the real account did get its recovery mail


async def test_signup_answers_the_same_for_known_and_unknown(auth_app: StartApp) -> None:
    api = await auth_app()  # confirmation on
    known = new_email()
    status, _, _ = await call(api, "POST", "/signup", {"email": known, "password": "correct horse battery"})
    assert status == 200

    def masked(body: dict[str, Any], address: str) -> dict[str, Any]:
        ignored = {"id", "created_at", "updated_at", "confirmation_sent_at"}
        return {k: (v if v != address else "<email>") for k, v in body.items() if k not in ignored}

    answers = []
    for address in (known, new_email()):
        status, body, _ = await call(
            api, "POST", "/signup", {"email": address, "password": "correct horse battery"}
        )
        answers.append((status, sorted(body), masked(body, address)))
    assert answers[0] == answers[1]


async def test_signup_without_smtp_and_without_autoconfirm_fails_clearly(auth_app: StartApp) -> None:
    api = await auth_app(with_smtp=False)
    status, error, _ = await call(
        api, "POST", "/signup", {"email": new_email(), "password": "correct horse battery"}
    )
    assert status == 500 and error["error_code"] == "smtp_not_configured"
    assert "auth.smtp.host" in error["msg"]


async def test_sixth_sign_in_within_the_window_is_refused(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    email = new_email()
    await signed_up(api, email)
    before = metrics.auth_attempts_total.labels("password", "rate_limited")._value.get()
    for _ in range(5):
        status, _, _ = await call(
            api, "POST", "/token?grant_type=password", {"email": email, "password": "wrong password"}
        )
        assert status == 400
    status, error, headers = await call(
        api, "POST", "/token?grant_type=password", {"email": email, "password": "x"}
    )
    assert status == 429 and error["error_code"] == "over_request_rate_limit"
    assert 0 < int(headers["Retry-After"]) <= 900
    assert metrics.auth_attempts_total.labels("password", "rate_limited")._value.get() == before + 1


async def test_sign_in_limit_is_per_ip_across_accounts(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    for _ in range(5):
        status, _, _ = await call(
            api, "POST", "/token?grant_type=password", {"email": new_email(), "password": "nope"}
        )
        assert status == 400
    status, _, headers = await call(
        api, "POST", "/token?grant_type=password", {"email": new_email(), "password": "x"}
    )
    assert status == 429 and "Retry-After" in headers


async def test_legacy_and_versioned_error_shapes(auth_app: StartApp) -> None:
    api = await auth_app(autoconfirm=True)
    status, legacy, headers = await call(api, "GET", "/user")
    assert status == 401 and legacy == {"code": 401, "error_code": "no_authorization", "msg": legacy["msg"]}
    assert headers["x-sb-error-code"] == "no_authorization"
    status, current, _ = await call(api, "GET", "/user", headers=V2024)
    assert current == {"code": "no_authorization", "message": legacy["msg"]}


async def test_verify_redirects_only_to_allowed_urls(auth_app: StartApp, smtp: tuple[Inbox, int]) -> None:
    api = await auth_app(site_url="http://app.test", redirect_urls=("http://app.test/welcome/*",))
    email = new_email()
    await call(
        api,
        "POST",
        "/signup?redirect_to=https://evil.example/steal",
        {"email": email, "password": "correct horse battery"},
    )
    link = await smtp[0].link_for(email)
    assert "evil.example" not in link
    path = link.split("/auth/v1", 1)[1]
    status, _, headers = await call(api, "GET", path)
    assert status == 303 and headers["Location"].startswith("http://app.test#access_token="), headers[
        "Location"
    ]
    status, _, headers = await call(api, "GET", path)  # single use
    assert status == 303 and "error_code=otp_expired" in headers["Location"]


# ---------------------------------------------------------------------------
# Email codes
# ---------------------------------------------------------------------------


async def test_email_code_is_bound_to_the_address_single_use_and_locks(
    auth_app: StartApp, smtp: tuple[Inbox, int]
) -> None:
    api = await auth_app(otp_max_attempts=3)
    inbox = smtp[0]
    first, second = new_email(), new_email()
    for address in (first, second):
        status, _, _ = await call(api, "POST", "/otp", {"email": address})
        assert status == 200
    code, other = await inbox.code_for(first), await inbox.code_for(second)
    if code != other:  # a code alone never identifies a user: the other address's code fails here
        status, error, _ = await call(
            api, "POST", "/verify", {"type": "email", "email": first, "token": other}
        )
        assert status == 403 and error["error_code"] == "otp_expired"
    status, session, _ = await call(api, "POST", "/verify", {"type": "email", "email": first, "token": code})
    assert status == 200 and session["user"]["email"] == first
    assert session["user"]["email_confirmed_at"] and session["refresh_token"]
    claims = jwt.decode(session["access_token"], JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert claims["amr"][0]["method"] == "otp"
    status, _, _ = await call(api, "POST", "/verify", {"type": "email", "email": first, "token": code})
    assert status == 403  # single use

    # Guessing: three wrong codes use the code up; the right one is refused after that.
    code = await inbox.code_for(second)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(2):
        status, _, _ = await call(
            api, "POST", "/verify", {"type": "magiclink", "email": second, "token": wrong}
        )
        assert status == 403
    status, error, _ = await call(
        api, "POST", "/verify", {"type": "magiclink", "email": second, "token": code}
    )
    assert status == 200, error  # two wrong tries: still under the limit of three
    await call(api, "POST", "/otp", {"email": second})
    code = await inbox.code_for(second, 2)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(3):
        status, _, _ = await call(
            api, "POST", "/verify", {"type": "magiclink", "email": second, "token": wrong}
        )
        assert status == 403
    status, error, _ = await call(
        api, "POST", "/verify", {"type": "magiclink", "email": second, "token": code}
    )
    assert status == 403 and error["error_code"] == "otp_expired"
    # A new mail gives a new code that works.
    await call(api, "POST", "/otp", {"email": second})
    fresh = await inbox.code_for(second, 3)
    status, session, _ = await call(
        api, "POST", "/verify", {"type": "email", "email": second, "token": fresh}
    )
    assert status == 200 and session["user"]["email"] == second


async def test_generate_link_returns_a_working_email_otp(auth_app: StartApp) -> None:
    api = await auth_app()
    email = new_email()
    status, link, _ = await call(
        api, "POST", "/admin/generate_link", {"type": "signup", "email": email, "password": PASSWORD}, SERVICE
    )
    assert status == 200 and len(link["properties"]["email_otp"]) == 6
    otp = link["properties"]["email_otp"]
    status, session, _ = await call(api, "POST", "/verify", {"type": "signup", "email": email, "token": otp})
    assert status == 200 and session["user"]["email_confirmed_at"]


# ---------------------------------------------------------------------------
# PKCE
# ---------------------------------------------------------------------------


def challenge_for(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def pkce_code(api: Client, inbox: Inbox, email: str, verifier: str, count: int = 1) -> str:
    body = {"email": email, "code_challenge": challenge_for(verifier), "code_challenge_method": "s256"}
    status, _, _ = await call(api, "POST", "/otp", body)
    assert status == 200
    path = (await inbox.link_for(email, count)).split("/auth/v1", 1)[1]
    status, _, headers = await call(api, "GET", path)
    assert status == 303 and "?code=" in headers["Location"] and "#" not in headers["Location"]
    return headers["Location"].split("?code=", 1)[1]


async def test_pkce_refuses_wrong_verifier_reuse_and_expiry(
    auth_app: StartApp, smtp: tuple[Inbox, int], migrated_dsn: str
) -> None:
    api = await auth_app(site_url="http://app.test")
    email, verifier = new_email(), "v" * 20 + uuid.uuid4().hex
    code = await pkce_code(api, smtp[0], email, verifier)
    exchange = "/token?grant_type=pkce"
    status, error, _ = await call(api, "POST", exchange, {"auth_code": code, "code_verifier": verifier + "x"})
    assert status == 403 and error["error_code"] == "bad_code_verifier"
    status, session, _ = await call(api, "POST", exchange, {"auth_code": code, "code_verifier": verifier})
    assert status == 200 and session["user"]["email"] == email and session["refresh_token"]
    status, error, _ = await call(api, "POST", exchange, {"auth_code": code, "code_verifier": verifier})
    assert status == 404 and error["error_code"] == "flow_state_not_found"

    late = await pkce_code(api, smtp[0], email, verifier, 2)
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "update auth.flow_state set auth_code_issued_at = now() - interval '6 minutes'"
            " where auth_code_hash = encode(sha256(convert_to(%s, 'UTF8')), 'hex')",
            (late,),
        )
    status, error, _ = await call(api, "POST", exchange, {"auth_code": late, "code_verifier": verifier})
    assert status == 422 and error["error_code"] == "flow_state_expired"


# ---------------------------------------------------------------------------
# RS256 / ES256 with a JWKS
# ---------------------------------------------------------------------------


def private_pem(algorithm: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_user_tokens_with_jwks_and_no_hs_rs_confusion(
    auth_app: StartApp, algorithm: str
) -> None:
    api = await auth_app(
        autoconfirm=True, jwt_algorithm=algorithm, jwt_private_key=private_pem(algorithm), jwt_key_id="k1"
    )
    session = await signed_up(api)
    header = jwt.get_unverified_header(session["access_token"])
    assert header["alg"] == algorithm and header["kid"] == "k1"
    status, jwks, _ = await call(api, "GET", "/.well-known/jwks.json")
    assert status == 200 and [(k["kid"], k["alg"], k["use"]) for k in jwks["keys"]] == [
        ("k1", algorithm, "sig")
    ]
    public = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(session["access_token"], public, algorithms=[algorithm], audience="authenticated")
    assert claims["sub"] == session["user"]["id"]
    status, user, _ = await call(api, "GET", "/user", headers=bearer(session))
    assert status == 200 and user["id"] == claims["sub"]

    # HS256 "signed" with the public key as the secret: refused (the public key never verifies HS256).
    from cryptography.hazmat.primitives import serialization

    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged_claims = {**claims, "exp": int(time.time()) + 600}
    forged = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
    forged += "." + base64.urlsafe_b64encode(orjson.dumps(forged_claims)).rstrip(b"=").decode()
    import hmac

    signature = hmac.new(public_pem, forged.encode(), hashlib.sha256).digest()
    forged += "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    status, _, _ = await call(api, "GET", "/user", headers=bearer(forged))
    assert status == 401
    # A user token signed with the HS256 secret is refused too; the API keys still work.
    hs_user = jwt.encode(forged_claims, JWT_SECRET, algorithm="HS256")
    status, _, _ = await call(api, "GET", "/user", headers=bearer(hs_user))
    assert status == 401
    status, _, _ = await call(api, "GET", "/admin/users", headers=SERVICE)
    assert status == 200


# ---------------------------------------------------------------------------
# GoTrue's edges that clients read (issue 11)
# ---------------------------------------------------------------------------


async def test_get_user_of_an_ended_session_is_403_whichever_process_verified_it(
    auth_app: StartApp,
) -> None:
    """auth-js drops its session on 403 session_not_found; a 401 would leave it signed in."""
    here = await auth_app(autoconfirm=True, session_check_interval=0.2)
    there = await auth_app(autoconfirm=True, session_check_interval=0.2)
    for ended_by in (here, there):
        session = await signed_up(here)
        for api in (here, there):  # both processes have verified (and cached) the token
            status, _, _ = await call(api, "GET", "/user", headers=bearer(session))
            assert status == 200
        status, _, _ = await call(ended_by, "POST", "/logout?scope=local", headers=bearer(session))
        assert status == 204
        await asyncio.sleep(0.6)  # the other process's session check has run
        for api in (here, there):
            for headers in ({}, V2024):
                status, error, response_headers = await call(
                    api, "GET", "/user", headers={**bearer(session), **headers}
                )
                assert status == 403 and response_headers["x-sb-error-code"] == "session_not_found"
                assert "session_not_found" in (error.get("error_code"), error.get("code"))


async def test_weak_password_errors_carry_their_reasons_in_both_shapes(auth_app: StartApp) -> None:
    api = await auth_app(
        autoconfirm=True, password_required_characters=("abcdefghijklmnopqrstuvwxyz", "0123456789")
    )
    status, legacy, _ = await call(api, "POST", "/signup", {"email": new_email(), "password": "ABC"})
    assert status == 422 and legacy["error_code"] == "weak_password"
    assert legacy["weak_password"] == {"reasons": ["length", "characters"]}
    assert "at least 8 characters" in legacy["msg"] and "0123456789" in legacy["msg"]
    status, current, _ = await call(
        api, "POST", "/signup", {"email": new_email(), "password": "long enough but no digit"}, V2024
    )
    assert status == 422
    assert current == {
        "code": "weak_password",
        "message": current["message"],
        "weak_password": {"reasons": ["characters"]},
    }
    session = await signed_up(api, password="long enough 4 sure")
    for path, body in (
        ("/user", {"password": "short1"}),
        ("/admin/users/" + session["user"]["id"], {"password": "x1"}),
    ):
        status, error, _ = await call(api, "PUT", path, body, SERVICE if "admin" in path else bearer(session))
        assert status == 422 and error["weak_password"]["reasons"] == ["length"], (path, error)


def auth_js_pagination(link: str) -> dict[str, int]:
    """What auth-js's listUsers makes of the Link header (it reads the first number of each URL)."""
    pages = {}
    for part in link.split(","):
        page = int(part.split(";")[0].split("=")[1][:1])
        rel = part.split(";")[1].split("=")[1].strip('"')
        pages[f"{rel}Page"] = page
    return pages


async def test_admin_users_link_header_lists_page_first_with_next_and_last(
    auth_app: StartApp, fresh_dsn: str
) -> None:
    from fluxbase.db.migrate import Migrator
    from harness import AUTHENTICATOR_PASSWORD

    Migrator(fresh_dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    api = await auth_app(dsn=fresh_dsn, autoconfirm=True)
    status, _, headers = await call(api, "GET", "/admin/users", headers=SERVICE)
    assert status == 200 and headers["X-Total-Count"] == "0"
    assert headers["Link"] == '</auth/v1/admin/users?page=0&per_page=50>; rel="last"'
    for _ in range(5):
        await signed_up(api)
    status, body, headers = await call(api, "GET", "/admin/users?per_page=2", headers=SERVICE)
    assert len(body["users"]) == 2 and headers["X-Total-Count"] == "5"
    assert headers["Link"] == (
        '</auth/v1/admin/users?page=2&per_page=2>; rel="next", '
        '</auth/v1/admin/users?page=3&per_page=2>; rel="last"'
    )
    assert auth_js_pagination(headers["Link"]) == {"nextPage": 2, "lastPage": 3}
    status, body, headers = await call(api, "GET", "/admin/users?per_page=2&page=3", headers=SERVICE)
    assert len(body["users"]) == 1 and auth_js_pagination(headers["Link"]) == {"lastPage": 3}
    status, body, headers = await call(api, "GET", "/admin/users?page=7&per_page=2", headers=SERVICE)
    assert body["users"] == [] and auth_js_pagination(headers["Link"]) == {"lastPage": 3}
