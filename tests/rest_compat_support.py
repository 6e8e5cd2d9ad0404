"""Test support for issue 11's data API checks (a pytest plugin): the compat fixture database.

tests/fixtures/rest_compat_schema.sql loaded once per module; `compat_start(**api_settings)`
serves the data API on it with some api.* settings changed, `compat` with the defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer, make_config
from rest_support import ANON, Client

FIXTURE = ROOT / "tests" / "fixtures" / "rest_compat_schema.sql"
Start = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="module")
def compat_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("compat")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())  # type: ignore[arg-type]
    return dsn


@pytest.fixture
async def compat_start(compat_dsn: str) -> AsyncIterator[Start]:
    """Starts the data API on the fixture database, some api.* settings changed if given."""
    clients: list[Client] = []

    async def started(**api_settings: object) -> Client:
        config = make_config(compat_dsn)
        config = dataclasses.replace(config, api=dataclasses.replace(config.api, **api_settings))
        client = TestClient(TestServer(build_app(config, Runtime(compat_dsn, AUTHENTICATOR_PASSWORD))))
        await client.start_server()
        clients.append(client)
        return client

    yield started
    for client in clients:
        await client.close()


@pytest.fixture
async def compat(compat_start: Start) -> Client:
    return await compat_start()


async def get(api: Client, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    response = await api.get("/rest/v1/" + path, headers={**ANON, **(headers or {})})
    raw = await response.read()
    return response.status, orjson.loads(raw) if raw else None, response.headers
