"""The role-switched transaction: the only place a request's database role is set.

One transaction per request, on a pooled connection: BEGIN [READ ONLY]; one
statement sets the role and the request settings (all transaction-local);
the work; COMMIT, or ROLLBACK on error or when asked.  Nothing survives into
the next use of the connection: the settings are local, and the pool's reset
clears anything a function set for the session.

A request that is one statement (`one_statement_as`) needs no BEGIN: the
settings are made for the session (default_transaction_read_only on for a
read), the statement runs as its own transaction -- atomic, committed when it
returns -- and the pool's reset (RESET ALL, RESET ROLE) clears the settings
before the connection serves anyone else: at once after the statement, or by
the pool on release if the statement failed (a connection whose reset fails is
closed, never reused).  One round trip fewer than BEGIN ... COMMIT, with the
same role, settings, snapshot and atomicity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg
import orjson

from fluxbase.db.errors import (
    CONNECTION_ERRORS,
    ConnectionLost,
    DatabaseUnreachable,
    PoolTimeout,
)
from fluxbase.observability import metrics
from fluxbase.observability.logging import request_id_var

log = logging.getLogger("fluxbase.db")

API_ROLES = frozenset({"anon", "authenticated", "service_role"})

# One round trip for every setting; `true` makes each local to the transaction. A null
# search_path keeps the connection's own. `request.id` is the X-Request-ID the client got
# back (audit trails record it, so a row change leads to its request's log lines).
SET_REQUEST_CONTEXT = (
    "select set_config('search_path', coalesce($6, current_setting('search_path')), true), "
    "set_config('role', $1, true), set_config('request.jwt.claims', $2, true), "
    "set_config('request.method', $3, true), set_config('request.path', $4, true), "
    "set_config('request.headers', $5, true), set_config('request.id', $7, true)"
)

# The same settings for the session, and whether its transactions are read-only: what
# one_statement_as's statement runs under. The pool's reset (get_reset_query) undoes them all.
SET_SESSION_CONTEXT = (
    "select set_config('search_path', coalesce($6, current_setting('search_path')), false), "
    "set_config('role', $1, false), set_config('request.jwt.claims', $2, false), "
    "set_config('request.method', $3, false), set_config('request.path', $4, false), "
    "set_config('request.headers', $5, false), set_config('request.id', $7, false), "
    "set_config('default_transaction_read_only', $8, false)"
)

# Besides a closed connection: errors after which the session is certainly gone.
SESSION_ENDED: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InternalClientError,
)


def _is_gone(connection: asyncpg.Connection) -> bool:
    """Closed, or already taken from us: asyncpg detaches a pooled connection that closed."""
    try:
        return bool(connection.is_closed())
    except asyncpg.exceptions.InterfaceError:
        return True


class losing_the_connection_raises:
    """Turns a statement's failure into ConnectionLost when the connection, not the SQL, failed.

    A plain InterfaceError is not enough to tell: asyncpg's DataError (a bad argument) is one.
    A class rather than a generator: every statement of every request enters it.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        if isinstance(exc, TimeoutError) or not (
            isinstance(exc, SESSION_ENDED) or _is_gone(self._connection)
        ):
            return
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("database connection lost", extra={"reason": reason})
        raise ConnectionLost(reason) from exc


@dataclass(frozen=True)
class RequestContext:
    """Who is asking and how: what SQL sees through current_setting('request.*')."""

    role: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    search_path: str | None = None  # already quoted identifiers, comma-separated
    # None: the id of the HTTP request being served (the logging context's), if any.
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in API_ROLES:
            raise ValueError(f"not an API role: {self.role!r}")


class RoleSwitchedTransaction:
    """Runs statements inside one request's transaction; times them for metrics and the slow-query log."""

    def __init__(self, connection: asyncpg.Connection, slow_query_threshold: float) -> None:
        self._connection = connection
        self._slow = slow_query_threshold
        self.rollback_requested = False

    def request_rollback(self) -> None:
        """Ends the transaction with ROLLBACK instead of COMMIT (Prefer: tx=rollback)."""
        self.rollback_requested = True

    async def _timed(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        started = time.perf_counter()
        status = "error"
        try:
            with losing_the_connection_raises(self._connection):
                result = await getattr(self._connection, method)(query, *args)
            status = "ok"
            return result
        finally:
            elapsed = time.perf_counter() - started
            (metrics.db_queries_ok if status == "ok" else metrics.db_queries_error).inc()
            metrics.db_query_duration_seconds.observe(elapsed)
            if elapsed >= self._slow:
                # Values are bound parameters, so the statement text holds no user data.
                log.warning(
                    "slow query",
                    extra={
                        "slow_query": True,
                        "query": query[:2000],
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._timed("fetch", query, args)
        return result

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._timed("fetchrow", query, args)
        return result

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._timed("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        result: str = await self._timed("execute", query, args)
        return result


class FluxbaseConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection: its reset also undoes a session-level SET ROLE, and may ride on COMMIT.

    asyncpg's reset runs RESET ALL, which by design leaves the role alone; a
    function that ran `set role` without `local` must not hand its role to
    the next request.
    """

    _reset_done = False

    def get_reset_query(self) -> str:
        base: str = super().get_reset_query()
        return f"{base}\nRESET ROLE;"

    def mark_reset(self) -> None:
        """The reset query already ran (after COMMIT): the pool's reset may skip it once."""
        self._reset_done = True


async def reset_connection(connection: FluxbaseConnection) -> None:
    """The pool's reset hook (asyncpg has already rolled back any open transaction)."""
    if connection._reset_done:
        connection._reset_done = False
        return
    await connection.execute(connection.get_reset_query())


async def _acquire(pool: asyncpg.Pool, acquire_timeout: float) -> Any:
    try:
        return await pool.acquire(timeout=acquire_timeout)
    except TimeoutError as exc:
        raise PoolTimeout(f"no connection free within {acquire_timeout}s") from exc
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        # Any server error while acquiring comes from opening a connection (login refused,
        # database missing, too many clients): the database cannot be reached as configured.
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("database unreachable", extra={"reason": reason})
        raise DatabaseUnreachable(reason) from exc


async def _begin(connection: Any, context: RequestContext | None, read_only: bool) -> None:
    with losing_the_connection_raises(connection):
        await connection.execute("BEGIN READ ONLY" if read_only else "BEGIN")
        if context is not None:
            await _set_context(connection, SET_REQUEST_CONTEXT, context)


async def _set_session(connection: Any, context: RequestContext | None, read_only: bool) -> None:
    assert context is not None
    with losing_the_connection_raises(connection):
        await _set_context(connection, SET_SESSION_CONTEXT, context, "on" if read_only else "off")


async def _set_context(connection: Any, statement: str, context: RequestContext, *more: str) -> None:
    await connection.fetchrow(
        statement,
        context.role,
        orjson.dumps(context.claims).decode(),
        context.method,
        context.path,
        orjson.dumps(dict(context.headers)).decode(),
        context.search_path,
        context.request_id or request_id_var.get() or "",
        *more,
    )


async def _begin_on_a_live_connection(
    pool: asyncpg.Pool,
    context: RequestContext | None,
    read_only: bool,
    acquire_timeout: float,
    start: Callable[[Any, RequestContext | None, bool], Awaitable[None]] = _begin,
) -> Any:
    """A pooled connection with the transaction begun; released again if that fails.

    A connection that died while idle in the pool (a database restart, pg_terminate_backend)
    fails at BEGIN, before any work ran on it, so another attempt is safe. Its siblings
    most likely died with it: the whole pool is renewed (as the health check does), and
    the request does not pay for deaths it had no part in.
    """
    for attempt in (1, 2):
        connection = await _acquire(pool, acquire_timeout)
        try:
            await start(connection, context, read_only)
            return connection
        except ConnectionLost:
            await pool.expire_connections()
            await asyncio.shield(pool.release(connection))
            if attempt == 2:
                raise
        except BaseException:
            await asyncio.shield(pool.release(connection))
            raise
    raise AssertionError("unreachable")


@asynccontextmanager
async def role_switched_transaction(
    pool: asyncpg.Pool,
    context: RequestContext | None,
    *,
    read_only: bool = False,
    acquire_timeout: float = 5.0,
    slow_query_threshold: float = 1.0,
) -> AsyncIterator[RoleSwitchedTransaction]:
    """Opens a transaction as context.role with the request settings.

    With no context the transaction stays in the server's own role (authenticator), for the
    server's own work: no API role, no request settings.
    Commits when the block ends normally, rolls back when it raises or asked for rollback.
    """
    connection = await _begin_on_a_live_connection(pool, context, read_only, acquire_timeout)
    try:
        work = RoleSwitchedTransaction(connection, slow_query_threshold)
        try:
            yield work
        except BaseException:
            if not _is_gone(connection) and connection.is_in_transaction():
                # If even this fails, the pool's reset rolls back or drops the connection.
                with contextlib.suppress(Exception):
                    await connection.execute("ROLLBACK")
            raise
        # The end of the transaction and the pool's reset travel in one message: a
        # round trip fewer per request. If COMMIT fails, the rest of the message is
        # skipped, the connection is not marked, and the pool resets it as usual.
        ending = "ROLLBACK" if work.rollback_requested else "COMMIT"
        with losing_the_connection_raises(connection):
            await connection.execute(f"{ending};\n{connection.get_reset_query()}")
        connection.mark_reset()
    finally:
        # No shield of our own: asyncpg's release shields the holder's release itself, and
        # runs synchronously up to that point, so a cancelled request still returns the
        # connection (one task per request fewer).
        await pool.release(connection)


async def one_statement_as(
    pool: asyncpg.Pool,
    context: RequestContext,
    query: str,
    args: tuple[Any, ...],
    *,
    read_only: bool,
    acquire_timeout: float = 5.0,
    slow_query_threshold: float = 1.0,
) -> asyncpg.Record | None:
    """One statement as context.role with the request settings, as its own transaction: its first row.

    Without BEGIN (see the module's docstring). When the statement has returned, its
    transaction has ended (a write is committed): a connection lost only during the reset
    after it does not undo that, so the row is still the answer, and the pool, whose own
    reset then fails, closes the connection.
    """
    connection = await _begin_on_a_live_connection(pool, context, read_only, acquire_timeout, _set_session)
    try:
        row: asyncpg.Record | None = await RoleSwitchedTransaction(connection, slow_query_threshold).fetchrow(
            query, *args
        )
        try:
            with losing_the_connection_raises(connection):
                await connection.execute(connection.get_reset_query())
        except ConnectionLost:
            return row
        connection.mark_reset()
        return row
    finally:
        # On any failure before mark_reset, the pool's reset hook clears the session (or the
        # connection is closed): the settings never reach the next request.
        await pool.release(connection)
