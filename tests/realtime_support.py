"""Realtime's test support (a pytest plugin): a database with realtime tables, a served app, a raw socket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.config import RealtimeConfig
from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, PostgresServer, make_config

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000002"
ANON_KEY = api_key(JWT_SECRET, "anon")
SERVICE_KEY = api_key(JWT_SECRET, "service_role")

SCHEMA = """
create table public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null,
  title text,
  secret text
);
alter table public.notes enable row level security;
create policy notes_owner_reads on public.notes for select to authenticated using (owner = auth.uid());
-- `secret` is not granted: subscribers must never receive it.
grant select (id, owner, title) on public.notes to authenticated;

create table public.items (id bigint primary key, n integer, label text);
grant select on public.items to anon, authenticated;

create table public.wide (id integer primary key, blob text);
grant select on public.wide to anon, authenticated;

create table public.quiet (id integer primary key);
grant select on public.quiet to anon, authenticated;

select realtime.enable('public.notes');
select realtime.enable('public.items');
select realtime.enable('public.wide');
"""


def user_token(sub: str, lifetime: int = 600) -> str:
    return jwt.encode(
        {"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + lifetime},
        JWT_SECRET,
        algorithm="HS256",
    )


@pytest.fixture(scope="module")
def realtime_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("realtime", icu_locale="en-US")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
    return dsn


@dataclass
class Served:
    """A running app on a real port, plus the owner's DSN for writing rows."""

    server: TestServer
    dsn: str
    app: web.Application

    @property
    def http_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def ws_url(self, key: str = ANON_KEY, vsn: str = "1.0.0") -> str:
        return f"{self.http_url}/realtime/v1/websocket?apikey={key}&vsn={vsn}"

    def sql(self, statement: str, *params: Any) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement, params or None)  # type: ignore[arg-type]


async def serve(dsn: str, auth: dict[str, Any] | None = None, **realtime: Any) -> AsyncIterator[Served]:
    """The app on a free port, with some realtime.* (keywords) and auth.* (`auth`) settings."""
    config = make_config(dsn)
    config = dataclasses.replace(
        config,
        realtime=dataclasses.replace(RealtimeConfig(), **realtime),
        auth=dataclasses.replace(config.auth, **(auth or {})),
        database=dataclasses.replace(config.database, max_connections=10),
    )
    app = build_app(config, Runtime(dsn, AUTHENTICATOR_PASSWORD))
    server = TestServer(app)
    await server.start_server()
    try:
        yield Served(server, dsn, app)
    finally:
        await server.close()


@pytest.fixture
async def served(realtime_dsn: str) -> AsyncIterator[Served]:
    async for item in serve(realtime_dsn):
        yield item


@dataclass
class RawSocket:
    """A minimal Phoenix vsn 1.0.0 client: send pushes, wait for messages by event and topic."""

    ws: aiohttp.ClientWebSocketResponse
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    ref: int = 0
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                await self.inbox.put(json.loads(frame.data))

    async def push(self, topic: str, event: str, payload: dict[str, Any], join_ref: str | None = None) -> str:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send_str(
            json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref})
        )
        return ref

    async def expect(self, event: str, topic: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            message = await asyncio.wait_for(self.inbox.get(), timeout=max(remaining, 0.01))
            if message["event"] == event and (topic is None or message["topic"] == topic):
                return message

    async def reply(self, ref: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message = await self.expect("phx_reply", timeout=timeout)
            if message["ref"] == ref:
                return dict(message["payload"])

    async def join(
        self, topic: str, config: dict[str, Any], access_token: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"config": config}
        if access_token:
            payload["access_token"] = access_token
        ref = await self.push(topic, "phx_join", payload, join_ref=str(self.ref + 1))
        return await self.reply(ref)

    async def changes(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        while len(received) < count:
            try:
                message = await self.expect("postgres_changes", timeout=timeout)
            except TimeoutError:
                raise AssertionError(f"got {len(received)} of {count} changes: {received[-3:]}") from None
            received.append(message["payload"])
        return received

    async def quiet(self, event: str = "postgres_changes", wait: float = 1.0) -> list[dict[str, Any]]:
        """Everything of `event` that arrives within `wait` seconds (expected: nothing)."""
        seen = []
        with_deadline = asyncio.get_running_loop().time() + wait
        while (left := with_deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await asyncio.wait_for(self.inbox.get(), timeout=left)
            except TimeoutError:
                break
            if message["event"] == event:
                seen.append(message)
        return seen

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await self.task


async def open_socket(session: aiohttp.ClientSession, url: str) -> RawSocket:
    ws = await session.ws_connect(url)
    socket = RawSocket(ws)
    socket.task = asyncio.create_task(socket._read())
    return socket
