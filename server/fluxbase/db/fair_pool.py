"""asyncpg's pool, with connections handed to waiters in the order they asked.

asyncpg keeps free connections in an asyncio queue. When a connection comes back,
the queue wakes its oldest waiter, but the connection stays in the queue until that
waiter runs; a request that arrives meanwhile takes it at once, and the woken waiter
finds the queue empty and joins the back of the line. Under load (more requests
than connections) the newest requests are served first and the oldest wait several
rounds: the median improves, the tail grows (p99 several times the median).

FairPool puts a semaphore with as many slots as the pool has connections in front
of the queue. asyncio's semaphore hands a released slot to its oldest waiter and
makes newcomers wait while anyone does, so a request that holds a slot finds a free
connection in the queue. The acquire timeout runs with asyncio.timeout, in the
caller's task: asyncpg's own timed acquire wraps the wait in a task of its own, one
more loop pass between a connection's release and its next use.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy


class FairPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose waiters get connections first come, first served."""

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._slots = asyncio.Semaphore(max_size)
        # The connections handed out through a slot: release frees the slot once for each.
        self._holding: set[PoolConnectionProxy] = set()

    async def _acquire(self, timeout: float | None) -> PoolConnectionProxy:
        async with asyncio.timeout(timeout):
            await self._slots.acquire()
            try:
                # The slot guarantees a connection in the queue (or room to open one),
                # unless it was taken outside the slots; then this waits in asyncpg's line.
                connection: PoolConnectionProxy = await super()._acquire(None)
            except BaseException:
                self._slots.release()
                raise
        # As asyncpg's own timed acquire does: release() uses the same timeout by default.
        connection._holder._timeout = timeout
        self._holding.add(connection)
        return connection

    async def release(self, connection: PoolConnectionProxy, *, timeout: float | None = None) -> None:
        try:
            await super().release(connection, timeout=timeout)
        finally:
            # A connection closed while in use went back to the queue already (asyncpg's
            # release then does nothing); its slot is freed here all the same, once.
            if connection in self._holding:
                self._holding.discard(connection)
                self._slots.release()


async def create_fair_pool(dsn: str, **kwargs: Any) -> FairPool:
    """asyncpg.create_pool's arguments and defaults, a FairPool."""
    defaults: dict[str, Any] = {
        "min_size": 10,
        "max_size": 10,
        "max_queries": 50000,
        "max_inactive_connection_lifetime": 300.0,
        "connection_class": asyncpg.Connection,
        "record_class": asyncpg.Record,
        "loop": None,
    }
    pool = FairPool(dsn, **{**defaults, **kwargs})
    await pool
    return pool
