"""Security test support (a pytest plugin): apps with chosen limits, tokens, `fluxbase serve` in a
guarded runner, and the resident memory of a process."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.config import Config, RateLimitConfig, SecurityConfig
from fluxbase.http_server import GuardedAppRunner
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, make_config

Client = TestClient  # type: ignore[type-arg]
StartApp = Callable[[Config], Awaitable[Client]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Nightly tests (long attacks) run only under `make test-nightly` (FLUXBASE_NIGHTLY=1)."""
    if os.environ.get("FLUXBASE_NIGHTLY") == "1":
        return
    skip = pytest.mark.skip(reason="nightly: run with make test-nightly")
    for item in items:
        if item.get_closest_marker("nightly") is not None:
            item.add_marker(skip)


def user_token(sub: str | None = None, secret: str = JWT_SECRET) -> str:
    claims = {
        "sub": sub or str(uuid.uuid4()),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def limited_config(dsn: str, **rate_limit: object) -> Config:
    """A test configuration with the request tiers on, at the limits given."""
    limits = RateLimitConfig(enabled=True, **rate_limit)  # type: ignore[arg-type]
    return make_config(dsn, security=SecurityConfig(rate_limit=limits))


def with_server(config: Config, **server: object) -> Config:
    return dataclasses.replace(config, server=dataclasses.replace(config.server, **server))  # type: ignore[arg-type]


@pytest.fixture
async def start_app() -> AsyncIterator[StartApp]:
    """Starts apps (in this process, through aiohttp's test server) with the test's configuration."""
    clients: list[Client] = []

    async def factory(config: Config) -> Client:
        app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def guarded() -> AsyncIterator[Callable[[Config], Awaitable[str]]]:
    """Serves an app through `fluxbase serve`'s runner (header timeouts, parser limits) on 127.0.0.1."""
    runners: list[web.AppRunner] = []

    async def factory(config: Config) -> str:
        app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
        runner = GuardedAppRunner(app, config.server)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # the asyncio server: the port the kernel chose
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield factory
    for runner in runners:
        await runner.cleanup()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def rss_kib(pid: int) -> int:
    """The resident set size of a process, in KiB (Linux /proc)."""
    return _status_kib(pid, "VmRSS")


def peak_kib(pid: int) -> int:
    """The highest resident set size the process ever had, in KiB: catches a growth already undone."""
    return _status_kib(pid, "VmHWM")
