"""Dashboard administrators over real HTTP and PostgreSQL: first admin, login, 2FA, lockout, sessions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pyotp

from dashboard_support import PASSWORD, RUNBOOK_SIGNUP, bearer, code_at, create_admin, login
from fluxbase.config import DashboardConfig
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD


async def test_runbook_signup_creates_the_first_admin_only_then_login(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    # The runbook's curl, field for field.
    first = await client.post(
        "/dashboard/auth/signup", json=RUNBOOK_SIGNUP, headers={"Content-Type": "application/json"}
    )
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["user"]["email"] == "admin@example.com"
    assert body["user"]["full_name"] == "Admin User"
    assert body["user"]["role"] == "dashboard_admin"
    assert "password_hash" not in body["user"] and body["access_token"] and body["refresh_token"]

    second = await client.post(
        "/dashboard/auth/signup", json={**RUNBOOK_SIGNUP, "email": "mallory@example.com"}
    )
    assert second.status == 403
    assert (await second.json())["code"] == "signup_closed"

    session = await login(client, "admin@example.com")
    me = await client.get("/dashboard/auth/me", headers=bearer(session["access_token"]))
    assert me.status == 200
    assert (await me.json())["email"] == "admin@example.com"

    wrong = await client.post(
        "/dashboard/auth/login", json={"email": "admin@example.com", "password": "nope"}
    )
    assert wrong.status == 401
    assert (await wrong.json())["code"] == "invalid_credentials"

    with psycopg.connect(dashboard_dsn) as conn:
        hashed = conn.execute(
            "select password_hash from dashboard.users where email = 'admin@example.com'"
        ).fetchone()
        events = [
            r[0]
            for r in conn.execute("select event from audit.events where event like 'dashboard.%' order by id")
        ]
    assert hashed is not None and hashed[0].startswith("$2a$10$")
    assert events[:2] == ["dashboard.signup", "dashboard.login"]
    assert "dashboard.login" in events[2:]


async def test_the_runbooks_five_login_attempts_per_fifteen_minutes_are_the_default(
    dashboard_app: Any, dashboard_dsn: str
) -> None:
    """The runbook promises "5 login attempts per 15 min": the sixth login from one address is
    refused, successful or not, while the other sign-in steps keep budgets of their own."""
    defaults = DashboardConfig()
    assert (defaults.sign_in_attempts, defaults.sign_in_window) == (5, 900.0)
    client = await dashboard_app(sign_in_attempts=defaults.sign_in_attempts)
    create_admin(dashboard_dsn, "five@example.com")
    for _ in range(defaults.sign_in_attempts):
        await login(client, "five@example.com")
    again = {"email": "five@example.com", "password": PASSWORD}
    refused = await client.post("/dashboard/auth/login", json=again)
    assert refused.status == 429, await refused.text()
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert (await refused.json())["code"] == "rate_limited"
    # A password reset from the same address is not refused by the logins' count (no SMTP here:
    # its own answer, 503, shows the limit let it through).
    reset = await client.post("/dashboard/auth/password/reset", json={"email": "five@example.com"})
    assert reset.status == 503, await reset.text()
    assert (await reset.json())["code"] == "smtp_not_configured"


async def test_concurrent_first_signups_make_one_admin(fresh_dsn, dashboard_app) -> None:
    Migrator(fresh_dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    client = await dashboard_app(dsn=fresh_dsn)
    answers = await asyncio.gather(
        *(
            client.post("/dashboard/auth/signup", json={**RUNBOOK_SIGNUP, "email": f"a{i}@example.com"})
            for i in range(5)
        )
    )
    assert sorted(a.status for a in answers) == [201, 403, 403, 403, 403]


async def _challenge(client, email: str) -> str:
    body = await login(client, email)
    assert body["mfa_required"] is True and "access_token" not in body
    return str(body["challenge_token"])


async def test_totp_two_factor_end_to_end(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    create_admin(dashboard_dsn, "totp@example.com")
    token = (await login(client, "totp@example.com"))["access_token"]

    setup = await client.post("/dashboard/auth/2fa/setup", headers=bearer(token))
    assert setup.status == 200
    body = await setup.json()
    secret = body["secret"]
    assert body["otpauth_uri"].startswith("otpauth://totp/Fluxbase:totp%40example.com?secret=")
    assert body["qr_code"].startswith("data:image/svg+xml;base64,")
    png = await client.post("/dashboard/auth/2fa/setup?format=png", headers=bearer(token))
    secret = (await png.json())["secret"]  # a new setup replaces the unconfirmed secret
    assert (await png.json())["qr_code"].startswith("data:image/png;base64,")
    with psycopg.connect(dashboard_dsn) as conn:
        stored = conn.execute(
            "select totp_secret_encrypted from dashboard.users where email = 'totp@example.com'"
        ).fetchone()
    assert stored is not None and secret.encode() not in bytes(stored[0])  # encrypted at rest

    bad = await client.post("/dashboard/auth/2fa/enable", json={"code": "000000"}, headers=bearer(token))
    assert bad.status == 401
    # The previous step's code (clock drift allowed): steps now-1, now and now+1 stay for the checks below.
    enabled = await client.post(
        "/dashboard/auth/2fa/enable", json={"code": code_at(secret, -1)}, headers=bearer(token)
    )
    assert enabled.status == 200, await enabled.text()
    backup_codes = (await enabled.json())["backup_codes"]
    assert len(backup_codes) == 10 and len(set(backup_codes)) == 10

    # Login now stops half-way: the challenge is good for nothing but /2fa/verify.
    challenge = await _challenge(client, "totp@example.com")
    assert (await client.get("/dashboard/auth/me", headers=bearer(challenge))).status == 403
    assert (await client.get("/api/v1/admin/settings", headers=bearer(challenge))).status == 403

    code = code_at(secret)
    verified = await client.post(
        "/dashboard/auth/2fa/verify", json={"challenge_token": challenge, "code": code}
    )
    assert verified.status == 200, await verified.text()
    session = await verified.json()
    me = await client.get("/dashboard/auth/me", headers=bearer(session["access_token"]))
    assert (await me.json())["aal"] == "aal2"

    # The same code again, on a new challenge: refused (one use per time step).
    replay = await client.post(
        "/dashboard/auth/2fa/verify",
        json={"challenge_token": await _challenge(client, "totp@example.com"), "code": code},
    )
    assert replay.status == 401
    assert (await replay.json())["code"] == "code_already_used"

    # Ten logins, then the next step's code sent to all ten challenges at once: one session.
    challenges = [await _challenge(client, "totp@example.com") for _ in range(10)]
    next_code = code_at(secret, 1)
    answers = await asyncio.gather(
        *(
            client.post("/dashboard/auth/2fa/verify", json={"challenge_token": c, "code": next_code})
            for c in challenges
        )
    )
    assert sorted(a.status for a in answers) == [200] + [401] * 9

    # A backup code works once.
    backup = backup_codes[0]
    first = await client.post(
        "/dashboard/auth/2fa/verify",
        json={"challenge_token": await _challenge(client, "totp@example.com"), "backup_code": backup},
    )
    assert first.status == 200
    again = await client.post(
        "/dashboard/auth/2fa/verify",
        json={"challenge_token": await _challenge(client, "totp@example.com"), "backup_code": backup},
    )
    assert again.status == 401

    # Disable with another backup code; login is one step again.
    aal2 = (await first.json())["access_token"]
    disabled = await client.post(
        "/dashboard/auth/2fa/disable", json={"backup_code": backup_codes[1]}, headers=bearer(aal2)
    )
    assert disabled.status == 200
    assert "access_token" in await login(client, "totp@example.com")

    with psycopg.connect(dashboard_dsn) as conn:
        events = {
            r[0] for r in conn.execute("select event from audit.events where event like 'dashboard.totp%'")
        }
    assert {"dashboard.totp_setup", "dashboard.totp_enabled", "dashboard.totp_disabled"} <= events


async def test_lockout_then_admin_unlock(dashboard_app, dashboard_dsn, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fluxbase.audit")
    client = await dashboard_app(lockout_max_failures=3)
    create_admin(dashboard_dsn, "boss@example.com")
    victim = create_admin(dashboard_dsn, "locked@example.com")
    for _ in range(3):
        failed = await client.post(
            "/dashboard/auth/login", json={"email": "locked@example.com", "password": "wrong"}
        )
        assert failed.status == 401
    # Locked: the right password is refused too, with the same answer.
    refused = await client.post(
        "/dashboard/auth/login", json={"email": "locked@example.com", "password": PASSWORD}
    )
    assert refused.status == 401
    with psycopg.connect(dashboard_dsn) as conn:
        row = conn.execute(
            "select locked_until > now() from dashboard.users where id = %s", (victim,)
        ).fetchone()
        locked_events = conn.execute(
            "select count(*) from audit.events where event = 'dashboard.user_locked'"
        ).fetchone()
    assert row == (True,) and locked_events is not None and locked_events[0] >= 1
    audit_lines = [r for r in caplog.records if r.name == "fluxbase.audit"]
    assert any(getattr(r, "event", "") == "dashboard.user_locked" for r in audit_lines)
    assert not any(PASSWORD in r.getMessage() or PASSWORD in str(vars(r)) for r in audit_lines)

    boss = (await login(client, "boss@example.com"))["access_token"]
    listed = await (await client.get("/api/v1/admin/dashboard-users", headers=bearer(boss))).json()
    assert next(u for u in listed if u["id"] == victim)["locked"] is True
    unlocked = await client.post(f"/api/v1/admin/dashboard-users/{victim}/unlock", headers=bearer(boss))
    assert unlocked.status == 200
    assert "access_token" in await login(client, "locked@example.com")


async def test_revoked_sessions_stop_at_once_and_refresh_rotates(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    create_admin(dashboard_dsn, "sessions@example.com")
    laptop = await login(client, "sessions@example.com")
    phone = await login(client, "sessions@example.com")
    listed = await (
        await client.get("/dashboard/auth/sessions", headers=bearer(laptop["access_token"]))
    ).json()
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    phone_session = next(s["id"] for s in listed if not s["current"])

    revoked = await client.delete(
        f"/dashboard/auth/sessions/{phone_session}", headers=bearer(laptop["access_token"])
    )
    assert revoked.status == 204
    # The phone's access token is still unexpired, and refused at once.
    assert (await client.get("/dashboard/auth/me", headers=bearer(phone["access_token"]))).status == 401
    assert (
        await client.post("/dashboard/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    ).status == 401

    refreshed = await client.post("/dashboard/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert refreshed.status == 200
    new = await refreshed.json()
    assert new["refresh_token"] != laptop["refresh_token"]
    # The replaced refresh token coming back means it was copied: the session ends.
    reused = await client.post("/dashboard/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert reused.status == 401 and (await reused.json())["code"] == "refresh_token_reused"
    assert (await client.get("/dashboard/auth/me", headers=bearer(new["access_token"]))).status == 401

    other = await login(client, "sessions@example.com")
    assert (await client.post("/dashboard/auth/logout", headers=bearer(other["access_token"]))).status == 204
    assert (await client.get("/dashboard/auth/me", headers=bearer(other["access_token"]))).status == 401


async def test_browser_session_cookies_and_csrf(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    create_admin(dashboard_dsn, "browser@example.com")
    response = await client.post(
        "/dashboard/auth/login", json={"email": "browser@example.com", "password": PASSWORD}
    )
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getall("Set-Cookie")}
    session_cookie = cookies["fluxbase_dashboard"]
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Secure" not in session_cookie  # plain HTTP here; Secure whenever served over TLS
    csrf_token = (await response.json())["csrf_token"]

    # The cookie jar now authenticates; reads need nothing more.
    assert (await client.get("/dashboard/auth/me")).status == 200
    # A change authenticated by cookie without the CSRF header is refused.
    forged = await client.put("/dashboard/auth/profile", json={"full_name": "Evil"})
    assert forged.status == 403 and (await forged.json())["code"] == "csrf_failed"
    ok = await client.put(
        "/dashboard/auth/profile", json={"full_name": "Real"}, headers={"X-CSRF-Token": csrf_token}
    )
    assert ok.status == 200 and (await ok.json())["full_name"] == "Real"
    assert (await client.post("/dashboard/auth/logout", headers={"X-CSRF-Token": csrf_token})).status == 204
    assert (await client.get("/dashboard/auth/me")).status == 401


async def test_password_change_ends_other_sessions(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    create_admin(dashboard_dsn, "change@example.com")
    here = await login(client, "change@example.com")
    elsewhere = await login(client, "change@example.com")
    wrong = await client.post(
        "/dashboard/auth/password/change",
        json={"current_password": "not it", "new_password": "AnotherPassword456!"},
        headers=bearer(here["access_token"]),
    )
    assert wrong.status == 401
    weak = await client.post(
        "/dashboard/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(here["access_token"]),
    )
    assert weak.status == 422
    changed = await client.post(
        "/dashboard/auth/password/change",
        json={"current_password": PASSWORD, "new_password": "AnotherPassword456!"},
        headers=bearer(here["access_token"]),
    )
    assert changed.status == 200
    assert (await client.get("/dashboard/auth/me", headers=bearer(here["access_token"]))).status == 200
    assert (await client.get("/dashboard/auth/me", headers=bearer(elsewhere["access_token"]))).status == 401
    assert "access_token" in await login(client, "change@example.com", "AnotherPassword456!")


async def test_password_reset_and_email_verification_by_mail(dashboard_app, dashboard_dsn, smtp) -> None:
    inbox, port = smtp
    client = await dashboard_app(smtp_port=port)
    create_admin(dashboard_dsn, "forgot@example.com")
    unknown = await client.post("/dashboard/auth/password/reset", json={"email": "nobody@example.com"})
    known = await client.post("/dashboard/auth/password/reset", json={"email": "forgot@example.com"})
    assert unknown.status == known.status == 200
    assert await unknown.json() == await known.json()
    mail = await inbox.wait_for("forgot@example.com")
    text = mail.get_body(("plain",)).get_content()
    token = text.rsplit(": ", 1)[1].strip()
    confirmed = await client.post(
        "/dashboard/auth/password/reset/confirm", json={"token": token, "new_password": "ResetPassword789!"}
    )
    assert confirmed.status == 200
    again = await client.post(
        "/dashboard/auth/password/reset/confirm", json={"token": token, "new_password": "ResetPassword789!"}
    )
    assert again.status == 400
    session = await login(client, "forgot@example.com", "ResetPassword789!")
    assert session["user"]["email_verified"] is True  # following the mailed link proved the address

    create_admin(dashboard_dsn, "verify@example.com")
    token_v = (await login(client, "verify@example.com"))["access_token"]
    assert (await client.post("/dashboard/auth/verify-email/resend", headers=bearer(token_v))).status == 200
    mail = await inbox.wait_for("verify@example.com")
    link_token = mail.get_body(("plain",)).get_content().rsplit(": ", 1)[1].strip()
    assert (await client.post("/dashboard/auth/verify-email", json={"token": link_token})).status == 200
    me = await (await client.get("/dashboard/auth/me", headers=bearer(token_v))).json()
    assert me["email_verified"] is True


def test_pyotp_codes_match_what_the_server_computes() -> None:
    from fluxbase.dashboard import totp

    secret = totp.new_secret()
    now = 1_800_000_000.0
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(now), now) == int(now // 30)
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(now - 30), now) == int(now // 30) - 1
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(now - 60), now) is None
    assert totp.matching_step(secret, "12345", now) is None
    key = b"k" * 32
    assert totp.decrypt(key, totp.encrypt(key, secret)) == secret


async def test_bodies_are_read_whole_and_bounded(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    create_admin(dashboard_dsn, "bodies@example.com")
    padded = {"email": "bodies@example.com", "password": PASSWORD, "padding": "x" * 200_000}
    assert (await client.post("/dashboard/auth/login", json=padded)).status == 200
    too_big = await client.post("/dashboard/auth/login", json={**padded, "padding": "x" * 2_000_000})
    assert too_big.status == 413
    assert (await client.post("/dashboard/auth/login", data=b"[1, 2]")).status == 400
    assert (await client.post("/dashboard/auth/login", data=b"{not json")).status == 400
    assert (await client.post("/dashboard/auth/login", json={"email": 5, "password": "x"})).status == 400
