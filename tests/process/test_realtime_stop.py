"""`fluxbase serve` stopping with realtime sockets open: under a backlog, with the database gone.

SIGTERM must close every socket with 1001, stop the LISTEN and reconnect loops and exit within
`server.shutdown_timeout`, whatever realtime is doing; a second SIGTERM exits at once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import aiohttp
import psycopg
import pytest

from fluxbase.db.embedded import EmbeddedPostgres
from fluxbase.db.migrate import Migrator
from harness import (
    AUTHENTICATOR_PASSWORD,
    ServerProcess,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)
from realtime_support import user_token

pytestmark = pytest.mark.process

SHUTDOWN_TIMEOUT = 6.0
SOCKETS = 20
BINDING = {"event": "*", "schema": "public", "table": "events"}
# Every policy check of a row sleeps: 1,000 rows for 20 users keep the hub busy for minutes.
SCHEMA = """
create function public.slow_owner(owner uuid) returns boolean
  language sql volatile as $$ select pg_sleep(0.005) is not null and owner = auth.uid() $$;
grant execute on function public.slow_owner(uuid) to authenticated;
create table public.events (id bigint generated always as identity primary key, owner uuid not null);
alter table public.events enable row level security;
create policy events_read on public.events for select to authenticated using (public.slow_owner(owner));
grant select on public.events to authenticated;
select realtime.enable('public.events');
"""


@pytest.fixture
def cluster() -> Iterator[EmbeddedPostgres]:
    cluster = start_local_cluster()
    try:
        dsn = cluster.dsn()
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        yield cluster
    finally:
        stop_local_cluster(cluster)


def user(number: int) -> str:
    return f"00000000-0000-0000-0000-{number:012d}"


def start(cluster: EmbeddedPostgres, **extra: str) -> ServerProcess:
    return start_server(
        server_env(cluster.dsn(), FLUXBASE_SERVER_SHUTDOWN_TIMEOUT=f"{SHUTDOWN_TIMEOUT}s", **extra)
    )


async def join_all(
    session: aiohttp.ClientSession, server: ServerProcess
) -> list[aiohttp.ClientWebSocketResponse]:
    """SOCKETS subscribers, each its own user, joined to public.events."""
    url = server.url.replace("http", "ws") + "/realtime/v1/websocket?vsn=1.0.0&apikey="
    sockets = []
    for number in range(SOCKETS):
        ws = await session.ws_connect(url + user_token(user(number)), autoclose=False)
        await ws.send_json(
            {
                "topic": "realtime:events",
                "event": "phx_join",
                "ref": "1",
                "join_ref": "1",
                "payload": {"config": {"postgres_changes": [BINDING]}},
            }
        )
        while True:
            message = await ws.receive_json(timeout=20)
            if message["event"] == "phx_reply":
                assert message["payload"]["status"] == "ok", message
                break
        sockets.append(ws)
    return sockets


async def close_code(ws: aiohttp.ClientWebSocketResponse, within: float) -> int | None:
    """The code of the close frame the server sends, reading past any change still on its way."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await ws.receive(timeout=left)
        except TimeoutError:
            return None
        if frame.type == aiohttp.WSMsgType.CLOSE:
            return int(frame.data)
        if frame.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return None
    return None


def assert_stopped_in_time(server: ServerProcess, signalled: float) -> None:
    code = server.process.wait(timeout=SHUTDOWN_TIMEOUT + 30)
    took = time.monotonic() - signalled
    log = "\n".join(server.log_lines()[-30:])
    assert took < SHUTDOWN_TIMEOUT + 1.5, f"exited {took:.1f} s after SIGTERM:\n{log}"
    assert code == 0, log


def test_sigterm_with_1000_changes_queued_closes_sockets_with_1001(cluster: EmbeddedPostgres) -> None:
    server = start(cluster)
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                sockets = await join_all(session, server)
                with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                    conn.execute(
                        "insert into public.events (owner)"
                        " select ('00000000-0000-0000-0000-' || lpad((i %% %s)::text, 12, '0'))::uuid"
                        " from generate_series(1, 1000) i",
                        (SOCKETS,),
                    )
                # The backlog is being checked (each row sleeps in its policy) when the signal comes.
                await asyncio.sleep(1.0)
                server.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                codes = await asyncio.gather(*(close_code(ws, SHUTDOWN_TIMEOUT) for ws in sockets))
                assert codes == [1001] * SOCKETS, codes
                await asyncio.to_thread(assert_stopped_in_time, server, signalled)

        asyncio.run(scenario())
        messages = [line for line in server.log_lines() if '"stopped"' in line]
        assert messages, "\n".join(server.log_lines()[-20:])
    finally:
        server.terminate()


def test_sigterm_with_the_database_unreachable(cluster: EmbeddedPostgres) -> None:
    server = start(cluster)
    try:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                sockets = await join_all(session, server)
                await asyncio.to_thread(cluster.stop)
                # Long enough for the listener to be in its reconnect loop, the pool to fail.
                await asyncio.sleep(2.0)
                server.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                codes = await asyncio.gather(*(close_code(ws, SHUTDOWN_TIMEOUT) for ws in sockets))
                assert codes == [1001] * SOCKETS, codes
                await asyncio.to_thread(assert_stopped_in_time, server, signalled)

        asyncio.run(scenario())
    finally:
        server.terminate()


def test_a_second_sigterm_exits_at_once(cluster: EmbeddedPostgres) -> None:
    # A long shutdown_timeout and an in-flight request that cannot finish: only the second
    # signal can end the wait.
    server = start_server(server_env(cluster.dsn(), FLUXBASE_SERVER_SHUTDOWN_TIMEOUT="60s"))
    try:
        with psycopg.connect(cluster.dsn()) as owner:
            owner.execute("lock table public.events in access exclusive mode")

            async def scenario() -> None:
                async with aiohttp.ClientSession() as session:
                    held = asyncio.ensure_future(
                        session.get(
                            server.url + "/rest/v1/events?select=id",
                            headers={"apikey": user_token(user(1))},
                            timeout=aiohttp.ClientTimeout(total=60),
                        )
                    )
                    await asyncio.sleep(1.0)
                    server.process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(1.0)
                    assert server.process.poll() is None, "the first SIGTERM should drain, not exit"
                    server.process.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                    await asyncio.to_thread(server.process.wait, 10)
                    assert time.monotonic() - signalled < 2.0
                    held.cancel()
                    with pytest.raises((asyncio.CancelledError, aiohttp.ClientError)):
                        await held

            asyncio.run(scenario())
            owner.rollback()
        assert server.process.returncode != 0
        assert any("second signal" in line for line in server.log_lines()), server.log_lines()[-10:]
    finally:
        server.terminate()
