"""asyncpg's pool, with connections handed to waiters in the order they asked.

asyncpg keeps free connections in an asyncio queue. When a connection comes back,
the queue wakes its oldest waiter, but the connection stays in the queue until that
waiter runs; a request that arrives meanwhile takes it at once, and the woken waiter
finds the queue empty and joins the back of the line. Under load (more requests
than connections) the newest requests are served first and the oldest wait several
rounds: the median improves, the tail grows (p99 several times the median).

FairPool puts a line with as many slots as the pool has connections in front of the
queue: a released slot goes straight to the oldest waiter, and newcomers wait while
anyone does, so whoever holds a slot finds a free connection in the queue. Waiting
is bounded by the acquire timeout with one timer for the whole line (armed for the
earliest deadline), not a timer per acquire: asyncpg's own timed acquire also wraps
every wait in a task of its own.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy


class _Line:
    """Slots handed out first come, first served; a waiter gives up at its deadline."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        # Waiters in arrival order. A waiter leaves when it is handed a slot or times out,
        # and its task removes it when cancelled; between a cancellation and that task's
        # next step its future is cancelled but still here, and is passed over.
        self._waiting: deque[tuple[asyncio.Future[None], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    async def take(self, timeout: float | None) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        deadline = math.inf if timeout is None else loop.time() + timeout
        entry = (waiter, deadline)
        self._waiting.append(entry)
        if deadline < self._timer_at:
            self._arm(loop, deadline)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back()  # handed a slot as the caller was cancelled: the next one's
            elif entry in self._waiting:
                self._waiting.remove(entry)
            raise

    def give_back(self) -> None:
        while self._waiting:
            waiter, _ = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; the free count stays
                return
        self._free += 1

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time()
        still: deque[tuple[asyncio.Future[None], float]] = deque()
        for waiter, deadline in self._waiting:
            if waiter.done():
                continue  # cancelled: its task has not run yet to remove it
            if deadline <= now:
                waiter.set_exception(TimeoutError())
            else:
                still.append((waiter, deadline))
        self._waiting = still
        earliest = min((deadline for _, deadline in still), default=math.inf)
        if earliest < math.inf:
            self._arm(loop, earliest)


class FairPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool whose waiters get connections first come, first served."""

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._line = _Line(max_size)
        # The connections handed out through a slot: release frees the slot once for each.
        self._holding: set[PoolConnectionProxy] = set()

    async def _acquire(self, timeout: float | None) -> PoolConnectionProxy:
        await self._line.take(timeout)
        try:
            # The slot guarantees a connection in the queue (or room to open one, within
            # the pool's connect timeout), unless one was taken outside the line; then
            # this waits in asyncpg's own queue.
            connection: PoolConnectionProxy = await super()._acquire(None)
        except BaseException:
            self._line.give_back()
            raise
        # As asyncpg's own timed acquire does: release() uses the same timeout by default.
        connection._holder._timeout = timeout
        self._holding.add(connection)
        return connection

    async def release(self, connection: PoolConnectionProxy, *, timeout: float | None = None) -> None:
        try:
            if (
                type(connection) is PoolConnectionProxy
                and connection._holder._pool is self
                and connection._con is not None
            ):
                # asyncpg's release, less the task it shields the holder's release in: one
                # task and one loop pass per request, for a release that usually does no
                # I/O at all (the reset rode on COMMIT or ran after the statement). Should
                # the caller be cancelled while a reset query runs, the holder's release
                # closes the connection, which returns it to the queue just the same.
                self._check_init()
                connection._con._on_release()
                holder = connection._holder
                await holder.release(holder._timeout if timeout is None else timeout)
            else:
                await super().release(connection, timeout=timeout)  # not ours, or released already
        finally:
            # A connection closed while in use went back to the queue already (asyncpg's
            # release then does nothing); its slot is freed here all the same, once.
            if connection in self._holding:
                self._holding.discard(connection)
                self._line.give_back()


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
