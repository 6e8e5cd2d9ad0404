"""Realtime's HTTP edge: the Phoenix WebSocket (the REST broadcast endpoints: broadcast_api.py).

The handshake verifies the key before upgrading (401 otherwise); each socket then speaks Phoenix
channels: phx_join with postgres_changes bindings, heartbeat, access_token, broadcast, presence,
phx_leave. The hub does the fan-out; this module owns sockets, limits and protocol state.
Tokens and query strings are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

from aiohttp import WSMsgType, web

from fluxbase.config import RealtimeConfig
from fluxbase.db.errors import DatabaseUnavailable
from fluxbase.db.pool import Database
from fluxbase.observability import metrics
from fluxbase.realtime import messages, phoenix
from fluxbase.realtime.broadcast_api import BROADCAST_PATH, broadcast_event_handler, broadcast_handler
from fluxbase.realtime.clients import Binding, Channel, Client
from fluxbase.realtime.credentials import (
    SESSION_ENDED,
    SocketUsers,
    UserCapExceeded,
    session_ended,
    watch_sessions,
)
from fluxbase.realtime.errors import database_unavailable_reason
from fluxbase.realtime.filters import FilterError, parse_filter
from fluxbase.realtime.hub import CHANGE_EVENTS, Hub
from fluxbase.realtime.listener import ChangeListener
from fluxbase.realtime.service import REALTIME, RealtimeService, refuse
from fluxbase.request_state import CLIENT_IP
from fluxbase.security.authenticate import (
    AUTHENTICATOR,
    AuthenticationError,
    Authenticator,
)
from fluxbase.security.scopes import REALTIME as REALTIME_SCOPE
from fluxbase.security.scopes import ScopeError, require_scope

log = logging.getLogger("fluxbase.realtime")

WEBSOCKET_PATHS: Final = ("/realtime/v1/websocket", "/realtime/websocket", "/realtime")
# How long a close frame may take to reach a client that stopped reading.
CLOSE_TIMEOUT: Final = 2.0
KEY_CHECK_INTERVAL: Final = 1.0  # how often a socket opened with an API key re-checks it
# Frames are written straight to a socket's transport while its write buffer holds less than
# this (asyncio's default high-water mark); beyond it they wait in the socket's bounded queue.
DIRECT_WRITE_LIMIT: Final = 64 * 1024


def add_routes(app: web.Application) -> None:
    for path in WEBSOCKET_PATHS:
        app.router.add_get(path, websocket_handler)
    app.router.add_post(BROADCAST_PATH, broadcast_handler)
    app.router.add_post(BROADCAST_PATH + "/{topic}/events/{event}", broadcast_event_handler)
    # on_shutdown runs before aiohttp waits for open connections: sockets closed here end their
    # handlers at once instead of holding the stop for the whole shutdown_timeout.
    app.on_shutdown.append(stop_realtime)


def realtime_context(config: RealtimeConfig, dsn: str, database_key: web.AppKey[Database]) -> Any:
    """A cleanup_ctx entry: starts the hub and the listener once the pool exists, stops them last."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        database = app[database_key]
        hub = Hub(database)
        hub.max_relayed_bytes = config.max_message_size
        listener = ChangeListener(
            dsn,
            database.pool,
            hub.deliver,
            hub.on_relayed,
            retention=config.log_retention,
            prune_interval=config.prune_interval,
        )
        hub.set_publisher(listener.publish)
        service = RealtimeService(config, hub, listener)
        app[REALTIME] = service
        await listener.start()
        hub.start_leases(config.presence_lease)
        yield
        await stop_realtime(app)

    return context


async def stop_realtime(app: web.Application) -> None:
    """Stops the listener (and its reconnect loop), then closes every socket with 1001.

    The listener goes first so no batch starts while sockets close; a batch being checked is
    cancelled, whatever its backlog. Sockets close concurrently, each bounded by CLOSE_TIMEOUT
    (a client that does not read has its connection aborted), so the whole stop takes a few
    seconds at most, however many sockets are open and whether or not the database answers.
    """
    service = app.get(REALTIME)
    if service is None:
        return
    service.stopping = True
    if service.listener is not None:
        await service.listener.close()
    await service.hub.stop_leases()
    sockets = list(service.sockets)
    if sockets:
        log.info("realtime: closing sockets", extra={"sockets": len(sockets)})
        await asyncio.gather(*(_close_going_away(ws) for ws in sockets))


async def _close_going_away(ws: web.WebSocketResponse) -> None:
    # A close cut short by the timeout closes the transport itself (aiohttp).
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code=1001, message=b"server shutting down"), CLOSE_TIMEOUT)


def _handshake_token(request: web.Request) -> str | None:
    # Browsers cannot set headers on a WebSocket, so realtime clients put the key in the query.
    return (
        request.query.get("apikey")
        or request.headers.get("apikey")
        or request.headers.get("x-api-key")
        or None
    )


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    service = request.app[REALTIME]
    config = service.config
    if not config.enabled:
        return refuse(404, "realtime is disabled")
    if service.stopping:
        return refuse(503, "server shutting down")
    try:
        vsn = phoenix.negotiate_vsn(request.query.get("vsn"))
    except phoenix.UnsupportedVsnError as exc:
        return refuse(403, exc.reason)
    token = _handshake_token(request)
    if token is None:
        return refuse(401, "missing apikey")
    try:
        caller = request.app[AUTHENTICATOR].verify(token)
    except AuthenticationError as exc:
        return refuse(401, exc.reason)
    try:
        require_scope(caller, REALTIME_SCOPE)
    except ScopeError as exc:
        return refuse(403, exc.reason)
    ip = request.get(CLIENT_IP) or request.remote or "unknown"
    if len(service.sockets) >= config.max_connections:
        return refuse(429, "too many connections")
    if service.per_ip[ip] >= config.max_connections_per_ip:
        return refuse(429, "too many connections from this address")
    user = caller.user_id
    if user is not None and service.per_user[user] >= config.max_connections_per_user:
        return refuse(429, "too many connections for this user")

    # No permessage-deflate (Phoenix's default too): a zlib stream pair per socket costs
    # hundreds of KiB, and every fan-out frame would be compressed once per subscriber.
    ws = web.WebSocketResponse(
        heartbeat=config.ping_interval, max_msg_size=config.max_message_size, autoping=True, compress=False
    )
    await ws.prepare(request)
    service.sockets.add(ws)
    service.per_ip[ip] += 1
    users = SocketUsers(service.per_user, config.max_connections_per_user)
    users.acquire(user)
    metrics.realtime_connections.inc()

    def overflow(_client: Client) -> None:
        # The client does not read: close it without waiting on its full TCP buffer for long.
        asyncio.get_running_loop().create_task(_close_slow(ws, request))

    writer: asyncio.Task[None] | None = None
    transport = request.transport

    def send_now(frames: Sequence[phoenix.OutboundFrame]) -> bool:
        # Nothing is queued (the client checks): the frames go straight to the transport while
        # its buffer has room, with no task and no await; otherwise they are queued, and the
        # writer waits for the buffer to drain (and the queue bound closes a socket that stalls).
        if (
            ws.closed
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() >= DIRECT_WRITE_LIMIT
        ):
            return False
        try:
            data = b"".join(map(phoenix.websocket_frame, frames))
        except UnicodeEncodeError:
            return False  # the writer reports it, as for any frame it cannot send
        transport.write(data)
        return True

    def start_writer(_client: Client) -> None:
        # Frames are waiting and no writer runs (the last one ended on an empty queue).
        nonlocal writer
        writer = asyncio.get_running_loop().create_task(_write(ws, client))

    client = Client(
        vsn,
        caller,
        ip=ip,
        queue_size=config.send_queue_size,
        on_overflow=overflow,
        on_frames=start_writer,
        send_now=send_now,
    )
    session = Session(service, client, ws, request.app[AUTHENTICATOR], users)
    session_watch = asyncio.create_task(session.watch_sessions())
    key_watch = None
    if caller.api_key is not None:
        key_watch = asyncio.create_task(_close_when_revoked(ws, request, caller.api_key.id))
    try:
        await session.run()
    finally:
        if key_watch is not None:
            key_watch.cancel()
        session_watch.cancel()
        client.closed = True
        for channel in list(client.channels.values()):
            await service.hub.remove_channel(channel)
        client.channels.clear()
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        service.sockets.discard(ws)
        _decrement(service.per_ip, ip)
        users.release_all()
        metrics.realtime_connections.dec()
    return ws


def channel_binding_id(
    taken: dict[int, tuple[Any, ...]],
    event: str,
    schema: str,
    table: str | None,
    filter_text: str,
    select: list[str] | None,
) -> int:
    """The binding's hashed id (messages.binding_id), unless another binding of the channel with
    other parameters has it: then the next attempt's. `taken` maps the channel's ids so far to
    their parameters; identical bindings share their id, as in Supabase Realtime."""
    params = (event, schema, table, filter_text, tuple(select) if select is not None else None)
    attempt = 0
    while True:
        binding_id = messages.binding_id(event, schema, table, filter_text, select, attempt)
        if taken.setdefault(binding_id, params) == params:
            return binding_id
        attempt += 1


async def _close_when_revoked(ws: web.WebSocketResponse, request: web.Request, key_id: str) -> None:
    """A socket opened with an API key closes once the key is revoked (the registry reloads in seconds)."""
    keys = request.app[AUTHENTICATOR].api_keys
    while not ws.closed:
        await asyncio.sleep(KEY_CHECK_INTERVAL)
        if not keys.is_live(key_id):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1008, message=b"API key revoked"), CLOSE_TIMEOUT)
            return


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


async def _close_slow(ws: web.WebSocketResponse, request: web.Request) -> None:
    try:
        await asyncio.wait_for(ws.close(code=1008, message=b"send queue full"), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()


async def _write(ws: web.WebSocketResponse, client: Client) -> None:
    """Sends what the client's queue holds, then ends (the next frame starts another writer)."""
    while (frame := client.next_frame()) is not None:
        try:
            if ws.closed:
                raise ConnectionResetError
            if isinstance(frame, phoenix.EncodedText):
                await ws.send_frame(frame.data, WSMsgType.TEXT)
            elif isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        except ConnectionError:
            client.closed = True  # nothing more is queued for a socket that is gone
            return


class Session:
    """The Phoenix protocol state of one socket."""

    def __init__(
        self,
        service: RealtimeService,
        client: Client,
        ws: web.WebSocketResponse,
        authenticator: Authenticator,
        users: SocketUsers,
    ) -> None:
        self.service = service
        self.authenticator = authenticator
        self.users = users
        self.hub = service.hub
        self.client = client
        self.ws = ws

    async def watch_sessions(self) -> None:
        """Closes each channel whose token's session has ended (sign-out, ban, refresh reuse)."""

        def ended(item: object) -> None:
            assert isinstance(item, Channel)
            self._close_channel(item, SESSION_ENDED)

        await watch_sessions(
            self.authenticator.revocations,
            lambda: ((channel, channel.caller) for channel in self.client.channels.values()),
            ended,
            lambda: not self.ws.closed,
        )

    async def run(self) -> None:
        async for frame in self.ws:
            if frame.type == WSMsgType.TEXT:
                data: str | bytes = frame.data
            elif frame.type == WSMsgType.BINARY:
                data = frame.data
            elif frame.type == WSMsgType.ERROR:
                return
            else:
                continue
            try:
                message = phoenix.decode_frame(
                    data, self.client.vsn, max_frame_bytes=self.service.config.max_message_size
                )
            except phoenix.ProtocolError as exc:
                log.info("realtime: undecodable frame", extra={"reason": exc.reason})
                continue
            try:
                await self.handle(message)
            except DatabaseUnavailable as exc:
                log.warning(
                    "realtime: no database for a message",
                    extra={"event": message.event, "reason": exc.reason},
                )
                if message.ref is not None:
                    self.client.push(messages.reply_error(message, database_unavailable_reason(exc)))
            except Exception:
                log.exception("realtime: handling a message failed", extra={"event": message.event})
                if message.ref is not None:
                    self.client.push(messages.reply_error(message, "internal error"))

    async def handle(self, message: phoenix.Message) -> None:
        if message.topic == phoenix.PHOENIX_TOPIC:
            if message.event == phoenix.EVENT_HEARTBEAT:
                self.client.push(messages.heartbeat_reply(message))
            return
        if message.event == phoenix.EVENT_JOIN:
            await self.join(message)
            return
        channel = self.client.channels.get(message.topic)
        if channel is None:
            if message.ref is not None:
                self.client.push(messages.unmatched_topic_reply(message))
            return
        if message.event == phoenix.EVENT_LEAVE:
            await self.leave(channel)
            self.client.push(messages.reply_ok(message))
            self.client.push(messages.phx_close(channel.topic, channel.join_ref))
        elif message.event == phoenix.EVENT_AUTH_REFRESH:
            self.refresh_token(channel, message)
        elif message.event == phoenix.EVENT_BROADCAST:
            await self.broadcast(channel, message)
        elif message.event == phoenix.EVENT_PRESENCE:
            await self.presence(channel, message)
        elif message.ref is not None:
            self.client.push(messages.reply_error(message, f"unknown event {message.event!r}"))

    # ----------------------------------------------------------------------------------------
    # join / leave / token

    def _payload(self, message: phoenix.Message) -> Mapping[str, Any]:
        return message.payload if isinstance(message.payload, dict) else {}

    async def join(self, message: phoenix.Message) -> None:
        limit = phoenix.MAX_HEADER_FIELD_BYTES
        if len(message.topic.encode()) > limit:
            # vsn 2.0.0 binary frames carry the topic behind a one-byte length: a longer topic could
            # never be sent a broadcast, and would only cost memory in every replica's topic table.
            self.client.push(messages.reply_error(message, f"topic is longer than {limit} bytes"))
            return
        payload = self._payload(message)
        config = payload.get("config") or {}
        if not isinstance(config, dict):
            self.client.push(messages.reply_error(message, "config must be an object"))
            return
        caller = self.client.caller
        token = payload.get("access_token")
        if isinstance(token, str) and token and not token.startswith("sb_"):
            try:
                caller = self.authenticator.verify(token)
            except AuthenticationError as exc:
                self.client.push(messages.reply_error(message, f"Unauthorized: {exc.reason}"))
                return
        elif session_ended(self.authenticator.revocations, caller):
            self.client.push(messages.reply_error(message, f"Unauthorized: {SESSION_ENDED}"))
            return
        if config.get("private"):
            self.client.push(
                messages.reply_error(message, "private channels are not supported by this server")
            )
            return
        existing = self.client.channels.get(message.topic)
        if existing is not None:
            # A rejoin (after a timeout, or to change bindings) replaces the old channel.
            await self.leave(existing)
        raw_bindings = config.get("postgres_changes") or []
        if not isinstance(raw_bindings, list):
            self.client.push(messages.reply_error(message, "postgres_changes must be a list"))
            return
        if (
            self.client.subscription_count + 1 + len(raw_bindings)
            > self.service.config.max_subscriptions_per_socket
        ):
            self.client.push(messages.reply_error(message, "too many subscriptions on this socket"))
            return
        broadcast = config.get("broadcast") or {}
        presence = config.get("presence") or {}
        channel = Channel(
            client=self.client,
            topic=message.topic,
            join_ref=message.join_ref,
            caller=caller,
            broadcast_self=bool(isinstance(broadcast, dict) and broadcast.get("self")),
            broadcast_ack=bool(isinstance(broadcast, dict) and broadcast.get("ack")),
            presence_key=str(presence.get("key") or "") if isinstance(presence, dict) else "",
        )
        try:
            echoed = await self._bind(channel, raw_bindings)
        except BindingError as exc:
            self.client.push(messages.reply_error(message, str(exc)))
            return
        try:
            self.users.acquire(caller.user_id)
        except UserCapExceeded as exc:
            self.client.push(messages.reply_error(message, str(exc)))
            return
        first_here = channel.topic not in self.hub.topics
        self.client.channels[channel.topic] = channel
        self.hub.add_channel(channel)
        self._schedule_expiry(channel)
        self.client.push(messages.join_reply_ok(message, echoed))
        if channel.bindings:
            self.client.push(messages.postgres_changes_subscribed(channel.topic, channel.join_ref))
        self.client.push(
            messages.presence_state(channel.topic, channel.join_ref, self.hub.presence_state(channel.topic))
        )
        if first_here:
            await self.hub.request_presence_sync(channel.topic)

    async def _bind(self, channel: Channel, raw_bindings: list[Any]) -> list[dict[str, Any]]:
        if not raw_bindings:
            return []
        enabled = await self.hub.enabled_tables()
        echoed: list[dict[str, Any]] = []
        # id -> the parameters it stands for in this channel: distinct bindings, distinct ids.
        ids: dict[int, tuple[Any, ...]] = {}
        for raw in raw_bindings:
            if not isinstance(raw, dict):
                raise BindingError("each postgres_changes binding must be an object")
            event, schema, table = raw.get("event", "*"), raw.get("schema"), raw.get("table")
            filter_text = raw.get("filter") or ""
            if event not in CHANGE_EVENTS:
                raise BindingError(f"invalid event {event!r}: expected *, INSERT, UPDATE, DELETE or TRUNCATE")
            if not isinstance(schema, str) or not schema:
                raise BindingError("postgres_changes binding needs a schema")
            if table is not None and not isinstance(table, str):
                raise BindingError("table must be a string")
            if filter_text and table in (None, "*"):
                raise BindingError("a filter needs a table")
            oids = [
                oid
                for oid, s, t in enabled
                if (schema == "*" or s == schema) and (table in (None, "*") or t == table)
            ]
            if not oids:
                where = f"{schema}.{table}" if table not in (None, "*") else f"schema {schema}"
                raise BindingError(f"{where} is not enabled for realtime (realtime.enable)")
            select = raw.get("select")
            if select is not None and (
                not isinstance(select, list) or not all(isinstance(c, str) for c in select) or not select
            ):
                raise BindingError("select must be a non-empty list of column names")
            try:
                parsed = parse_filter(filter_text)
            except FilterError as exc:
                raise BindingError(f"invalid filter: {exc}") from None
            binding_id = channel_binding_id(ids, event, schema, table, filter_text, select)
            wanted = frozenset(select) if select is not None else None
            for oid in oids:
                # The database decides: columns, grants, value types and operators.
                reason = await self.hub.check_binding(channel.caller, oid, parsed, wanted)
                if reason is not None:
                    raise BindingError(reason)
                channel.bindings.append(Binding(channel, binding_id, event, oid, parsed, wanted))
            echoed.append(messages.postgres_changes_binding(raw, binding_id))
        return echoed

    async def leave(self, channel: Channel) -> None:
        if self.client.channels.pop(channel.topic, None) is channel:
            self.users.release(channel.caller.user_id)
        await self.hub.remove_channel(channel)

    def refresh_token(self, channel: Channel, message: phoenix.Message) -> None:
        token = self._payload(message).get("access_token")
        if (
            not isinstance(token, str)
            or not token
            or token.startswith("sb_")
            or token == channel.caller.token
        ):
            return
        try:
            caller = self.authenticator.verify(token)
        except AuthenticationError as exc:
            self._close_channel(channel, f"Invalid token: {exc.reason}")
            return
        try:
            self.users.swap(channel.caller.user_id, caller.user_id)
        except UserCapExceeded as exc:
            self._close_channel(channel, str(exc))
            return
        # The group key follows the channel's caller, so the next batch is checked as the new one.
        channel.caller = caller
        self._schedule_expiry(channel)

    def _schedule_expiry(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
            channel.expiry = None
        expires_at = channel.caller.expires_at
        if expires_at is None:
            return
        delay = max(0.0, expires_at - time.time())
        channel.expiry = asyncio.get_running_loop().call_later(
            delay, self._close_channel, channel, "Token has expired"
        )

    def _close_channel(self, channel: Channel, reason: str) -> None:
        if self.client.channels.get(channel.topic) is not channel:
            return
        self.client.push(messages.system_error(channel.topic, channel.join_ref, reason))
        self.client.push(messages.phx_close(channel.topic, channel.join_ref))
        self.client.channels.pop(channel.topic, None)
        self.users.release(channel.caller.user_id)
        asyncio.get_running_loop().create_task(self.hub.remove_channel(channel))

    # ----------------------------------------------------------------------------------------
    # broadcast / presence

    async def broadcast(self, channel: Channel, message: phoenix.Message) -> None:
        payload = message.payload
        try:
            if isinstance(payload, phoenix.UserBroadcast):
                await self.hub.broadcast(
                    channel.topic,
                    payload.event,
                    bytes(payload.payload) if payload.is_binary else payload.payload,
                    origin=self.client.id,
                    binary=payload.is_binary,
                    user=True,
                )
            elif isinstance(payload, dict) and isinstance(payload.get("event"), str):
                await self.hub.broadcast(
                    channel.topic, payload["event"], payload.get("payload"), origin=self.client.id
                )
            else:
                if message.ref is not None:
                    self.client.push(messages.reply_error(message, "broadcast needs an event"))
                return
        except ValueError as exc:
            if message.ref is not None:
                self.client.push(messages.reply_error(message, str(exc)))
            return
        if channel.broadcast_ack and message.ref is not None:
            self.client.push(messages.reply_ok(message))

    async def presence(self, channel: Channel, message: phoenix.Message) -> None:
        payload = self._payload(message)
        event = payload.get("event")
        try:
            if event == "track":
                meta = payload.get("payload") or {}
                if not isinstance(meta, dict):
                    raise ValueError("presence payload must be an object")
                if not channel.presence_key:
                    channel.presence_key = self.client.id
                await self.hub.track(channel, meta)
            elif event == "untrack":
                await self.hub.untrack(channel)
            else:
                raise ValueError("presence event must be track or untrack")
        except ValueError as exc:
            if message.ref is not None:
                self.client.push(messages.reply_error(message, str(exc)))
            return
        if message.ref is not None:
            self.client.push(messages.reply_ok(message))


class BindingError(Exception):
    """A postgres_changes binding the join cannot accept; the text goes to the client."""
