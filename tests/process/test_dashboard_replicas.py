"""Two `fluxbase serve` processes on one database: the runbook's first-admin curl, the CLI, key revocation."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest

from harness import FLUXBASE, ServerProcess, server_env, start_server

pytestmark = pytest.mark.process
REFRESH_INTERVAL = 2.0
SIGNUP = {"email": "admin@example.com", "password": "SecurePassword123!", "full_name": "Admin User"}


def call(
    server: ServerProcess, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


@pytest.fixture
def replicas(fresh_dsn: str):
    env = server_env(
        fresh_dsn,
        FLUXBASE_DASHBOARD_API_KEY_REFRESH_INTERVAL=f"{REFRESH_INTERVAL}s",
        FLUXBASE_DASHBOARD_BCRYPT_COST="10",
    )
    first = start_server(env)
    second = start_server(env, "serve", "--no-migrate")
    try:
        yield first, second, env
    finally:
        first.terminate()
        second.terminate()


def test_first_admin_cli_and_key_revocation_across_replicas(replicas) -> None:
    first, second, env = replicas
    # The runbook's curl on a fresh server; the same on the other replica is refused.
    status, body = call(first, "POST", "/dashboard/auth/signup", SIGNUP)
    assert status == 201, body
    status, body = call(second, "POST", "/dashboard/auth/signup", {**SIGNUP, "email": "other@example.com"})
    assert status == 403 and body["code"] == "signup_closed"

    # `fluxbase admin create` asks for the password; it is never an argument.
    created = subprocess.run(
        [FLUXBASE, "admin", "create", "--email", "ops@example.com", "--full-name", "Ops", "--password-stdin"],
        input="AnotherSecret456!\n", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created administrator ops@example.com" in created.stdout
    as_argument = subprocess.run(
        [FLUXBASE, "admin", "create", "--email", "x@example.com", "--password", "AnotherSecret456!"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert as_argument.returncode != 0

    status, session = call(
        second, "POST", "/dashboard/auth/login", {"email": "ops@example.com", "password": "AnotherSecret456!"}
    )
    assert status == 200, session
    admin = {"Authorization": f"Bearer {session['access_token']}"}

    # A key made on one replica works on the other; revoked on the first, the second refuses it in time.
    status, key = call(
        first, "POST", "/api/v1/admin/api-keys", {"name": "ci", "scopes": ["rest:read"]}, admin
    )
    assert status == 201, key
    deadline = time.monotonic() + REFRESH_INTERVAL + 3
    while call(second, "GET", "/rest/v1/", headers={"apikey": key["key"]})[0] != 200:
        assert time.monotonic() < deadline, "the second replica never accepted the new key"
        time.sleep(0.1)
    status, _ = call(first, "POST", f"/api/v1/admin/api-keys/{key['id']}/revoke", None, admin)
    assert status == 200
    revoked_at = time.monotonic()
    while call(second, "GET", "/rest/v1/", headers={"apikey": key["key"]})[0] != 401:
        assert time.monotonic() - revoked_at < REFRESH_INTERVAL + 1, (
            "revocation not effective within the interval"
        )
        time.sleep(0.1)

    # Without the notification (a change made by hand in SQL), the interval reload still catches it.
    status, quiet = call(
        first, "POST", "/api/v1/admin/api-keys", {"name": "quiet", "scopes": ["rest:read"]}, admin
    )
    assert status == 201
    deadline = time.monotonic() + REFRESH_INTERVAL + 3
    while call(second, "GET", "/rest/v1/", headers={"apikey": quiet["key"]})[0] != 200:
        assert time.monotonic() < deadline, "the second replica never accepted the new key"
        time.sleep(0.1)
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("update dashboard.api_keys set revoked_at = now() where id = %s", (quiet["id"],))
    revoked_at = time.monotonic()
    while call(second, "GET", "/rest/v1/", headers={"apikey": quiet["key"]})[0] != 401:
        assert time.monotonic() - revoked_at < REFRESH_INTERVAL + 1, "the interval reload did not catch it"
        time.sleep(0.1)

    # Every step left an audit line, and no line holds a password or the key.
    lines = [json.loads(line) for line in first.log_lines() if line.startswith("{")]
    audit = {line["event"] for line in lines if line.get("log_type") == "audit"}
    assert {"dashboard.signup", "admin.api_key_created", "admin.api_key_revoked"} <= audit
    text = "\n".join(first.log_lines() + second.log_lines())
    assert "SecurePassword123!" not in text and key["key"] not in text
