"""The realtime benchmark's subscriber (tests/perf/realtime_client.py) reads frames as RFC 6455 says.

It parses the server's frames itself, so these feed it bytes: fragmented messages with a ping
between the fragments, frames split at every byte, close, and what a server must not send. Its
fast path must agree with the full parse on the server's own encoding of a change push, and
must be the path that encoding takes (or the benchmark measures a slower client than it says).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import sys
from pathlib import Path

import orjson
import pytest

from fluxbase.realtime import messages, phoenix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "perf"))
import realtime_client as client  # the benchmark's subscriber

COLUMNS = [("id", "int8"), ("kind", "int4"), ("stamped", "float8"), ("body", "text")]


def change_push(ids: list[int], record: dict[str, object], *, table: str = client.TABLE) -> bytes:
    """A change push exactly as the server encodes it."""
    data = messages.postgres_change_data(
        schema="public",
        table=table,
        commit_timestamp=messages.format_commit_timestamp(datetime.datetime.now(datetime.UTC)),
        change_type="INSERT",
        columns=COLUMNS,
        record=record,
    )
    return bytes(messages.postgres_changes_frame(client.TOPIC, ids, phoenix.json_bytes(data), "2.0.0").data)


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked server frame."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return bytes((first, len(payload))) + payload
    return bytes((first, 126)) + len(payload).to_bytes(2, "big") + payload


def unmask(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of a client frame, checking that it is masked and final."""
    assert frame[0] & 0x80 and frame[1] & 0x80
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    key, body = frame[offset : offset + 4], frame[offset + 4 :]
    assert len(body) == length
    return frame[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def joined_subscriber(binding_id: int = 42) -> tuple[client.Subscriber, Transport, client.Tally]:
    """A subscriber past the upgrade and the join reply, as the server would answer them."""
    tally = client.Tally()
    subscriber = client.Subscriber(tally, "127.0.0.1", 1, "/realtime/v1/websocket?vsn=2.0.0", "jwt", False)
    transport = Transport()
    subscriber.connection_made(transport)  # type: ignore[arg-type]
    accept = base64.b64encode(hashlib.sha1(subscriber.key + client.WS_GUID).digest())  # noqa: S324
    subscriber.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    opcode, join = unmask(transport.written[-1])
    assert opcode == client.OP_TEXT
    join_ref, ref, topic, event, payload = orjson.loads(join)
    assert (join_ref, ref, topic, event) == ("1", "1", client.TOPIC, "phx_join")
    assert payload["access_token"] == "jwt"
    binding = {**payload["config"]["postgres_changes"][0], "id": binding_id}
    reply = [
        "1",
        "1",
        client.TOPIC,
        "phx_reply",
        {"status": "ok", "response": {"postgres_changes": [binding]}},
    ]
    subscriber.data_received(server_frame(client.OP_TEXT, orjson.dumps(reply)))
    await asyncio.wait_for(subscriber.joined, 1)
    return subscriber, transport, tally


@pytest.mark.parametrize(
    ("ids", "record"),
    [
        ([42], {"id": 1, "kind": 1, "stamped": 1764612345.123456, "body": None}),
        ([7, 42, 9], {"id": 99, "kind": -3, "stamped": 1.5e9, "body": 'a "quoted", ] body}'}),
    ],
)
def test_the_fast_path_reads_the_servers_encoding_as_the_full_parse_does(
    ids: list[int], record: dict[str, object]
) -> None:
    push = change_push(ids, record)
    fast = client.parse_change(push, b"42")
    assert fast is not None, "the server's encoding no longer takes the fast path"
    assert fast == client.check_change(orjson.loads(push), 42) == (record["id"], record["stamped"])


@pytest.mark.parametrize(
    "push",
    [
        change_push([4, 420], {"id": 1, "kind": 1, "stamped": 1.0, "body": None}),  # not our binding
        change_push([42], {"id": 1, "kind": 1, "stamped": 1.0, "body": None}, table="other"),
        change_push([42], {"id": 1, "kind": 1, "stamped": 1.0, "body": None}).replace(
            b'"INSERT"', b'"UPDATE"'
        ),
        change_push([42], {"id": 1, "kind": 1, "stamped": 1.0, "body": None}).replace(
            b'"errors":null', b'"errors":["Error 401: Unauthorized"]'
        ),
        change_push([42], {"id": 1, "kind": 1, "stamped": 1.0, "body": None}).replace(
            b'"realtime:bench"', b'"realtime:other"'
        ),
    ],
)
def test_a_push_that_is_not_this_subscribers_insert_counts_for_neither_path(push: bytes) -> None:
    assert client.parse_change(push, b"42") is None
    assert client.check_change(orjson.loads(push), 42) is None


async def test_fragments_with_a_ping_between_them_split_at_every_byte() -> None:
    subscriber, transport, tally = await joined_subscriber()
    push = change_push([42], {"id": 7, "kind": 1, "stamped": 1.0, "body": "x" * 300})
    stream = (
        server_frame(client.OP_TEXT, push[:100], fin=False)
        + server_frame(client.OP_PING, b"are you there")
        + server_frame(client.OP_CONTINUATION, push[100:250], fin=False)
        + server_frame(client.OP_CONTINUATION, push[250:])
        + server_frame(client.OP_TEXT, push)  # the same row again: a duplicate
    )
    for i in range(len(stream)):
        subscriber.data_received(stream[i : i + 1])
    assert list(subscriber.received) == [7]
    assert tally.duplicates == 1 and tally.wrong == 0
    assert unmask(transport.written[-1]) == (client.OP_PONG, b"are you there")


async def test_a_push_for_another_binding_is_wrong_not_received() -> None:
    subscriber, _transport, tally = await joined_subscriber()
    subscriber.data_received(
        server_frame(client.OP_TEXT, change_push([41], {"id": 7, "kind": 1, "stamped": 1.0, "body": None}))
    )
    assert subscriber.received == {} and tally.wrong == 1


async def test_the_server_closing_is_answered_and_counted() -> None:
    subscriber, transport, tally = await joined_subscriber()
    subscriber.data_received(server_frame(client.OP_CLOSE, (1001).to_bytes(2, "big") + b"going away"))
    assert unmask(transport.written[-1]) == (client.OP_CLOSE, (1001).to_bytes(2, "big"))
    assert transport.closed and subscriber.closed and tally.closed == 1


async def test_our_own_close_is_not_counted_as_the_servers() -> None:
    subscriber, transport, tally = await joined_subscriber()
    subscriber.close()
    assert unmask(transport.written[-1]) == (client.OP_CLOSE, (1000).to_bytes(2, "big"))
    subscriber.data_received(server_frame(client.OP_CLOSE, (1000).to_bytes(2, "big")))
    assert transport.closed and tally.closed == 0


@pytest.mark.parametrize(
    "frame",
    [
        bytes((0x81, 0x80 | 2)) + b"\x00\x00\x00\x00{}",  # masked by the server
        bytes((0x81 | 0x40, 2)) + b"{}",  # RSV1 without permessage-deflate
        server_frame(client.OP_CONTINUATION, b"{}"),  # continuation without a start
        server_frame(client.OP_PING, b"", fin=False),  # fragmented control frame
        server_frame(0x3, b"{}"),  # reserved opcode
    ],
)
async def test_what_a_server_must_not_send_fails_the_socket(frame: bytes) -> None:
    subscriber, transport, tally = await joined_subscriber()
    subscriber.data_received(frame)
    assert subscriber.closed and transport.closed and tally.errors


async def test_an_upgrade_refused_fails_the_join_with_the_servers_answer() -> None:
    tally = client.Tally()
    subscriber = client.Subscriber(tally, "127.0.0.1", 1, "/", "jwt", True)
    subscriber.connection_made(Transport())  # type: ignore[arg-type]
    subscriber.data_received(b'HTTP/1.1 429 Too Many Requests\r\nContent-Length: 9\r\n\r\n{"x":"y"}')
    with pytest.raises(client.ProtocolError, match="429"):
        await asyncio.wait_for(subscriber.joined, 1)


def test_client_frames_are_masked_and_unmask_to_the_payload() -> None:
    for size in (0, 5, 125, 126, 70_000):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        frame = client.mask_frame(client.OP_TEXT, payload)
        assert frame[1] & 0x80
        if size >= 1 << 16:
            assert frame[1] & 0x7F == 127
            assert int.from_bytes(frame[2:10], "big") == size
            key, body = frame[10:14], frame[14:]
            assert bytes(b ^ key[i % 4] for i, b in enumerate(body)) == payload
        else:
            assert unmask(frame) == (client.OP_TEXT, payload)
