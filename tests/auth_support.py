"""Auth test support (a pytest plugin): a real SMTP server (aiosmtpd) and the app with auth settings."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller

from fluxbase.app import Runtime, build_app
from fluxbase.config import AuthConfig, SecurityConfig, SmtpConfig
from harness import AUTHENTICATOR_PASSWORD, free_port, make_config

Client = TestClient  # type: ignore[type-arg]
LINK = re.compile(r"https?://\S+/auth/v1/verify\?\S+")
CODE = re.compile(r"code: ([0-9]{6})\b")


class Inbox:
    """What the SMTP server received, readable from the test's thread."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.to(address)
            if len(received) >= count:
                return received[count - 1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail number {count} for {address} within {timeout}s")

    async def link_for(self, address: str, count: int = 1) -> str:
        message = await self.wait_for(address, count)
        body = message.get_body(("plain",))
        assert body is not None
        match = LINK.search(body.get_content())
        assert match, body.get_content()
        return match.group(0)

    async def code_for(self, address: str, count: int = 1) -> str:
        """The 6-digit code in the mail (the default templates' `Or enter this code: 123456`)."""
        message = await self.wait_for(address, count)
        body = message.get_body(("plain",))
        assert body is not None
        match = CODE.search(body.get_content())
        assert match, body.get_content()
        return match.group(1)


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def auth_config(dsn: str, smtp_port: int | None, **auth: Any) -> Any:
    config = make_config(dsn)
    smtp = SmtpConfig(host="127.0.0.1", port=smtp_port, tls="none") if smtp_port else SmtpConfig()
    settings: dict[str, Any] = {"jwt_secret": config.auth.jwt_secret, "smtp": smtp, **auth}
    return dataclasses.replace(config, auth=AuthConfig(**settings))


@pytest.fixture
async def auth_app(
    migrated_dsn: str, smtp: tuple[Inbox, int]
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Starts the app with some auth.* settings: `await auth_app(autoconfirm=True)`."""
    clients: list[Client] = []

    async def start(
        *, with_smtp: bool = True, dsn: str | None = None, security: SecurityConfig | None = None, **auth: Any
    ) -> Client:
        config = auth_config(dsn or migrated_dsn, smtp[1] if with_smtp else None, **auth)
        if security is not None:  # e.g. trusted_proxies, to send requests from several client IPs
            config = dataclasses.replace(config, security=security)
        # Links in mail are built from server.base_url: it must be where this server listens.
        port = free_port()
        config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, base_url=f"http://127.0.0.1:{port}")
        )
        app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
        client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
