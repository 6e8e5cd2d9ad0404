"""The realtime benchmark's subscribers against the real `fluxbase serve`: what they count is true.

`make bench-realtime` reads its figures from these client processes (tests/perf/realtime_client.py),
so they must join as realtime-js does, receive every row their binding and filter allow exactly
once, keep their sockets open through the server's pings, and read the server's pushes on their
fast path.
"""

from __future__ import annotations

import sys
import time

import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer, server_env, start_server

sys.path.insert(0, str(ROOT / "tests" / "perf"))
import bench_realtime  # the benchmark's own schema, tokens and client processes

pytestmark = pytest.mark.process

SUBSCRIBERS = 6  # every other one filtered on kind=eq.1


@pytest.fixture(scope="module")
def bench_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("rtbench")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(bench_realtime.SCHEMA)  # type: ignore[arg-type]
    return dsn


def test_the_benchmark_subscribers_count_every_row_once_and_survive_pings(bench_dsn: str) -> None:
    # The server pings every second and drops a socket that does not answer.
    server = start_server(
        server_env(bench_dsn, FLUXBASE_REALTIME_PING_INTERVAL="1s"), "serve", "--no-migrate"
    )
    clients = bench_realtime.start_clients(2)
    try:
        bench_realtime.open_subscribers(clients, server, SUBSCRIBERS)
        with psycopg.connect(bench_dsn, autocommit=True) as conn:
            wanted = [bench_realtime.insert(conn) for _ in range(3)]
            tally = bench_realtime.Tally.of(clients.ask_all(("collect", wanted, 20), 40))
            assert len(tally.latencies) == 3 * SUBSCRIBERS and tally.lost == 0 and tally.stale == 0
            assert all(0 <= latency < 20 for latency in tally.latencies)

            # A kind-2 row reaches the unfiltered half only; the others wait out the timeout.
            other = bench_realtime.insert(conn, kind=2)
            tally = bench_realtime.Tally.of(clients.ask_all(("collect", [other], 3), 20))
            assert len(tally.latencies) == tally.lost == SUBSCRIBERS // 2

            time.sleep(3.5)  # three pings
            tally = bench_realtime.Tally.of(
                clients.ask_all(("collect", [bench_realtime.insert(conn)], 20), 40)
            )
        assert len(tally.latencies) == SUBSCRIBERS
        assert tally.open == SUBSCRIBERS and tally.closed == 0
        assert tally.clean and not tally.errors
        assert tally.fast == SUBSCRIBERS, "the server's pushes no longer take the clients' fast path"
    finally:
        clients.stop()
        assert server.terminate() == 0
