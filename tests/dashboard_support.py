"""Dashboard test support (a pytest plugin): a database per module (first-admin signup), the app, logins."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pyotp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.config import DashboardConfig, RateLimitConfig, SmtpConfig
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, PostgresServer, make_config

Client = TestClient  # type: ignore[type-arg]
PASSWORD = "SecurePassword123!"
RUNBOOK_SIGNUP = {"email": "admin@example.com", "password": PASSWORD, "full_name": "Admin User"}
TEST_DASHBOARD = DashboardConfig(bcrypt_cost=10, lockout_max_failures=3, sign_in_attempts=1000)


@pytest.fixture(scope="module")
def dashboard_dsn(postgres: PostgresServer) -> Iterator[str]:
    """A migrated database for one test module: the first-admin rule needs an empty dashboard.users."""
    dsn = postgres.create_database("dashboard")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    yield dsn
    postgres.drop_database(dsn)


@pytest.fixture
async def dashboard_app(dashboard_dsn: str) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Starts the app on the module's database: `await dashboard_app(lockout_max_failures=2)`."""
    clients: list[Client] = []

    async def start(
        *,
        dsn: str | None = None,
        smtp_port: int | None = None,
        rate_limit: RateLimitConfig | None = None,
        **settings: Any,
    ) -> Client:
        config = make_config(dsn or dashboard_dsn)
        if rate_limit is not None:
            security = dataclasses.replace(config.security, rate_limit=rate_limit)
            config = dataclasses.replace(config, security=security)
        config = dataclasses.replace(config, dashboard=dataclasses.replace(TEST_DASHBOARD, **settings))
        if smtp_port is not None:
            smtp = SmtpConfig(host="127.0.0.1", port=smtp_port, tls="none")
            config = dataclasses.replace(config, auth=dataclasses.replace(config.auth, smtp=smtp))
        app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def create_admin(dsn: str, email: str, password: str = PASSWORD, role: str = "dashboard_admin") -> str:
    """An administrator made as `fluxbase admin create` makes one (the owner calls dashboard.create_user)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select user_id::text, error from dashboard.create_user(%s, %s, 'Test', %s, 10)",
            (email, password, role),
        ).fetchone()
    assert row is not None and row[1] is None, row
    return str(row[0])


async def login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/dashboard/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_at(secret: str, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.at(int(time.time()) + 30 * offset_steps)
