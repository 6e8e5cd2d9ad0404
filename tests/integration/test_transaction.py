"""The role-switched transaction: role and claims in SQL, nothing leaks to the next caller."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import psycopg
import pytest

from fluxbase.config import DatabaseConfig
from fluxbase.db.errors import ConnectionLost, PoolTimeout
from fluxbase.db.pool import Database, authenticator_dsn
from fluxbase.db.transaction import RequestContext
from harness import AUTHENTICATOR_PASSWORD

USER_A = "11111111-1111-1111-1111-111111111111"
USER_B = "22222222-2222-2222-2222-222222222222"

WHO = (
    "select current_user, auth.uid()::text, auth.role(), current_setting('request.method', true), "
    "current_setting('request.path', true), current_setting('request.headers', true)::json->>'x-test'"
)


@pytest.fixture(scope="module")
def todos_dsn(migrated_dsn: str) -> str:
    """A table with an RLS policy on the shared migrated database."""
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            """
            create table if not exists public.todos (
              id bigint generated always as identity primary key,
              user_id uuid not null,
              title text not null
            );
            alter table public.todos enable row level security;
            drop policy if exists own_rows on public.todos;
            create policy own_rows on public.todos for all to authenticated
              using (user_id = auth.uid()) with check (user_id = auth.uid());
            grant select, insert, update, delete on public.todos to authenticated;
            truncate public.todos;
            insert into public.todos (user_id, title) values
              ('11111111-1111-1111-1111-111111111111', 'a1'),
              ('11111111-1111-1111-1111-111111111111', 'a2'),
              ('22222222-2222-2222-2222-222222222222', 'b1');
            """
        )
    return migrated_dsn


async def connect(dsn: str, **overrides: float) -> Database:
    settings: dict[str, float] = {"min_connections": 1, "max_connections": 2, **overrides}
    config = DatabaseConfig(url=dsn, **settings)  # type: ignore[arg-type]
    return await Database.connect(authenticator_dsn(dsn, AUTHENTICATOR_PASSWORD), config)


def user(sub: str) -> RequestContext:
    return RequestContext(
        "authenticated", {"sub": sub, "role": "authenticated"}, "GET", "/rest/v1/todos", {"x-test": sub[:4]}
    )


async def test_role_claims_and_request_settings_are_visible_to_sql(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        async with db.transaction(user(USER_A), read_only=True) as tx:
            row = await tx.fetchrow(WHO)
        assert tuple(row) == ("authenticated", USER_A, "authenticated", "GET", "/rest/v1/todos", "1111")
    finally:
        await db.close()


async def test_the_request_id_is_a_transaction_setting(todos_dsn: str) -> None:
    """Audit trails read it: the serving request's id, or the one the context names."""
    from fluxbase.observability.logging import request_id_var

    db = await connect(todos_dsn)
    token = request_id_var.set("req-from-the-middleware")
    try:
        async with db.transaction(user(USER_A), read_only=True) as tx:
            assert await tx.fetchval("select current_setting('request.id')") == "req-from-the-middleware"
        named = RequestContext("anon", request_id="req-named")
        async with db.transaction(named, read_only=True) as tx:
            assert await tx.fetchval("select current_setting('request.id')") == "req-named"
        request_id_var.reset(token)
        async with db.transaction(user(USER_A), read_only=True) as tx:
            assert await tx.fetchval("select current_setting('request.id', true)") == ""
    finally:
        request_id_var.set(None)
        await db.close()


async def test_rls_applies_to_the_switched_role(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        async with db.transaction(user(USER_A), read_only=True) as tx:
            titles = [r[0] for r in await tx.fetch("select title from public.todos order by title")]
        assert titles == ["a1", "a2"]
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await tx.fetch("select * from public.todos")
        async with db.transaction(RequestContext("service_role"), read_only=True) as tx:
            assert await tx.fetchval("select count(*) from public.todos") >= 0
    finally:
        await db.close()


async def test_interleaved_callers_never_see_each_other(todos_dsn: str) -> None:
    db = await connect(todos_dsn)  # two connections, many callers: connections are reused
    try:

        async def caller(sub: str, fail: bool) -> tuple[str | None, list[str]]:
            async with db.transaction(user(sub), read_only=True) as tx:
                await asyncio.sleep(0)  # let the others in between the statements
                uid = await tx.fetchval("select auth.uid()::text")
                titles = [r[0] for r in await tx.fetch("select title from public.todos order by title")]
                if fail:
                    await tx.fetchval("select 1/0")
            return uid, titles

        tasks = [caller(USER_A if i % 2 else USER_B, fail=i % 3 == 0) for i in range(60)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 3 == 0:
                assert isinstance(result, asyncpg.exceptions.DivisionByZeroError)
            elif i % 2:
                assert result == (USER_A, ["a1", "a2"])
            else:
                assert result == (USER_B, ["b1"])
        # After all that, an anonymous caller sees no claims and no role of anyone else.
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            row = await tx.fetchrow(WHO)
        assert tuple(row)[:3] == ("anon", None, None)
    finally:
        await db.close()


async def test_session_level_changes_do_not_reach_the_next_caller(todos_dsn: str) -> None:
    """A function may set things for the whole session; the pool's reset takes them back."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        async with db.transaction(RequestContext("service_role")) as tx:
            await tx.execute(
                "select set_config('request.jwt.claims', '{\"sub\": \"" + USER_A + "\"}', false)"
            )
            await tx.execute("set role anon")  # session-level, not local
            await tx.execute("set search_path to auth")
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            claims = await tx.fetchval("select current_setting('request.jwt.claims', true)")
            assert claims == "{}"
        conn = await db.pool.acquire()
        try:
            outside = await conn.fetchrow("select current_user, current_setting('search_path')")
        finally:
            await db.pool.release(conn)
        assert outside[0] == "authenticator"
        assert "auth" not in outside[1].split(", ")
    finally:
        await db.close()


async def test_error_mid_transaction_rolls_back_and_frees_the_connection(todos_dsn: str) -> None:
    db = await connect(todos_dsn, max_connections=1)
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="row-level security"):
            async with db.transaction(user(USER_A)) as tx:
                await tx.execute("insert into public.todos (user_id, title) values ($1, 'ghost')", USER_A)
                await tx.execute("insert into public.todos (user_id, title) values ($1, 'x')", USER_B)
        async with db.transaction(user(USER_A), read_only=True) as tx:
            assert await tx.fetchval("select count(*) from public.todos where title = 'ghost'") == 0
    finally:
        await db.close()


async def test_python_error_inside_the_block_rolls_back(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction(user(USER_A)) as tx:
                await tx.execute("insert into public.todos (user_id, title) values ($1, 'half')", USER_A)
                raise RuntimeError("handler failed after the write")
        async with db.transaction(user(USER_A), read_only=True) as tx:
            assert await tx.fetchval("select count(*) from public.todos where title = 'half'") == 0
    finally:
        await db.close()


async def test_requested_rollback_keeps_nothing(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        async with db.transaction(user(USER_A)) as tx:
            await tx.execute("insert into public.todos (user_id, title) values ($1, 'dry-run')", USER_A)
            tx.request_rollback()
        async with db.transaction(user(USER_A), read_only=True) as tx:
            assert await tx.fetchval("select count(*) from public.todos where title = 'dry-run'") == 0
    finally:
        await db.close()


async def test_read_only_transaction_refuses_writes(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            async with db.transaction(user(USER_A), read_only=True) as tx:
                await tx.execute("insert into public.todos (user_id, title) values ($1, 'ro')", USER_A)
    finally:
        await db.close()


async def test_busy_pool_fails_fast_instead_of_queueing_forever(todos_dsn: str) -> None:
    db = await connect(todos_dsn, max_connections=1, acquire_timeout=0.2)
    try:
        async with db.transaction(RequestContext("anon"), read_only=True):
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                async with db.transaction(RequestContext("anon"), read_only=True):
                    pass
            assert time.monotonic() - started < 1.0
    finally:
        await db.close()


async def test_a_backend_killed_mid_statement_raises_connection_lost(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        with pytest.raises(ConnectionLost) as raised:
            async with db.transaction(RequestContext("anon"), read_only=True) as tx:
                sleeper = asyncio.create_task(tx.execute("select pg_sleep(5) /* doomed */"))
                with psycopg.connect(todos_dsn, autocommit=True) as owner:
                    deadline = time.monotonic() + 5
                    while not owner.execute(
                        "select pg_terminate_backend(pid) from pg_stat_activity "
                        "where state = 'active' and query like '%doomed%' and pid <> pg_backend_pid()"
                    ).fetchall():
                        assert time.monotonic() < deadline, "the statement never started"
                        await asyncio.sleep(0.02)
                await sleeper
        # Not a statement error: the session ended under it.
        assert not isinstance(raised.value.__cause__, asyncpg.exceptions.QueryCanceledError)
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            assert await tx.fetchval("select 1") == 1
    finally:
        await db.close()


async def test_connections_killed_while_idle_cost_no_request_an_error(todos_dsn: str) -> None:
    db = await connect(todos_dsn, min_connections=2, max_connections=2)
    try:
        for _ in range(3):
            with psycopg.connect(todos_dsn, autocommit=True) as owner:
                owner.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where usename = 'authenticator' and application_name = 'fluxbase'"
                )
            # BEGIN on a connection that died idle fails before any work: the transaction
            # takes another one instead of failing the request.
            async with db.transaction(RequestContext("anon"), read_only=True) as tx:
                assert await tx.fetchval("select 1") == 1
    finally:
        await db.close()


async def test_statement_timeout_comes_from_config(todos_dsn: str) -> None:
    db = await connect(todos_dsn, statement_timeout=0.2)
    try:
        with pytest.raises(asyncpg.exceptions.QueryCanceledError):
            async with db.transaction(RequestContext("anon"), read_only=True) as tx:
                await tx.execute("select pg_sleep(2)")
    finally:
        await db.close()


def test_only_api_roles_can_be_requested() -> None:
    for role in ("postgres", "authenticator", "service_role; drop table x", ""):
        with pytest.raises(ValueError, match="not an API role"):
            RequestContext(role)


async def test_authenticator_cannot_act_as_the_owner(todos_dsn: str) -> None:
    db = await connect(todos_dsn)
    try:
        async with db.transaction(RequestContext("anon")) as tx:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await tx.execute("set role postgres")
            # RESET ROLE leads back to authenticator, which can reach nothing.
        conn = await db.pool.acquire()
        try:
            await conn.execute("reset role")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch("select * from public.todos")
        finally:
            await db.pool.release(conn)
    finally:
        await db.close()


async def test_slow_statements_are_logged_with_slow_query(
    todos_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = await connect(todos_dsn, slow_query_threshold=0.05)
    try:
        with caplog.at_level("WARNING", logger="fluxbase.db"):
            async with db.transaction(RequestContext("anon"), read_only=True) as tx:
                await tx.execute("select 1")
                await tx.execute("select pg_sleep(0.1)")
        [record] = [r for r in caplog.records if getattr(r, "slow_query", False)]
        assert record.query == "select pg_sleep(0.1)"  # type: ignore[attr-defined]
        assert record.duration_ms >= 100  # type: ignore[attr-defined]
    finally:
        await db.close()


async def test_health_check_renews_connections_the_database_dropped(todos_dsn: str) -> None:
    db = await connect(todos_dsn, health_check_period=0.1)
    try:
        with psycopg.connect(todos_dsn, autocommit=True) as owner:
            owner.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where usename = 'authenticator' and application_name = 'fluxbase'"
            )
            # No request is made: the periodic check alone must bring a connection back.
            deadline = time.monotonic() + 5
            while True:
                live = owner.execute(
                    "select count(*) from pg_stat_activity "
                    "where usename = 'authenticator' and application_name = 'fluxbase'"
                ).fetchone()
                if live and live[0] >= 1:
                    break
                assert time.monotonic() < deadline, "the health check did not reconnect"
                await asyncio.sleep(0.05)
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            assert await tx.fetchval("select 1") == 1
    finally:
        await db.close()


async def test_a_failing_commit_still_resets_the_connection(todos_dsn: str) -> None:
    """COMMIT carries the reset; when COMMIT fails, the pool must still reset the session.

    Session-level advisory locks survive a rollback, so one taken in the failed
    transaction is still held unless the reset ran.
    """
    with psycopg.connect(todos_dsn, autocommit=True) as owner:
        owner.execute(
            """
            create table if not exists public.deferred (
              id int primary key,
              parent int references public.deferred (id) deferrable initially deferred
            );
            grant insert on public.deferred to service_role;
            """
        )
    db = await connect(todos_dsn, max_connections=1)
    try:
        with pytest.raises(asyncpg.exceptions.ForeignKeyViolationError):
            async with db.transaction(RequestContext("service_role")) as tx:
                await tx.execute("select pg_advisory_lock(4242)")
                await tx.execute("insert into public.deferred values (1, 999)")  # fails at COMMIT
        with psycopg.connect(todos_dsn, autocommit=True) as other:
            assert other.execute("select pg_try_advisory_lock(4242)").fetchone() == (True,)
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            assert await tx.fetchval("select current_user") == "anon"
    finally:
        await db.close()


async def test_each_request_is_four_round_trips(todos_dsn: str) -> None:
    """BEGIN, the settings, the statement, COMMIT-with-reset: counted on the server."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            await tx.fetchval("select 1")  # warm the statement cache
        conn = await db.pool.acquire()
        pid = conn.get_server_pid()
        await db.pool.release(conn)
        with psycopg.connect(todos_dsn, autocommit=True) as owner:
            owner.execute("select pg_stat_clear_snapshot()")
            before = owner.execute(
                "select xact_commit + xact_rollback from pg_stat_database where datname = current_database()"
            ).fetchone()
            async with db.transaction(RequestContext("anon"), read_only=True) as tx:
                await tx.fetchval("select 1")
            owner.execute("select pg_stat_clear_snapshot()")
            state = owner.execute(
                "select state, query from pg_stat_activity where pid = %s", (pid,)
            ).fetchone()
        assert before is not None
        # The connection's last message was COMMIT plus the reset, and nothing came after it.
        assert state is not None and state[0] == "idle"
        assert state[1].startswith("COMMIT;") and "RESET ROLE" in state[1]
    finally:
        await db.close()


async def test_a_one_statement_read_runs_as_the_caller_and_leaves_nothing_behind(todos_dsn: str) -> None:
    """one_statement: no BEGIN, settings for the session, then the pool's reset at once."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        row = await db.one_statement(
            user(USER_A),
            WHO + ", current_setting('transaction_read_only'), (select count(*) from public.todos)",
            read_only=True,
        )
        assert row is not None
        assert tuple(row) == (
            "authenticated",
            USER_A,
            "authenticated",
            "GET",
            "/rest/v1/todos",
            "1111",
            "on",
            2,
        )
        conn = await db.pool.acquire()
        try:
            after = await conn.fetchrow(
                "select current_user, current_setting('request.jwt.claims', true), "
                "current_setting('default_transaction_read_only'), current_setting('request.path', true)"
            )
        finally:
            await db.pool.release(conn)
        assert tuple(after) == ("authenticator", "", "off", "")
    finally:
        await db.close()


async def test_a_one_statement_read_cannot_write(todos_dsn: str) -> None:
    db = await connect(todos_dsn, max_connections=1)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await db.one_statement(
                RequestContext("service_role", {"role": "service_role"}),
                "with gone as (delete from public.todos returning 1) select count(*) from gone",
                read_only=True,
            )
        async with db.transaction(RequestContext("service_role")) as tx:
            assert await tx.fetchval("select count(*) from public.todos") == 3
    finally:
        await db.close()


async def test_a_failing_one_statement_read_still_resets_the_session(todos_dsn: str) -> None:
    """The error comes before the reset: the pool's own reset clears the session on release."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.one_statement(user(USER_B), "select 1 / 0", read_only=True)
        async with db.transaction(RequestContext("anon"), read_only=True) as tx:
            row = await tx.fetchrow("select current_user, auth.uid(), current_setting('request.path', true)")
        assert tuple(row) == ("anon", None, "/")
        conn = await db.pool.acquire()
        try:
            outside = await conn.fetchrow(
                "select current_user, current_setting('default_transaction_read_only'), "
                "current_setting('request.jwt.claims', true)"
            )
        finally:
            await db.pool.release(conn)
        assert tuple(outside) == ("authenticator", "off", "")
    finally:
        await db.close()


async def test_a_one_statement_read_ends_with_the_reset_and_no_commit(todos_dsn: str) -> None:
    """The settings, the statement, the reset: no BEGIN, no COMMIT."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        await db.one_statement(RequestContext("anon"), "select 1", read_only=True)  # warm the statement cache
        conn = await db.pool.acquire()
        pid = conn.get_server_pid()
        await db.pool.release(conn)
        with psycopg.connect(todos_dsn, autocommit=True) as owner:
            await db.one_statement(RequestContext("anon"), "select 1", read_only=True)
            state = owner.execute(
                "select state, query from pg_stat_activity where pid = %s", (pid,)
            ).fetchone()
        assert state is not None and state[0] == "idle"
        assert "RESET ALL" in state[1] and "RESET ROLE" in state[1] and "COMMIT" not in state[1]
    finally:
        await db.close()


async def test_a_one_statement_write_commits_as_the_caller_under_rls(todos_dsn: str) -> None:
    """A write of one statement is its own transaction: committed, RLS-checked, nothing left behind."""
    db = await connect(todos_dsn, max_connections=1)
    try:
        insert = "insert into public.todos (user_id, title) values ($1, $2) returning title"
        row = await db.one_statement(user(USER_A), insert, USER_A, "a3", read_only=False)
        assert row is not None and row["title"] == "a3"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # WITH CHECK: not A's row
            await db.one_statement(user(USER_A), insert, USER_B, "b-by-a", read_only=False)
        async with db.transaction(RequestContext("service_role")) as tx:
            titles = await tx.fetch("select title from public.todos where title in ('a3', 'b-by-a')")
            assert [r["title"] for r in titles] == ["a3"]
            await tx.execute("delete from public.todos where title = 'a3'")
        conn = await db.pool.acquire()
        try:
            outside = await conn.fetchrow("select current_user, current_setting('request.jwt.claims', true)")
        finally:
            await db.pool.release(conn)
        assert tuple(outside) == ("authenticator", "")
    finally:
        await db.close()
