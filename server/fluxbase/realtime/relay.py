"""Broadcast and presence messages between replicas, in the order they were sent, of any size up to
realtime.max_message_size.

A message travels as the payload of `NOTIFY fluxbase_broadcast` when it fits (PostgreSQL's limit
is 8000 bytes); a larger one is stored in realtime.relay by realtime.relay_put(), which NOTIFYs
only `{"k": "relay", "id": N}`, and every replica reads it back by id (sql/41_realtime_relay.sql).
Notifications are handled one after the other by one task, so a small message sent after a large
one never overtakes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import asyncpg
import orjson

log = logging.getLogger("fluxbase.realtime")

RELAY_KIND: Final = "relay"
# Notifications waiting to be handled; past this the listener is hopelessly behind and a
# message is dropped (with a log line) rather than growing memory without bound.
MAX_PENDING: Final = 10_000


def _decode(payload: str | bytes) -> dict[str, Any] | None:
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("realtime: undecodable broadcast notification dropped")
        return None
    return message if isinstance(message, dict) else None


class OrderedRelay:
    """Receives fluxbase_broadcast notifications and hands their messages on, in order."""

    def __init__(self, pool: asyncpg.Pool, on_message: Callable[[dict[str, Any]], None]) -> None:
        self._pool = pool
        self._on_message = on_message
        self._pending: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-relay")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def feed(self, payload: str) -> None:
        try:
            self._pending.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("realtime: broadcast backlog full; a message was dropped")

    async def _run(self) -> None:
        while True:
            payload = await self._pending.get()
            message = _decode(payload)
            if message is None:
                continue
            if message.get("k") == RELAY_KIND:
                message = await self._fetch(message.get("id"))
                if message is None:
                    continue
            try:
                self._on_message(message)
            except Exception:
                log.exception("realtime: handling a relayed message failed")

    async def _fetch(self, relay_id: Any) -> dict[str, Any] | None:
        if not isinstance(relay_id, int):
            return None
        try:
            text = await self._pool.fetchval("select realtime.relay_get($1)", relay_id)
        except Exception as exc:
            log.warning("realtime: reading a relayed message failed", extra={"reason": str(exc)})
            return None
        if text is None:  # pruned: this replica was more than a minute behind
            log.warning("realtime: a relayed message was gone before it was read")
            return None
        return _decode(text)


async def publish(pool: asyncpg.Pool, message: dict[str, Any], notify_limit: int) -> None:
    """Sends a message to every replica (this one included): inline when it fits a NOTIFY."""
    encoded = orjson.dumps(message).decode()
    async with pool.acquire() as connection:
        if len(encoded.encode()) <= notify_limit:
            await connection.execute("select pg_notify('fluxbase_broadcast', $1)", encoded)
        else:
            await connection.execute("select realtime.relay_put($1)", encoded)
