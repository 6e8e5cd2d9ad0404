"""Issue 10's standing matrix: a real `fluxbase serve`, at debug level, taken through a session that
handles every kind of secret; afterwards no log line holds any of them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest

from fluxbase.security.api_keys import api_key
from harness import JWT_SECRET, ServerProcess, server_env, start_server

pytestmark = pytest.mark.process

USER_PASSWORD = "Us3r-Secret-Passw0rd!"
ADMIN_PASSWORD = "Adm1n-Secret-Passw0rd!"
SERVICE_KEY = api_key(JWT_SECRET, "service_role")
ANON_KEY = api_key(JWT_SECRET, "anon")


@pytest.fixture
def served(fresh_dsn: str) -> Iterator[ServerProcess]:
    env = server_env(
        fresh_dsn,
        FLUXBASE_LOG_LEVEL="debug",
        FLUXBASE_AUTH_AUTOCONFIRM="true",
        FLUXBASE_DASHBOARD_BCRYPT_COST="10",
    )
    server = start_server(env)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("create table public.notes (id serial primary key, body text)")
        conn.execute("grant select, insert on public.notes to anon, authenticated, service_role")
        conn.execute("grant usage on sequence public.notes_id_seq to anon, authenticated, service_role")
        conn.execute("notify pgrst, 'reload schema'")
    # The schema cache reloads on the NOTIFY, asynchronously: wait (bounded) until it has the table.
    deadline = time.monotonic() + 10
    while True:
        request = urllib.request.Request(f"{server.url}/rest/v1/notes", headers={"apikey": SERVICE_KEY})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline, "the schema cache never saw public.notes"
            time.sleep(0.1)
    try:
        yield server
    finally:
        server.terminate()


async def _json(response: aiohttp.ClientResponse) -> Any:
    raw = await response.read()
    return json.loads(raw) if raw else None


async def _session(url: str) -> list[str]:
    """Walks through every secret-handling path; returns the secrets the server handed out or took."""
    secrets = [USER_PASSWORD, ADMIN_PASSWORD, SERVICE_KEY, ANON_KEY, JWT_SECRET]
    anon = {"apikey": ANON_KEY}
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        credentials = {"email": "someone@example.com", "password": USER_PASSWORD}
        async with http.post(f"{url}/auth/v1/signup", json=credentials, headers=anon) as response:
            assert response.status == 200, await response.text()
        async with http.post(
            f"{url}/auth/v1/token?grant_type=password", json=credentials, headers=anon
        ) as response:
            assert response.status == 200, await response.text()
            session = await _json(response)
        async with http.post(
            f"{url}/auth/v1/token?grant_type=refresh_token",
            json={"refresh_token": session["refresh_token"]},
            headers=anon,
        ) as response:
            assert response.status == 200, await response.text()
            refreshed = await _json(response)
        # A wrong password too: a failure path must not echo what was tried.
        wrong = {"email": "someone@example.com", "password": USER_PASSWORD + "-wrong"}
        async with http.post(
            f"{url}/auth/v1/token?grant_type=password", json=wrong, headers=anon
        ) as response:
            assert response.status == 400
        secrets += [
            session["access_token"],
            session["refresh_token"],
            refreshed["access_token"],
            refreshed["refresh_token"],
            wrong["password"],
        ]
        user_jwt = refreshed["access_token"]

        for headers in (
            {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
            {"apikey": ANON_KEY, "Authorization": f"Bearer {user_jwt}"},
            {"apikey": user_jwt},
        ):
            async with http.get(f"{url}/rest/v1/notes?select=id", headers=headers) as response:
                assert response.status == 200, await response.text()
            async with http.post(f"{url}/rest/v1/notes", json={"body": "x"}, headers=headers) as response:
                assert response.status == 201, await response.text()
        async with http.get(
            f"{url}/auth/v1/user", headers={**anon, "Authorization": f"Bearer {user_jwt}"}
        ) as r:
            assert r.status == 200
        # A refused token is logged as refused, not quoted.
        forged = user_jwt[:-4] + ("AAAA" if not user_jwt.endswith("AAAA") else "BBBB")
        secrets.append(forged)
        async with http.get(
            f"{url}/rest/v1/notes", headers={**anon, "Authorization": f"Bearer {forged}"}
        ) as r:
            assert r.status == 401

        for key in (ANON_KEY, user_jwt, SERVICE_KEY):
            ws_url = f"{url}/realtime/v1/websocket?apikey={key}&vsn=1.0.0"
            async with http.ws_connect(ws_url) as ws:
                join = {
                    "topic": "realtime:room",
                    "event": "phx_join",
                    "payload": {"config": {}, "access_token": user_jwt},
                    "ref": "1",
                    "join_ref": "1",
                }
                await ws.send_json(join)
                reply = await ws.receive_json(timeout=5)
                assert reply["event"] == "phx_reply", reply
                await ws.send_json(
                    {**join, "event": "access_token", "ref": "2", "payload": {"access_token": user_jwt}}
                )
                await ws.close()

        admin = {"email": "admin@example.com", "password": ADMIN_PASSWORD, "full_name": "Admin"}
        async with http.post(f"{url}/dashboard/auth/signup", json=admin) as response:
            assert response.status == 201, await response.text()
            signed_up = await _json(response)
        async with http.post(
            f"{url}/dashboard/auth/login", json={"email": admin["email"], "password": ADMIN_PASSWORD}
        ) as response:
            assert response.status == 200, await response.text()
            login = await _json(response)
        secrets += [v for v in (signed_up or {}).values() if isinstance(v, str) and len(v) >= 20]
        secrets += [v for v in login.values() if isinstance(v, str) and len(v) >= 20]
        bearer = {"Authorization": f"Bearer {login['access_token']}"}
        async with http.post(
            f"{url}/api/v1/admin/api-keys", json={"name": "ci", "scopes": ["rest:read"]}, headers=bearer
        ) as response:
            assert response.status == 201, await response.text()
            created = await _json(response)
        assert created["key"].startswith("fbk_")
        secrets.append(created["key"])
        # The key registry learns of a new key by notification, a moment later: poll, bounded.
        deadline = time.monotonic() + 5
        while True:
            async with http.get(f"{url}/rest/v1/notes?select=id", headers={"apikey": created["key"]}) as r:
                if r.status == 200:
                    break
                assert r.status == 401 and time.monotonic() < deadline, await r.text()
            await asyncio.sleep(0.1)
        async with http.get(
            f"{url}/rest/v1/notes?select=id", headers={"Authorization": f"Bearer {created['key']}"}
        ) as response:
            assert response.status in (200, 401), await response.text()
        async with http.get(f"{url}/rest/v1/notes", headers={"apikey": created["key"] + "x"}) as response:
            assert response.status == 401
        secrets.append(created["key"] + "x")
        async with http.post(
            f"{url}/auth/v1/logout", headers={**anon, "Authorization": f"Bearer {user_jwt}"}
        ) as r:
            assert r.status in (200, 204)
    return secrets


async def test_no_log_line_holds_a_secret(served: ServerProcess) -> None:
    secrets = await _session(served.url)
    served.terminate()
    lines = served.log_lines()
    # The scan saw the request lines of the session (level set to debug), not an empty or unrelated log.
    assert any("/rest/v1/notes" in line for line in lines), lines[:20]
    assert any("/realtime/v1/websocket" in line for line in lines), lines[:20]
    leaks = []
    for line in lines:
        for secret in secrets:
            # A JWT's signature is the part that must never leak; its header is public.
            parts = secret.split(".")
            needles = [secret, parts[-1]] if len(parts) == 3 else [secret]
            if any(needle in line for needle in needles if len(needle) >= 8):
                leaks.append((secret[:12] + "...", line[:300]))
    assert not leaks, leaks
