"""The connection pool the server works through, and the readiness probe.

The server logs in as `authenticator`, which owns nothing and can only switch
into the API roles; migrations use the owner's DATABASE_URL instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from fluxbase.background import stop_tasks
from fluxbase.config import DatabaseConfig
from fluxbase.db.errors import CONNECTION_ERRORS
from fluxbase.db.fair_pool import create_fair_pool
from fluxbase.db.migrate import AUTHENTICATOR
from fluxbase.db.transaction import (
    FluxbaseConnection,
    RequestContext,
    RoleSwitchedTransaction,
    one_statement_as,
    reset_connection,
    role_switched_transaction,
)
from fluxbase.observability import metrics

log = logging.getLogger("fluxbase.db")

PROBE_TIMEOUT = 2.0


class _ConnectionErrorsWithoutTraceback(logging.Filter):
    """asyncpg's pool logs each failed attempt to reopen its minimum of connections with the
    whole traceback; while the database is down or restarting that is expected and says
    nothing more than its reason, so the line keeps the reason and drops the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, CONNECTION_ERRORS):
            record.reason = f"{type(error).__name__}: {error}"
            record.exc_info = None
            record.exc_text = None
        return True


_POOL_LOG_FILTER = _ConnectionErrorsWithoutTraceback()
logging.getLogger("asyncpg.pool").addFilter(_POOL_LOG_FILTER)


def quiet_failed_closes(loop: asyncio.AbstractEventLoop) -> None:
    """After expire_connections, asyncpg closes each old connection in a task nobody awaits; when
    the backend is already gone (killed, restarted) that close fails with a broken pipe and asyncio
    logs "Task exception was never retrieved" with a traceback. Such a failure is one warning
    line; every other unhandled error still reaches the loop's own handler."""
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_failed_closes", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if isinstance(error, CONNECTION_ERRORS) and getattr(coro, "__qualname__", "") == "Connection.close":
            reason = f"{type(error).__name__}: {error}"
            log.warning("closing a dead database connection failed", extra={"reason": reason})
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiets_failed_closes = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


def authenticator_dsn(database_url: str, password: str | None) -> str:
    """The owner's DATABASE_URL with the authenticator's credentials in place of the owner's."""
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    credentials = quote(AUTHENTICATOR) + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))


class Database:
    """The pool plus the settings every request transaction needs."""

    def __init__(self, pool: asyncpg.Pool, config: DatabaseConfig) -> None:
        self.pool = pool
        self.config = config
        self._tasks: list[asyncio.Task[None]] = []
        # fluxbase_db_connections is read from the pool when /metrics is scraped, not per request.
        self._watch = metrics.watch_pool(self._pool_size)

    def _pool_size(self) -> tuple[int, int]:
        return self.pool.get_idle_size(), self.pool.get_size()

    @classmethod
    async def connect(cls, dsn: str, config: DatabaseConfig) -> Database:
        quiet_failed_closes(asyncio.get_running_loop())
        pool = await create_fair_pool(
            dsn,
            min_size=config.min_connections,
            max_size=config.max_connections,
            max_inactive_connection_lifetime=config.max_conn_idle_time,
            connection_class=FluxbaseConnection,
            reset=reset_connection,
            # Opening a connection counts against the same bound as waiting for one.
            timeout=config.acquire_timeout,
            server_settings={
                "application_name": "fluxbase",
                "statement_timeout": str(int(config.statement_timeout * 1000)),
            },
        )
        database = cls(pool, config)
        database._tasks = [
            asyncio.create_task(database._recycle_connections()),
            asyncio.create_task(database._check_health()),
        ]
        if metrics.MULTIPROCESS:
            database._tasks.append(asyncio.create_task(database._sample_pool()))
        return database

    async def _sample_pool(self) -> None:
        # With several workers the scraped one reads the others' gauge files: each worker
        # refreshes its own every second, not on every request.
        while True:
            metrics.sample_pools()
            await asyncio.sleep(metrics.POOL_SAMPLE_SECONDS)

    async def _recycle_connections(self) -> None:
        # asyncpg has no per-connection lifetime; retiring the whole pool every
        # connection_max_lifetime bounds every connection's age by it.  Busy
        # connections are replaced when released, idle ones on next use.
        while True:
            await asyncio.sleep(self.config.connection_max_lifetime)
            await self.pool.expire_connections()

    async def _check_health(self) -> None:
        # Every health_check_period, one statement through the pool: a
        # connection the network dropped silently is found and the pool
        # renewed here, not by the next request that draws it.
        while True:
            await asyncio.sleep(self.config.health_check_period)
            try:
                async with self.pool.acquire(timeout=self.config.acquire_timeout) as connection:
                    await connection.fetchval("select 1", timeout=PROBE_TIMEOUT)
            except TimeoutError:
                continue  # busy is not broken
            except CONNECTION_ERRORS as exc:
                log.warning("database connection check failed; renewing the pool", extra={"reason": str(exc)})
                await self.pool.expire_connections()
            except Exception:
                # The check must outlive any surprise, or the pool is never checked again.
                log.exception("database connection check failed unexpectedly")

    # These hand out role_switched_transaction's own context manager (no wrapper of their own):
    # every data request enters it, and each generator layer costs a frame and a task step.
    def transaction(
        self, context: RequestContext, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[RoleSwitchedTransaction]:
        return role_switched_transaction(
            self.pool,
            context,
            read_only=read_only,
            acquire_timeout=self.config.acquire_timeout,
            slow_query_threshold=self.config.slow_query_threshold,
        )

    async def one_statement(
        self, context: RequestContext, query: str, *args: Any, read_only: bool
    ) -> asyncpg.Record | None:
        """One statement as the caller, as its own transaction: no BEGIN/COMMIT (one_statement_as)."""
        return await one_statement_as(
            self.pool,
            context,
            query,
            args,
            read_only=read_only,
            acquire_timeout=self.config.acquire_timeout,
            slow_query_threshold=self.config.slow_query_threshold,
        )

    def server_transaction(
        self, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[RoleSwitchedTransaction]:
        """A transaction in the server's own role (authenticator): no API role, no request settings."""
        return role_switched_transaction(
            self.pool,
            None,
            read_only=read_only,
            acquire_timeout=self.config.acquire_timeout,
            slow_query_threshold=self.config.slow_query_threshold,
        )

    async def close(self) -> None:
        metrics.unwatch_pool(self._watch)
        await stop_tasks(self._tasks)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pool.close(), timeout=10)


@dataclass(frozen=True)
class Readiness:
    database: bool
    migrations: bool
    detail: str | None = None

    @property
    def ready(self) -> bool:
        return self.database and self.migrations


class ReadinessProbe:
    """Answers /ready from a connection of its own.

    A saturated pool must not make a healthy replica look dead, and a probe
    must answer within PROBE_TIMEOUT even when the database host is silent.
    """

    def __init__(self, dsn: str, expected_changes: Sequence[str]) -> None:
        self._dsn = dsn
        self._expected = list(expected_changes)
        self._connection: Any = None
        self._lock = asyncio.Lock()

    async def check(self) -> Readiness:
        async with self._lock:
            try:
                return await asyncio.wait_for(self._check(), timeout=PROBE_TIMEOUT)
            except (TimeoutError, *CONNECTION_ERRORS) as exc:  # type: ignore[misc]
                await self._drop()
                return Readiness(False, False, f"database unreachable: {type(exc).__name__}")

    async def _check(self) -> Readiness:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn, timeout=PROBE_TIMEOUT)
        try:
            applied = await self._connection.fetchval(
                # sqitch's registry: written by `fluxbase migrate` and `sqitch deploy` alike.
                "select count(*) from sqitch.changes where change_id = any($1::text[])",
                self._expected,
            )
        except asyncpg.exceptions.UndefinedTableError:
            return Readiness(True, False, "no migrations applied")
        except asyncpg.exceptions.InsufficientPrivilegeError:
            return Readiness(True, False, "migration registry not readable: run fluxbase migrate")
        missing = len(self._expected) - int(applied)
        if missing:
            return Readiness(True, False, f"{missing} migration(s) pending")
        return Readiness(True, True)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._connection.close(), timeout=2)
                self._connection = None
