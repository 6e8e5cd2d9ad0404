"""Issue 10's standing matrix: WebSocket abuse on /realtime/v1. Garbage and binary frames, oversized
frames and topics, join floods past the cap and joins aimed at internal schemas are each refused
cleanly, and the server keeps serving everyone else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from realtime_support import SERVICE_KEY, RawSocket, Served, open_socket, serve

CAP = 5
FRAME_LIMIT = 64 * 1024


@pytest.fixture
async def capped(realtime_dsn: str) -> AsyncIterator[Served]:
    async for item in serve(realtime_dsn, max_subscriptions_per_socket=CAP, max_message_size=FRAME_LIMIT):
        yield item


async def heartbeat_answers(socket: RawSocket) -> bool:
    ref = await socket.push("phoenix", "heartbeat", {})
    return (await socket.reply(ref, timeout=5))["status"] == "ok"


async def others_still_served(served: Served, http: aiohttp.ClientSession) -> None:
    other = await open_socket(http, served.ws_url())
    try:
        assert await heartbeat_answers(other)
        joined = await other.join(
            "realtime:items", {"postgres_changes": [{"event": "*", "schema": "public", "table": "items"}]}
        )
        assert joined["status"] == "ok", joined
    finally:
        await other.close()


async def test_garbage_and_binary_frames_are_dropped_and_the_socket_lives(capped: Served) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await open_socket(http, capped.ws_url())
        garbage = [
            "",
            "not json",
            "{",
            "[]",
            '["1", "1", "realtime:x", "phx_join"]',  # a 2.0.0 array on a 1.0.0 socket
            "{}",
            '{"topic": 1, "event": [], "payload": "x", "ref": {}}',
            '{"topic": "realtime:x", "event": "phx_join", "payload": [], "ref": "g"}',
            '{"topic": "realtime:x", "event": "phx_join", "payload": {"config": "x"}, "ref": "g"}',
            '{"topic": "realtime:x", "event": "phx_join", "payload": {"config": {"postgres_changes": {}}},'
            ' "ref": "g"}',
            "[" * 10_000 + "]" * 10_000,
            '{"a":' * 5_000 + "1" + "}" * 5_000,
            "\x00\x01\x02",
            '"\\ud800"',
        ]
        for frame in garbage:
            await socket.ws.send_str(frame)
        for frame in (b"\x00", b"\x03\x01\x01xx", bytes(range(256)), b"\xff" * 1000):
            await socket.ws.send_bytes(frame)
        assert await heartbeat_answers(socket)
        assert not socket.ws.closed
        await socket.close()
        await others_still_served(capped, http)


async def test_a_frame_over_the_limit_closes_only_that_socket(capped: Served) -> None:
    async with aiohttp.ClientSession() as http:
        bystander = await open_socket(http, capped.ws_url())
        socket = await open_socket(http, capped.ws_url())
        await socket.ws.send_str(
            '{"topic": "phoenix", "event": "heartbeat", "payload": {"x": "'
            + "x" * (FRAME_LIMIT * 2)
            + '"}, "ref": "big"}'
        )
        assert socket.task is not None
        await socket.task  # the server ends the socket (1009) rather than buffering on
        assert socket.ws.closed
        assert await heartbeat_answers(bystander)
        await bystander.close()
        await others_still_served(capped, http)


async def test_huge_topic_names_are_refused(capped: Served) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await open_socket(http, capped.ws_url())
        reply = await socket.join("realtime:" + "t" * 30_000, {})
        assert reply["status"] == "error", {k: str(v)[:200] for k, v in reply.items()}
        assert "topic is longer than 255 bytes" in reply["response"]["reason"]
        # The limit is the binary protocol's one-byte length, counted in UTF-8 bytes.
        assert (await socket.join("realtime:" + "t" * (255 - 9), {}))["status"] == "ok"
        assert (await socket.join("realtime:" + "é" * 124, {}))["status"] == "error"
        assert await heartbeat_answers(socket)
        await socket.close()
        await others_still_served(capped, http)


async def test_a_join_flood_stops_at_the_channel_cap(capped: Served) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await open_socket(http, capped.ws_url())
        statuses = [(await socket.join(f"realtime:flood-{i}", {}))["status"] for i in range(CAP * 4)]
        assert statuses.count("ok") <= CAP and statuses[:CAP] == ["ok"] * CAP, statuses
        assert set(statuses[CAP:]) == {"error"}, statuses
        assert await heartbeat_answers(socket)
        await socket.close()
        await others_still_served(capped, http)


INTERNAL = [
    ("auth", "users"),
    ("auth", "refresh_tokens"),
    ("auth", "sessions"),
    ("auth", "*"),
    ("dashboard", "api_keys"),
    ("dashboard", "*"),
    ("storage", "objects"),
    ("storage", "buckets"),
    ("realtime", "subscription"),
    ("audit", "record_changes"),
    ("pg_catalog", "pg_authid"),
    ("information_schema", "tables"),
]


@pytest.mark.parametrize("key", ["anon", "service"])
async def test_joins_to_internal_schemas_are_refused(capped: Served, key: str) -> None:
    url = capped.ws_url() if key == "anon" else capped.ws_url(SERVICE_KEY)
    async with aiohttp.ClientSession() as http:
        socket = await open_socket(http, url)
        for schema, table in INTERNAL:
            binding = {"event": "*", "schema": schema, "table": table}
            reply = await socket.join(f"realtime:{schema}-{table}", {"postgres_changes": [binding]})
            assert reply["status"] == "error", (schema, table, reply)
        assert await heartbeat_answers(socket)
        await socket.close()
        await others_still_served(capped, http)
