"""Realtime's first stage: listener -> hub -> phoenix wire.

One LISTEN connection per process hears `fluxbase_realtime` (a change-log id was written) and
`fluxbase_broadcast` (a broadcast or presence message from any replica). Notifications only wake
the reader: changes are always read from realtime.log by cursor, after every notification, on a
short timer and after every reconnect, so a dropped LISTEN connection loses no change.

The cursor is (from_xid, after_id). realtime.horizon() is the oldest transaction still running;
log rows of older transactions are final, so reading [from_xid, horizon) in id order and then
moving from_xid to horizon reads every row exactly once, even though ids are drawn before commit
and become visible out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

from fluxbase.background import stop_tasks
from fluxbase.db.errors import CONNECTION_ERRORS
from fluxbase.observability import metrics
from fluxbase.realtime.phoenix import ChangeType
from fluxbase.realtime.relay import OrderedRelay
from fluxbase.realtime.relay import publish as relay_publish

log = logging.getLogger("fluxbase.realtime")

CHANGES_CHANNEL: Final = "fluxbase_realtime"
BROADCAST_CHANNEL: Final = "fluxbase_broadcast"
BATCH_SIZE: Final = 500
# NOTIFY payloads must stay under 8000 bytes; larger messages go through realtime.relay.
NOTIFY_LIMIT: Final = 7800
# Rows of a transaction that was still running behind an older one become readable only when
# that older one ends, which sends no notification: the timer catches them.
POLL_INTERVAL: Final = 0.5
RECONNECT_BACKOFF: Final = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class Change:
    """One row of realtime.log."""

    id: int
    table_oid: int
    schema: str
    table: str
    type: ChangeType
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None
    commit_timestamp: datetime


ChangeHandler = Callable[[list[Change]], Awaitable[None]]
MessageHandler = Callable[[dict[str, Any]], None]


def _json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    decoded: dict[str, Any] = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded


class ChangeListener:
    """Owns the LISTEN connection and the log cursor; hands batches of changes to the hub."""

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        on_changes: ChangeHandler,
        on_message: MessageHandler,
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL,
        retention: float = 3600.0,
        prune_interval: float = 60.0,
    ) -> None:
        self._retention = retention
        self._prune_interval = prune_interval
        self._pruner: asyncio.Task[None] | None = None
        self._dsn = dsn
        self._pool = pool
        self._on_changes = on_changes
        self._on_message = on_message
        self._relay = OrderedRelay(pool, on_message)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._from_xid: int | None = None
        self._after_id = 0
        self.connected = asyncio.Event()

    @property
    def backend_pid(self) -> int | None:
        """The LISTEN connection's server process (tests terminate it to prove nothing is lost)."""
        connection = self._connection
        return None if connection is None or connection.is_closed() else int(connection.get_server_pid())

    async def start(self) -> None:
        """Connects and sets the cursor to "now"; when the database is not ready (not migrated,
        unreachable), the server still starts and the listener keeps trying in the background.
        """
        try:
            await self._initialise()
        except Exception as exc:
            log.warning("realtime: listener not started yet; retrying", extra={"reason": type(exc).__name__})
        self._relay.start()
        self._task = asyncio.create_task(self._run(), name="realtime-listener")
        self._pruner = asyncio.create_task(self._prune(), name="realtime-prune")

    async def _initialise(self) -> None:
        if self._from_xid is None:
            # Start from "now": changes committed before this process started are not replayed.
            self._from_xid = int(await self._pool.fetchval("select realtime.horizon()::text"))
        if self._connection is None or self._connection.is_closed():
            await self._connect()

    async def close(self) -> None:
        await stop_tasks((self._task, self._pruner, self._relay.task))
        await self._disconnect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "fluxbase realtime listener"}
        )
        await connection.add_listener(CHANGES_CHANNEL, self._notified)
        await connection.add_listener(BROADCAST_CHANNEL, self._notified)
        connection.add_termination_listener(self._terminated)
        self._connection = connection
        self._lost.clear()
        self.connected.set()
        # Whatever was written while we were away is in the log: read it now.
        self._wake.set()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self.connected.clear()
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)

    def _notified(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == BROADCAST_CHANNEL:
            self._relay.feed(payload)
            return
        self._wake.set()

    def _terminated(self, _connection: Any) -> None:
        self._lost.set()
        self._wake.set()

    async def _run(self) -> None:
        attempt = 0
        while self._from_xid is None:
            delay = RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)]
            attempt += 1
            await asyncio.sleep(delay)
            try:
                await self._initialise()
            except Exception as exc:
                log.warning("realtime: listener start failed", extra={"reason": type(exc).__name__})
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
            self._wake.clear()
            if self._lost.is_set() or self._connection is None or self._connection.is_closed():
                await self._reconnect()
            try:
                await self._drain()
            except CONNECTION_ERRORS as exc:
                log.warning("realtime: reading the change log failed", extra={"reason": str(exc)})
            except Exception:
                log.exception("realtime: delivering changes failed")

    async def _reconnect(self) -> None:
        metrics.realtime_listener_drops_total.inc()
        log.warning("realtime: LISTEN connection lost; reconnecting")
        await self._disconnect()
        attempt = 0
        while True:
            try:
                await self._connect()
            except (*CONNECTION_ERRORS, TimeoutError) as exc:  # type: ignore[misc]
                delay = RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)]
                attempt += 1
                log.warning(
                    "realtime: LISTEN reconnect failed",
                    extra={"reason": type(exc).__name__, "retry_in": delay},
                )
                await asyncio.sleep(delay)
                continue
            log.info("realtime: LISTEN connection re-established", extra={"attempts": attempt + 1})
            return

    async def _drain(self) -> None:
        """Reads every final log row past the cursor, in batches, and hands each batch on."""
        # Each statement may run on another pooled connection: rows below `until` are final, so
        # every later snapshot sees the same ones. No connection is held while the hub delivers.
        until = int(await self._pool.fetchval("select realtime.horizon()::text"))
        assert self._from_xid is not None
        if until <= self._from_xid:
            return
        while True:
            rows = await self._pool.fetch(
                "select id, table_oid, schema_name, table_name, type, record::text, "
                "old_record::text, commit_timestamp "
                "from realtime.read_changes($1::text::xid8, $2::text::xid8, $3, $4)",
                str(self._from_xid),
                str(until),
                self._after_id,
                self._batch_size,
            )
            if rows:
                changes = [
                    Change(
                        id=row["id"],
                        table_oid=int(row["table_oid"]),
                        schema=row["schema_name"],
                        table=row["table_name"],
                        type=row["type"],
                        record=_json(row["record"]),
                        old_record=_json(row["old_record"]),
                        commit_timestamp=row["commit_timestamp"],
                    )
                    for row in rows
                ]
                self._after_id = changes[-1].id
                metrics.realtime_changes_total.inc(len(changes))
                await self._on_changes(changes)
            if len(rows) < self._batch_size:
                self._from_xid, self._after_id = until, 0
                return

    async def _prune(self) -> None:
        # Every replica prunes; deleting rows another one already deleted is harmless.
        while True:
            await asyncio.sleep(self._prune_interval)
            try:
                removed = await self._pool.fetchval(
                    "select realtime.prune(make_interval(secs => $1))", self._retention
                )
            except Exception as exc:
                log.warning("realtime: pruning the change log failed", extra={"reason": str(exc)})
                continue
            if removed:
                log.info("realtime: change log pruned", extra={"rows": removed})

    async def publish(self, message: dict[str, Any]) -> None:
        """Sends a broadcast or presence message to every replica (this one included), in order."""
        await relay_publish(self._pool, message, NOTIFY_LIMIT)
