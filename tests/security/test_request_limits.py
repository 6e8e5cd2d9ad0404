"""Limits in the web layer (issue 10, item 2): body size, JSON depth, URL, headers, frames, lost database.

Every bad input answers a 4xx with a JSON code and message, never a 500 and never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.config import Config, RealtimeConfig
from fluxbase.errors import error_middleware
from fluxbase.security.api_keys import api_key
from fluxbase.security.request_limits import json_too_deep
from harness import JWT_SECRET, make_config
from security_support import StartApp, with_server

ANON = {"apikey": api_key(JWT_SECRET, "anon")}
BROADCAST = "/realtime/v1/api/broadcast"
Guarded = Callable[[Config], Awaitable[str]]


def deep(levels: int) -> bytes:
    return b'{"messages": ' + b"[" * levels + b"]" * levels + b"}"


async def assert_json_error(response: aiohttp.ClientResponse, status: int, code: str) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["code"] == code and body["message"]


@pytest.mark.parametrize("path", [BROADCAST, "/auth/v1/signup", "/rest/v1/rpc/anything", "/auth/v1/token"])
async def test_100000_deep_json_is_a_400(
    start_app: StartApp, migrated_dsn: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start_app(make_config(migrated_dsn))
    headers = {**ANON, "Content-Type": "application/json"}
    # Auth bodies stop at 64 KiB (a larger one is a 413): as deep as fits there.
    levels = 30_000 if path.startswith("/auth/") else 100_000
    response = await client.post(path, data=deep(levels), headers=headers)
    await assert_json_error(response, 400, "json_too_deep")
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's mistake"


async def test_unbalanced_deep_json_is_refused_too(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(make_config(migrated_dsn))
    headers = {**ANON, "Content-Type": "application/json"}
    response = await client.post(BROADCAST, data=b"[" * 100_000, headers=headers)
    assert response.status == 400


async def test_ordinary_json_passes(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(make_config(migrated_dsn))
    # Nested a few levels, brackets inside strings: the handler gets it (and answers 202).
    message = {"topic": "room", "event": "e", "payload": {"a": [[{"b": "[[[[" * 500}]]}}
    response = await client.post(BROADCAST, json={"messages": [message]}, headers=ANON)
    assert response.status == 202, await response.text()


def test_depth_check() -> None:
    assert not json_too_deep(b'{"a": [1, 2, {"b": [3]}]}', 4)
    assert json_too_deep(b'{"a": [1, 2, {"b": [3]}], "c": [[]]}', 3)
    assert not json_too_deep(b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"]]]]]]]]"]', 3)
    assert json_too_deep(b"[" * 70 + b"]" * 70, 64)
    assert not json_too_deep(b"[" * 64 + b"]" * 64, 64)
    assert json_too_deep(b"[" * 100_000, 64)


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    start_app: StartApp, migrated_dsn: str
) -> None:
    client = await start_app(with_server(make_config(migrated_dsn), body_limit=4096))
    big = b'{"email": "' + b"a" * 10_000 + b'"}'
    response = await client.post("/auth/v1/token?grant_type=password", data=big, headers=ANON)
    await assert_json_error(response, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(100):
            yield b"a" * 1024

    response = await client.post("/auth/v1/token?grant_type=password", data=chunks(), headers=ANON)
    await assert_json_error(response, 413, "payload_too_large")
    # Under the limit, the handler reads the same bytes the limit check read (and still sees a body).
    response = await client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "nobody@example.com", "password": "wrong password"},
        headers=ANON,
    )
    assert response.status == 400 and (await response.json())["error_code"] == "invalid_credentials"


def send_until_answered(url: str, head: bytes) -> tuple[bytes, int, str]:
    """Sends a 128 MiB body as curl does, watching for an early answer; then reads to the end.

    Returns the answer, the bytes the kernel took before it, and how the connection ended."""
    host, port = url.removeprefix("http://").split(":")
    piece, sent, answer = b"a" * 65536, 0, b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        deadline = time.monotonic() + 10
        while not answer and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                answer = sock.recv(65536)
            elif writable:
                sent += sock.send(piece)
        sock.settimeout(5)
        try:
            while data := sock.recv(65536):
                answer += data
            ending = "eof"
        except ConnectionResetError:
            ending = "reset"
    return answer, sent, ending


async def test_a_refused_body_is_not_read_and_its_answer_arrives_whole(
    guarded: Guarded, migrated_dsn: str
) -> None:
    """A body refused by its Content-Length is not read at all (reading it would cost the CPU
    that serves everyone else), and the connection ends with the answer and a FIN rather than a
    reset, which can destroy the answer in the client's kernel before the client reads it."""
    url = await guarded(make_config(migrated_dsn))
    head = (
        b"POST /auth/v1/token?grant_type=password HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 134217728\r\n\r\n"
    )
    for _ in range(5):
        answer, _sent, ending = await asyncio.to_thread(send_until_answered, url, head)
        assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer, answer[:300]
        assert ending == "eof", "the connection was reset after the answer"
        assert b"Connection: close" in answer


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/auth/v1/token?grant_type=password", 64 * 1024),
        ("/auth/v1/signup", 64 * 1024),
        ("/dashboard/auth/login", 1024 * 1024),
        ("/api/v1/admin/api-keys", 1024 * 1024),
    ],
)
async def test_json_apis_keep_their_small_limits_under_the_runbooks_2_gb_body_limit(
    start_app: StartApp, migrated_dsn: str, path: str, limit: int
) -> None:
    """deploy/fluxbase.yaml allows 2 GB bodies (for storage): auth, dashboard and admin bodies are
    still refused at their own limit while they are read, never buffered up to 2 GB first."""
    client = await start_app(with_server(make_config(migrated_dsn), body_limit=2**31))

    async def four_mib() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it by
        for _ in range(64):
            yield b" " * (64 * 1024)

    headers = {**ANON, "Content-Type": "application/json"}
    response = await client.post(path, data=four_mib(), headers=headers)
    await assert_json_error(response, 413, "payload_too_large")
    assert f"limit of {limit} bytes" in (await response.json())["message"]


async def test_a_long_url_is_a_414(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(with_server(make_config(migrated_dsn), max_url_length=1024))
    response = await client.get("/rest/v1/items?select=" + "a" * 2000, headers=ANON)
    await assert_json_error(response, 414, "uri_too_long")


async def test_a_lost_database_connection_is_a_503_not_a_500() -> None:
    """asyncpg's InternalClientError (seen after a killed backend) reaching the last resort."""

    async def broken(request: web.Request) -> web.Response:
        raise asyncpg.exceptions.InternalClientError("protocol state after a killed backend")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/broken")
        await assert_json_error(response, 503, "database_unavailable")
        assert response.headers["Retry-After"] == "1"


async def test_an_oversized_websocket_frame_closes_the_socket(start_app: StartApp, migrated_dsn: str) -> None:
    config = dataclasses.replace(make_config(migrated_dsn), realtime=RealtimeConfig(max_message_size=4096))
    client = await start_app(config)
    ws = await client.ws_connect(f"/realtime/v1/websocket?apikey={ANON['apikey']}&vsn=1.0.0")
    await ws.send_str('{"topic": "phoenix", "event": "heartbeat", "payload": {"x": "' + "a" * 10_000 + '"}}')
    message = await ws.receive(timeout=5)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await ws.close()


# ---------------------------------------------------------------------------------------------
# The connection layer of `fluxbase serve` (GuardedAppRunner): the parser's limits and timeouts


async def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, b"uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431, b"headers_too_large"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",
            431,
            b"too_many_headers",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, b"bad_request"),
    ],
)
async def test_heads_the_parser_refuses_answer_json(
    guarded: Guarded,
    migrated_dsn: str,
    request_bytes: bytes,
    status: int,
    code: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = with_server(make_config(migrated_dsn), max_url_length=2048, max_headers=30, max_header_size=4096)
    url = await guarded(config)
    answer = await raw_exchange(url, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer
    assert b"application/json" in head and code in body
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a client's mistake"


async def test_slow_loris_connections_are_closed(guarded: Guarded, migrated_dsn: str) -> None:
    """200 connections each trickling a request head, one byte at a time: all cut off, others served."""
    config = with_server(make_config(migrated_dsn), header_read_timeout=1.0, idle_timeout=30.0)
    url = await guarded(config)
    host, port = url.removeprefix("http://").split(":")
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(200)]
    started = asyncio.get_running_loop().time()
    closed = [False] * len(connections)
    try:
        for step in range(16):  # bounded: 16 bytes at 0.3 s, about 5 s
            for i, (reader, writer) in enumerate(connections):
                if closed[i]:
                    continue
                if reader.at_eof() or writer.is_closing():
                    closed[i] = True
                    continue
                try:
                    writer.write(head[step : step + 1])
                except (ConnectionError, RuntimeError):
                    closed[i] = True
            if step == 1:  # meanwhile an ordinary client is served at once
                async with aiohttp.ClientSession() as session, session.get(url + "/health") as response:
                    assert response.status == 200
            if all(closed):
                break
            await asyncio.sleep(0.3)
        for i, (reader, _) in enumerate(connections):
            if not closed[i]:
                closed[i] = await asyncio.wait_for(reader.read(1), 1) == b""
        assert all(closed), f"{closed.count(False)} connections still open"
        assert asyncio.get_running_loop().time() - started < 6
    finally:
        for _, writer in connections:
            writer.close()


async def test_idle_keep_alive_connections_are_closed(guarded: Guarded, migrated_dsn: str) -> None:
    url = await guarded(with_server(make_config(migrated_dsn), idle_timeout=1.0))
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.read(15), 5)  # the body
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert asyncio.get_running_loop().time() - started < 3
    writer.close()


async def test_a_streaming_route_opts_into_its_own_limit() -> None:
    """Storage-style uploads: a route marked streams_body reads past the JSON limit, up to its own."""
    from fluxbase.config import ServerConfig
    from fluxbase.security.request_limits import read_stream, request_limits_middleware, streams_body

    @streams_body(lambda request: 20_000)
    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in read_stream(request):
            size += len(chunk)
        return web.json_response({"size": size})

    app = web.Application(
        middlewares=[error_middleware, request_limits_middleware(ServerConfig(body_limit=4096))],
        client_max_size=4096,
    )
    app.router.add_post("/upload", upload)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/upload", data=b"x" * 15_000)
        assert response.status == 200 and (await response.json())["size"] == 15_000
        await assert_json_error(await client.post("/upload", data=b"x" * 30_000), 413, "payload_too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while streaming
            for _ in range(40):
                yield b"x" * 1024

        await assert_json_error(await client.post("/upload", data=chunks()), 413, "payload_too_large")
