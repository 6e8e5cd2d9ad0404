"""The data API's test support (a pytest plugin): keys, user tokens, the fixture database, a client."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import jwt
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, ROOT, PostgresServer, make_config

Client = TestClient  # type: ignore[type-arg]
ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000002"
ANON = {"apikey": api_key(JWT_SECRET, "anon")}
SERVICE = {"apikey": api_key(JWT_SECRET, "service_role")}


def user(sub: str) -> dict[str, str]:
    token = jwt.encode(
        {"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + 600},
        JWT_SECRET,
        algorithm="HS256",
    )
    return {**ANON, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def rest_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("rest")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((ROOT / "tests" / "fixtures" / "rest_schema.sql").read_text())  # type: ignore[arg-type]
    return dsn


@pytest.fixture
async def api(rest_dsn: str) -> AsyncIterator[Client]:
    config = make_config(rest_dsn)
    app = build_app(config, Runtime(rest_dsn, AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def api_with(rest_dsn: str) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Starts the data API with some api.* settings changed: `await api_with(max_rows=2)`."""
    clients: list[Client] = []

    async def start(**api_settings: object) -> Client:
        config = make_config(rest_dsn)
        config = dataclasses.replace(config, api=dataclasses.replace(config.api, **api_settings))
        client = TestClient(TestServer(build_app(config, Runtime(rest_dsn, AUTHENTICATOR_PASSWORD))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
