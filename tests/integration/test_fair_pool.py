"""FairPool: first come, first served; timeouts, cancellations and lost connections leak no slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from fluxbase.db.fair_pool import FairPool, create_fair_pool


@asynccontextmanager
async def fair_pool(dsn: str, **settings: Any) -> AsyncIterator[FairPool]:
    """One connection unless told otherwise; terminated, not closed, at the end: a failed
    test may still hold a connection, and close() would wait for it."""
    pool = await create_fair_pool(dsn, **{"min_size": 1, "max_size": 1, **settings})
    try:
        yield pool
    finally:
        pool.terminate()


async def acquired_within(pool: FairPool, seconds: float) -> bool:
    try:
        connection = await pool.acquire(timeout=seconds)
    except TimeoutError:
        return False
    await pool.release(connection)
    return True


async def test_a_released_connection_goes_to_the_oldest_waiter_not_to_a_newcomer(migrated_dsn: str) -> None:
    async with fair_pool(migrated_dsn) as pool:
        order: list[str] = []
        held = await pool.acquire()

        async def take(name: str) -> None:
            connection = await pool.acquire(timeout=5)
            order.append(name)
            await connection.fetchval("select 1")
            await pool.release(connection)

        waiters = [asyncio.create_task(take(name)) for name in ("first", "second", "third")]
        await asyncio.sleep(0.05)  # all three wait

        async def newcomer() -> None:
            # Asks in the same loop pass the connection is back, before the woken waiter
            # runs: as a request arriving then does. asyncpg's own queue would hand it over.
            for _ in range(100_000):
                if pool.get_idle_size():
                    break
                await asyncio.sleep(0)
            await take("newcomer")

        late = asyncio.create_task(newcomer())
        await asyncio.sleep(0.01)
        await pool.release(held)
        await asyncio.gather(*waiters, late)
        assert order == ["first", "second", "third", "newcomer"]


async def test_timed_out_and_cancelled_waiters_leave_no_slot_behind(migrated_dsn: str) -> None:
    async with fair_pool(migrated_dsn) as pool:
        held = await pool.acquire()
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await pool.acquire(timeout=0.05)

        async def acquire() -> object:
            return await pool.acquire(timeout=5)

        cancelled = asyncio.create_task(acquire())
        await asyncio.sleep(0.02)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await pool.release(held)
        # One slot, free again: taken at once, and only one at a time.
        first = await pool.acquire(timeout=1)
        assert not await acquired_within(pool, 0.05)
        await pool.release(first)
        assert await acquired_within(pool, 1)


async def test_each_waiter_gives_up_at_its_own_deadline(migrated_dsn: str) -> None:
    """One timer serves the line: a short wait behind a long one still ends on time."""
    async with fair_pool(migrated_dsn) as pool:
        held = await pool.acquire()
        loop = asyncio.get_running_loop()

        async def wait(seconds: float) -> float:
            started = loop.time()
            with pytest.raises(TimeoutError):
                await pool.acquire(timeout=seconds)
            return loop.time() - started

        long, short = asyncio.create_task(wait(0.6)), asyncio.create_task(wait(0.1))
        assert 0.09 <= await short < 0.4
        assert 0.59 <= await long < 1.0
        await pool.release(held)
        assert await acquired_within(pool, 1)


async def test_a_slot_is_freed_once_per_connection(migrated_dsn: str) -> None:
    async with fair_pool(migrated_dsn) as pool:
        connection = await pool.acquire()
        await pool.release(connection)
        await pool.release(connection)  # asyncpg ignores a second release; so do the slots
        first = await pool.acquire(timeout=1)
        assert not await acquired_within(pool, 0.05)
        await pool.release(first)


async def test_a_connection_lost_while_in_use_frees_its_slot(migrated_dsn: str) -> None:
    async with fair_pool(migrated_dsn, min_size=2, max_size=2) as pool:
        lost = await pool.acquire()
        other = await pool.acquire()
        await other.execute("select pg_terminate_backend($1)", lost.get_server_pid())
        with pytest.raises(Exception):  # noqa: B017 - whichever error asyncpg raises for a dead backend
            await lost.fetchval("select 1")
        await pool.release(lost)
        await pool.release(other)
        # Both slots serve again, on a fresh connection where the old one died.
        first, second = await pool.acquire(timeout=5), await pool.acquire(timeout=5)
        assert await first.fetchval("select 1") == 1 and await second.fetchval("select 1") == 1
        await pool.release(first)
        await pool.release(second)


async def test_a_release_cancelled_during_its_reset_returns_the_connection(migrated_dsn: str) -> None:
    """FairPool's release runs in the caller's task: a cancelled reset closes the connection, and
    the pool opens a fresh one; no slot and no connection is lost."""

    async def slow_reset(connection: object) -> None:
        await asyncio.sleep(5)

    async with fair_pool(migrated_dsn, reset=slow_reset) as pool:
        connection = await pool.acquire()
        releasing = asyncio.create_task(pool.release(connection))
        await asyncio.sleep(0.05)  # in the reset now
        releasing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await releasing
        again = await pool.acquire(timeout=2)
        assert await again.fetchval("select 1") == 1
        assert not await acquired_within(pool, 0.05)  # still one slot


async def test_a_waiter_cancelled_just_before_a_release_is_passed_over(migrated_dsn: str) -> None:
    """The release comes before the cancelled waiter's task has run: the slot goes to the next one.

    The pool's reset does nothing here, as in the server when the reset already ran: the
    release then hands the slot on without a pause in which the cancelled task could run.
    """

    async def nothing_to_reset(connection: object) -> None:
        return None

    async with fair_pool(migrated_dsn, reset=nothing_to_reset) as pool:
        held = await pool.acquire()

        async def acquire() -> object:
            return await pool.acquire(timeout=5)

        first, second = asyncio.create_task(acquire()), asyncio.create_task(acquire())
        await asyncio.sleep(0.02)  # both wait
        first.cancel()  # its future is cancelled now, its task runs later
        await pool.release(held)
        with pytest.raises(asyncio.CancelledError):
            await first
        connection = await asyncio.wait_for(second, 2)
        assert await connection.fetchval("select 1") == 1
        await pool.release(connection)
        assert await acquired_within(pool, 1)
