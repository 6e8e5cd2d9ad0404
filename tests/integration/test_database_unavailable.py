"""What each service answers when the database cannot serve: pool exhausted, backend killed.

The db layer raises domain errors (db/errors.py); the data API answers them as
PostgREST does (PGRST003 504, PGRST000/PGRST001 503), auth in GoTrue's shape,
realtime with Supabase Realtime's join reasons.  Never a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import DATABASE, Runtime, build_app
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, PostgresServer, make_config
from realtime_support import ANON_KEY, SCHEMA, open_socket

Client = TestClient  # type: ignore[type-arg]
ANON = {"apikey": ANON_KEY}
POOL_SIZE = 2

NAP = """
create function public.nap(seconds float8) returns integer language sql
  as $$ select 1 from pg_sleep(seconds) $$;
grant execute on function public.nap(float8) to anon;
"""


@pytest.fixture(scope="module")
def dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("unavailable")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
        conn.execute(NAP)  # type: ignore[arg-type]
    return dsn


@pytest.fixture
async def api(dsn: str) -> AsyncIterator[Client]:
    """The whole app on a small pool that gives up waiting quickly."""
    config = make_config(dsn)
    database = dataclasses.replace(
        config.database, min_connections=1, max_connections=POOL_SIZE, acquire_timeout=0.2
    )
    app = build_app(dataclasses.replace(config, database=database), Runtime(dsn, AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as client:
        yield client


async def _hold_every_connection(client: Client) -> list[Any]:
    pool = client.app[DATABASE].pool  # type: ignore[index]
    return [await pool.acquire() for _ in range(POOL_SIZE)]


async def _release(client: Client, held: list[Any]) -> None:
    pool = client.app[DATABASE].pool  # type: ignore[index]
    for connection in held:
        await pool.release(connection)


async def test_exhausted_pool_answers_pgrst003_on_the_data_api(api: Client) -> None:
    held = await _hold_every_connection(api)
    try:
        started = time.monotonic()
        response = await api.get("/rest/v1/items", headers=ANON)
        assert time.monotonic() - started < 2.0  # answered, not queued
        assert response.status == 504
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Retry-After"] == "1"
        assert await response.json() == {
            "code": "PGRST003",
            "message": "Timed out acquiring connection from connection pool.",
            "details": None,
            "hint": None,
        }
        rpc = await api.post("/rest/v1/rpc/nap", json={"seconds": 0}, headers=ANON)
        assert rpc.status == 504
        assert (await rpc.json())["code"] == "PGRST003"
    finally:
        await _release(api, held)
    assert (await api.get("/rest/v1/items", headers=ANON)).status == 200


async def test_exhausted_pool_answers_gotrue_request_timeout_on_auth(api: Client) -> None:
    held = await _hold_every_connection(api)
    try:
        credentials = {"email": "nobody@example.com", "password": "whatever"}
        legacy = await api.post("/auth/v1/token?grant_type=password", json=credentials, headers=ANON)
        assert legacy.status == 504
        assert legacy.headers["x-sb-error-code"] == "request_timeout"
        assert legacy.headers["Retry-After"] == "1"
        body = await legacy.json()
        assert body["code"] == 504
        assert body["error_code"] == "request_timeout"
        assert body["msg"] == "Processing this request timed out, please retry after a moment."
        assert body["error"] == "server_error"  # the OAuth pair on /token

        current = await api.post(
            "/auth/v1/token?grant_type=password",
            json=credentials,
            headers={**ANON, "X-Supabase-Api-Version": "2024-01-01"},
        )
        assert current.status == 504
        assert await current.json() == {
            "code": "request_timeout",
            "message": "Processing this request timed out, please retry after a moment.",
        }
    finally:
        await _release(api, held)
    after = await api.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "nobody@example.com", "password": "whatever"},
        headers=ANON,
    )
    assert after.status == 400  # the database answers again: wrong credentials


async def test_exhausted_pool_answers_a_realtime_join_with_a_retryable_reason(api: Client) -> None:
    url = str(api.make_url("/realtime/v1/websocket")) + f"?apikey={ANON_KEY}&vsn=1.0.0"
    changes = {"postgres_changes": [{"event": "*", "schema": "public", "table": "items"}]}
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, url)
        try:
            held = await _hold_every_connection(api)
            try:
                reply = await socket.join("realtime:items", changes)
            finally:
                await _release(api, held)
            assert reply == {
                "status": "error",
                "response": {"reason": "IncreaseConnectionPool: Please increase your connection pool size"},
            }
            # The socket lives on: the same join succeeds once a connection is free.
            assert (await socket.join("realtime:items", changes))["status"] == "ok"
        finally:
            await socket.close()


async def _backend_running(dsn: str, needle: str) -> int:
    """The pid of the server backend running a statement containing `needle`."""
    deadline = time.monotonic() + 5
    with psycopg.connect(dsn, autocommit=True) as owner:
        while time.monotonic() < deadline:
            row = owner.execute(
                "select pid from pg_stat_activity where state = 'active' and query like %s "
                "and pid <> pg_backend_pid()",
                (f"%{needle}%",),
            ).fetchone()
            if row:
                return int(row[0])
            await asyncio.sleep(0.02)
    raise AssertionError(f"no backend ran {needle!r}")


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("select pg_terminate_backend(%s)", (pid,))


async def test_a_backend_killed_mid_request_is_a_clean_503(api: Client, dsn: str) -> None:
    request = asyncio.create_task(api.post("/rest/v1/rpc/nap", json={"seconds": 5}, headers=ANON))
    _terminate(dsn, await _backend_running(dsn, "nap"))
    response = await asyncio.wait_for(request, timeout=5)
    assert response.status == 503
    assert response.headers["Content-Type"].startswith("application/json")
    assert await response.json() == {
        "code": "PGRST001",
        "message": "Database client error. Retrying the connection.",
        "details": None,
        "hint": None,
    }
    # The pool drops the dead connection; the next request gets a live one.
    assert (await api.get("/rest/v1/items", headers=ANON)).status == 200
