"""The realtime benchmark's subscribers (tests/perf/bench_realtime.py): lean, honest WebSocket clients.

A client process holds many subscribers on uvloop, one asyncio Protocol per socket and no task per
socket. Each subscriber does what realtime-js does on the wire (the upgrade with `apikey` and
`vsn=2.0.0`, `phx_join` with `access_token` and a postgres_changes binding, a Phoenix heartbeat
every 25 s, pong for ping, the close handshake) and parses the server's frames itself (unmasked,
FIN and fragmentation, control frames between fragments). From a change it reads only the row's
`id` and `stamped`, but only after checking the bytes say: a postgres_changes push on its topic,
naming its binding id, for an INSERT into the benchmark table without errors. A frame that does
not have that exact shape is parsed in full (orjson) and checked the same way; a sample of the
fast-path frames is parsed in full too, and any disagreement counts as a wrong frame.

The driver talks to this process over a socket (multiprocessing.connection.Connection on the file
descriptor given as argv[1]): ("open", host, port, path, [(token, filtered)]), ("collect", ids,
timeout), ("close",). Run as a script so that the driver's imports (psycopg, the test harness)
stay out of the clients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

import orjson
import uvloop

TABLE = "bench_events"
TOPIC = "realtime:bench"
HEARTBEAT_SECONDS = 25.0  # realtime-js's default heartbeatIntervalMs
JOIN_TIMEOUT = 30.0
OPEN_CONCURRENCY = 50  # below the server's listen backlog (1024) with a few processes
SAMPLE_EVERY = 97  # every n-th fast-path change is also parsed in full and compared
MAX_BUFFER = 16 * 1024 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# A v2 change push for the benchmark table, as the server encodes it (realtime/phoenix.py:
# postgres_changes_frame around the change's JSON; the record's columns in table order: id, kind,
# stamped, body). One C-level match checks topic, event, schema, table, type and errors and
# captures the binding ids, the row id and `stamped`; anything else takes the full parse.
FAST_CHANGE = re.compile(
    rb'\[null,null,"' + re.escape(TOPIC.encode()) + rb'","postgres_changes",\{"ids":\[([0-9,]+)\],'
    rb'"data":\{"schema":"public","table":"' + re.escape(TABLE.encode()) + rb'",'
    rb'"commit_timestamp":"[^"]{1,40}","type":"INSERT","columns":\[[^\]]*\],"errors":null,'
    rb'"record":\{"id":([0-9]+),"kind":-?[0-9]+,"stamped":(-?[0-9.eE+-]+)[,}]'
)

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolError(Exception):
    """The server broke the WebSocket or Phoenix protocol as this client understands it."""


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: FIN, the opcode, a random mask and the masked payload (RFC 6455 5.3)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + key + masked


def parse_change(payload: bytes, binding: bytes) -> tuple[int, float] | None:
    """(row id, stamped) of a change push shaped exactly as the fast path expects, else None.

    `binding` is the subscriber's binding id as JSON digits; the ids list must hold it.
    """
    match = FAST_CHANGE.match(payload)
    if match is None:
        return None
    ids = match.group(1)
    if ids != binding and binding not in ids.split(b","):
        return None
    try:
        return int(match.group(2)), float(match.group(3))
    except ValueError:
        return None


def check_change(message: Any, binding_id: int) -> tuple[int, float] | None:
    """(row id, stamped) of a fully parsed v2 message if it is one of this subscriber's INSERTs."""
    if not (isinstance(message, list) and len(message) == 5 and message[2] == TOPIC):
        return None
    payload = message[4]
    if message[3] != "postgres_changes" or not isinstance(payload, dict):
        return None
    ids, data = payload.get("ids"), payload.get("data")
    if not (isinstance(ids, list) and binding_id in ids and isinstance(data, dict)):
        return None
    record = data.get("record")
    if (
        data.get("schema") != "public"
        or data.get("table") != TABLE
        or data.get("type") != "INSERT"
        or data.get("errors") is not None
        or not isinstance(record, dict)
    ):
        return None
    row_id, stamped = record.get("id"), record.get("stamped")
    if type(row_id) is not int or not isinstance(stamped, int | float):
        return None
    return row_id, float(stamped)


@dataclass
class Tally:
    """What one client process saw, for the driver's `collect`."""

    subscribers: list[Subscriber] = field(default_factory=list)
    wanted: frozenset[int] = frozenset()
    outstanding: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    last_receipt: float = 0.0
    duplicates: int = 0
    wrong: int = 0  # postgres_changes frames for this topic that fail the checks
    full_parses: int = 0  # frames that did not take the fast path (replies, system, odd shapes)
    fast: int = 0
    heartbeats_missed: int = 0
    closed: int = 0  # sockets closed by the server or the network (not by us) since the last collect
    errors: list[str] = field(default_factory=list)

    def received(self, row_id: int, now: float) -> None:
        self.last_receipt = now
        if row_id in self.wanted:
            self.outstanding -= 1
            if self.outstanding == 0:
                self.all_in.set()

    def error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)


class Subscriber(asyncio.Protocol):
    """One socket, one channel, one binding; handshake, join, then receipts into `received`."""

    def __init__(self, tally: Tally, host: str, port: int, path: str, token: str, filtered: bool) -> None:
        self.tally = tally
        self.request_target = path
        self.host = f"{host}:{port}"
        self.token = token
        self.filtered = filtered
        self.key = base64.b64encode(os.urandom(16))
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.rest = b""
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = 0
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.binding_id = 0
        self.binding = b""
        self.ref = 1
        self.heartbeat_ref: str | None = None  # the unanswered heartbeat, if any
        self.received: dict[int, float] = {}  # row id -> latency in seconds
        self.closing = False
        self.closed = False

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(
            b"GET " + self.request_target.encode() + b" HTTP/1.1\r\n"
            b"Host: " + self.host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + self.key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.rest:
            data = self.rest + data
            self.rest = b""
        try:
            if not self.upgraded:
                data = self._upgrade(data)
            self._frames(data, now)
        except ProtocolError as exc:
            self._fail(str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            if not self.closing:
                self.tally.closed += 1
        if not self.joined.done():
            self.joined.set_exception(ProtocolError(f"connection lost before the join: {exc}"))

    # --- the upgrade --------------------------------------------------------------------------

    def _upgrade(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > 65536:
                raise ProtocolError("upgrade response headers too long")
            self.rest = data
            return b""
        status, *lines = data[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status.split(" ", 2)[1:2] != ["101"]:
            raise ProtocolError(f"upgrade refused: {status}: {data[end + 4 :][:200]!r}")
        accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode()  # noqa: S324
        if headers.get("sec-websocket-accept") != accept or headers.get("upgrade", "").lower() != "websocket":
            raise ProtocolError("upgrade answered without the right Sec-WebSocket-Accept")
        if headers.get("sec-websocket-extensions"):
            raise ProtocolError("the server chose an extension this client did not offer")
        self.upgraded = True
        config = {
            "broadcast": {"ack": False, "self": False},
            "presence": {"enabled": False, "key": ""},
            "postgres_changes": [self._binding_params()],
            "private": False,
        }
        self._send(["1", "1", TOPIC, "phx_join", {"config": config, "access_token": self.token}])
        return data[end + 4 :]

    def _binding_params(self) -> dict[str, str]:
        params = {"event": "INSERT", "schema": "public", "table": TABLE}
        if self.filtered:
            params["filter"] = "kind=eq.1"
        return params

    # --- frames -------------------------------------------------------------------------------

    def _frames(self, data: bytes, now: float) -> None:
        position, size = 0, len(data)
        while size - position >= 2 and not self.closed:
            first, second = data[position], data[position + 1]
            if second & 0x80:
                raise ProtocolError("the server masked a frame")
            length, head = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, head = int.from_bytes(data[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, head = int.from_bytes(data[position + 2 : position + 10], "big"), 10
            end = position + head + length
            if end > size:
                break
            self._frame(first, data[position + head : end], now)
            position = end
        if position < size and not self.closed:
            if size - position > MAX_BUFFER:
                raise ProtocolError("frame larger than the client's buffer")
            self.rest = data[position:]

    def _frame(self, first: int, payload: bytes, now: float) -> None:
        if first & 0x70:
            raise ProtocolError("RSV bits set without a negotiated extension")
        opcode, fin = first & 0x0F, first & 0x80
        if opcode >= OP_CLOSE:
            self._control(opcode, fin, payload)
            return
        if opcode == OP_CONTINUATION:
            if self.fragments is None:
                raise ProtocolError("continuation frame without a first fragment")
            self.fragments.append(payload)
            if not fin:
                return
            payload, opcode, self.fragments = b"".join(self.fragments), self.fragment_opcode, None
        elif opcode in (OP_TEXT, OP_BINARY):
            if self.fragments is not None:
                raise ProtocolError("new message inside a fragmented one")
            if not fin:
                self.fragments, self.fragment_opcode = [payload], opcode
                return
        else:
            raise ProtocolError(f"reserved opcode {opcode}")
        if opcode == OP_BINARY:
            self.tally.error("binary frame (the benchmark expects text pushes only)")
            return
        self._message(payload, now)

    def _control(self, opcode: int, fin: int, payload: bytes) -> None:
        if not fin or len(payload) > 125:
            raise ProtocolError("fragmented or oversized control frame")
        if opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closing:
                self.tally.error(f"server closed the socket: {code} {payload[2:]!r}")
                self._write(OP_CLOSE, payload[:2])
            self._shut(by_us=self.closing)
        elif opcode != OP_PONG:
            raise ProtocolError(f"reserved control opcode {opcode}")

    # --- Phoenix messages ---------------------------------------------------------------------

    def _message(self, payload: bytes, now: float) -> None:
        tally = self.tally
        change = parse_change(payload, self.binding) if self.binding else None
        if change is not None:
            tally.fast += 1
            if (
                tally.fast % SAMPLE_EVERY == 0
                and check_change(orjson.loads(payload), self.binding_id) != change
            ):
                tally.wrong += 1
                tally.error(f"fast path disagrees with the full parse: {payload[:200]!r}")
                return
        else:
            tally.full_parses += 1
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"text frame is not JSON: {exc}") from exc
            change = check_change(message, self.binding_id) if self.binding else None
            if change is None:
                self._other(message)
                return
        row_id, stamped = change
        if row_id in self.received:
            tally.duplicates += 1
            return
        self.received[row_id] = now - stamped
        tally.received(row_id, now)

    def _other(self, message: Any) -> None:
        """Replies and system pushes; a postgres_changes push that failed the checks is wrong."""
        if not (isinstance(message, list) and len(message) == 5):
            raise ProtocolError(f"not a v2 message: {str(message)[:200]}")
        _join_ref, ref, topic, event, payload = message
        if event == "postgres_changes":
            self.tally.wrong += 1
            self.tally.error(f"change that is not this subscriber's: {str(message)[:200]}")
        elif event == "phx_reply" and topic == "phoenix":
            if ref == self.heartbeat_ref and payload.get("status") == "ok":
                self.heartbeat_ref = None
        elif event == "phx_reply" and ref == "1" and topic == TOPIC:
            self._joined(payload)
        elif event in ("phx_error", "phx_close") or (
            event == "system" and isinstance(payload, dict) and payload.get("status") == "error"
        ):
            self.tally.error(f"{event} on {topic}: {str(payload)[:200]}")
            if not self.joined.done():
                self.joined.set_exception(ProtocolError(f"{event}: {payload}"))

    def _joined(self, payload: Any) -> None:
        if self.joined.done():
            return
        response = payload.get("response") if isinstance(payload, dict) else None
        if not isinstance(response, dict) or payload.get("status") != "ok":
            self.joined.set_exception(ProtocolError(f"join refused: {str(payload)[:200]}"))
            return
        bindings = response.get("postgres_changes")
        sent = self._binding_params()
        # realtime-js drops the channel unless the server echoes its binding with an id.
        if (
            not isinstance(bindings, list)
            or len(bindings) != 1
            or not isinstance(bindings[0], dict)
            or {k: v for k, v in bindings[0].items() if k != "id"} != sent
            or type(bindings[0].get("id")) is not int
        ):
            self.joined.set_exception(ProtocolError(f"join reply without the binding: {str(response)[:200]}"))
            return
        self.binding_id = bindings[0]["id"]
        self.binding = str(self.binding_id).encode()
        self.joined.set_result(None)

    # --- writing ------------------------------------------------------------------------------

    def _send(self, message: list[Any]) -> None:
        self._write(OP_TEXT, orjson.dumps(message))

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(opcode, payload))

    def heartbeat(self) -> None:
        if self.closed or not self.upgraded:
            return
        if self.heartbeat_ref is not None:
            self.tally.heartbeats_missed += 1
        self.ref += 1
        self.heartbeat_ref = str(self.ref)
        self._send([None, self.heartbeat_ref, "phoenix", "heartbeat", {}])

    def close(self) -> None:
        """Our side of the close handshake; the server's close frame (or a timeout) ends it."""
        if self.closed:
            return
        self.closing = True
        self._write(OP_CLOSE, (1000).to_bytes(2, "big"))

    def _shut(self, *, by_us: bool) -> None:
        if not self.closed:
            self.closed = True
            if not by_us:
                self.tally.closed += 1
        if self.transport is not None:
            self.transport.close()

    def _fail(self, reason: str) -> None:
        self.tally.error(reason)
        if not self.joined.done():
            self.joined.set_exception(ProtocolError(reason))
        self._write(OP_CLOSE, (1002).to_bytes(2, "big"))
        self._shut(by_us=False)


# --- the process ------------------------------------------------------------------------------


async def open_all(
    tally: Tally, host: str, port: int, path: str, tokens: Iterable[tuple[str, bool]]
) -> tuple[int, list[str], int]:
    """Opens and joins every subscriber, OPEN_CONCURRENCY at a time; (joined, errors, failures)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    errors: list[str] = []

    async def one(token: str, filtered: bool) -> None:
        async with gate:
            subscriber: Subscriber | None = None

            def factory() -> Subscriber:
                nonlocal subscriber
                subscriber = Subscriber(tally, host, port, path, token, filtered)
                return subscriber

            try:
                await asyncio.wait_for(loop.create_connection(factory, host, port), JOIN_TIMEOUT)
                assert subscriber is not None
                await asyncio.wait_for(subscriber.joined, JOIN_TIMEOUT)
                tally.subscribers.append(subscriber)
                return
            except TimeoutError:
                errors.append(f"no upgrade and join within {JOIN_TIMEOUT:.0f} s")
            except (OSError, ProtocolError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            if subscriber is not None:
                subscriber.closing = True
                subscriber._shut(by_us=True)

    await asyncio.gather(*(one(token, filtered) for token, filtered in tokens))
    return len(tally.subscribers), errors[:5], len(errors)


async def collect(tally: Tally, ids: list[int], timeout: float) -> dict[str, Any]:
    """Waits until every subscriber has every row of `ids` (or the timeout); the tally of them.

    Receipts of rows not in `ids` are older rows arriving late (`stale`): they are dropped.
    """
    wanted = frozenset(ids)
    live = tally.subscribers
    have = sum(1 for s in live for row_id in s.received if row_id in wanted)
    tally.wanted, tally.outstanding = wanted, len(wanted) * len(live) - have
    tally.all_in.clear()
    if tally.outstanding > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.all_in.wait(), timeout)
    tally.wanted = frozenset()
    latencies: list[float] = []
    missing = stale = 0
    for subscriber in live:
        received = subscriber.received
        for row_id in ids:
            latency = received.pop(row_id, None)
            if latency is None:
                missing += 1
            else:
                latencies.append(latency)
        stale += len(received)
        received.clear()
    result = {
        "latencies": latencies,
        "missing": missing,
        "stale": stale,
        "duplicates": tally.duplicates,
        "wrong": tally.wrong,
        "closed": tally.closed,
        "open": sum(1 for s in live if not s.closed),
        "last": tally.last_receipt,
        "fast": tally.fast,
        "full_parses": tally.full_parses,
        "heartbeats_missed": tally.heartbeats_missed,
        "errors": tally.errors[:5],
    }
    tally.duplicates = tally.wrong = tally.fast = tally.full_parses = tally.heartbeats_missed = 0
    tally.closed = 0
    tally.last_receipt = 0.0
    tally.errors.clear()
    return result


async def heartbeats(tally: Tally, stop: asyncio.Event) -> None:
    """Every subscriber's Phoenix heartbeat once per HEARTBEAT_SECONDS, spread over the interval."""
    slices = int(HEARTBEAT_SECONDS)
    tick = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS / slices)
        for subscriber in tally.subscribers[tick % slices :: slices]:
            subscriber.heartbeat()
        tick += 1


async def close_all(tally: Tally, timeout: float = 5) -> None:
    for subscriber in tally.subscribers:
        subscriber.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(s.closed for s in tally.subscribers):
        await asyncio.sleep(0.05)
    for subscriber in tally.subscribers:
        subscriber._shut(by_us=True)


async def serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()
    stop = asyncio.Event()
    beating = asyncio.create_task(heartbeats(tally, stop))
    handlers: dict[str, Callable[..., Any]] = {
        "open": lambda *args: open_all(tally, *args),
        "collect": lambda *args: collect(tally, *args),
    }
    try:
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "close":
                await close_all(tally)
                pipe.send({"closed": True})
                return
            started = time.monotonic()
            answer = await handlers[command](*args)
            if command == "open":
                joined, errors, failed = answer
                answer = {"opened": joined, "errors": errors, "error_count": failed}
            answer["seconds"] = time.monotonic() - started
            pipe.send(answer)
    finally:
        stop.set()
        beating.cancel()


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pipe = Connection(int(sys.argv[1]))
    uvloop.run(serve(pipe))


if __name__ == "__main__":
    main()
