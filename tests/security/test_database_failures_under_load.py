"""Backend kills and database restarts under load (issue 10): a real `fluxbase serve` on a cluster of
its own, clients writing, reading, calling RPC and signing in while the server's backends are
killed and the cluster restarts (a fast shutdown, then a crash).  Every answer is the work done or
a retryable 503/504 in the service's own error shape, never a 500; no write answered 2xx is lost,
none is committed twice; the server serves again within seconds of the database coming back, and
its log holds no traceback.  Bounded: about 20 s of load."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg
import pytest

from fluxbase.db.embedded import EmbeddedPostgres
from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import (
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    PostgresServer,
    ServerProcess,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)

pytestmark = pytest.mark.process

ANON = {"apikey": api_key(JWT_SECRET, "anon")}
PASSWORD = "under-load-passw0rd"
WORKERS = 6
MINIMAL = {"Prefer": "return=minimal"}
# Once the database accepts connections again, the server must answer 2xx within this.
RECOVERY = 5.0

SCHEMA = """
create table public.marks (
  id bigint generated always as identity primary key,
  marker text not null,  -- chosen by the client; deliberately not unique, so a double write shows
  via text not null
);
grant select, insert on public.marks to anon;
create function public.add_mark(marker text) returns bigint language sql volatile
  as $$ insert into public.marks (marker, via) values (marker, 'rpc') returning id $$;
grant execute on function public.add_mark(text) to anon;
notify pgrst, 'reload schema';
"""

# What a request may answer while the database fails under it: its success, or the service's
# retryable error (PostgREST's PGRST000/001/003, GoTrue's unexpected_failure/request_timeout).
SUCCESS = {"insert": 201, "rpc": 200, "read": 200, "token": 200}
REST_UNAVAILABLE = {503: {"PGRST000", "PGRST001"}, 504: {"PGRST003"}}
AUTH_UNAVAILABLE = {503: {"unexpected_failure"}, 504: {"request_timeout"}}


@dataclass
class Answer:
    op: str
    marker: str | None
    status: int  # -1: no HTTP answer at all (connection dropped, timed out)
    body: Any
    started: float
    ended: float

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS[self.op]

    def acceptable(self) -> bool:
        if self.ok:
            return True
        table = AUTH_UNAVAILABLE if self.op == "token" else REST_UNAVAILABLE
        field = "error_code" if self.op == "token" else "code"
        return isinstance(self.body, dict) and self.body.get(field) in table.get(self.status, ())


@dataclass
class Cluster:
    local: EmbeddedPostgres
    dsn: str  # the migrated database, as its owner


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A cluster of this test's own: restarting the run's shared one would fail other tests."""
    local = start_local_cluster()
    try:
        dsn = PostgresServer(local.dsn(database="postgres"), local=local).create_database("failures")
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        yield Cluster(local, dsn)
    finally:
        stop_local_cluster(local)


@pytest.fixture
def server(cluster: Cluster) -> Iterator[ServerProcess]:
    env = server_env(
        cluster.dsn,
        FLUXBASE_AUTH_AUTOCONFIRM="true",
        FLUXBASE_AUTH_RATE_LIMIT_SIGN_IN_ATTEMPTS="1000000",
        FLUXBASE_DATABASE_MAX_CONNECTIONS="8",
        FLUXBASE_DATABASE_MIN_CONNECTIONS="4",
    )
    served = start_server(env, "serve", "--no-migrate")
    try:
        yield served
    finally:
        served.terminate()


async def _send(session: aiohttp.ClientSession, url: str, op: str, email: str) -> Answer:
    marker = f"{op}-{uuid.uuid4()}" if op in ("insert", "rpc") else None
    requests: dict[str, tuple[str, str, Any, dict[str, str]]] = {
        "insert": ("POST", "/rest/v1/marks", {"marker": marker, "via": "insert"}, MINIMAL),
        "rpc": ("POST", "/rest/v1/rpc/add_mark", {"marker": marker}, {}),
        "read": ("GET", "/rest/v1/marks?select=id,marker&order=id.desc&limit=5", None, {}),
        "token": ("POST", "/auth/v1/token?grant_type=password", {"email": email, "password": PASSWORD}, {}),
    }
    method, path, body, headers = requests[op]
    started = time.monotonic()
    try:
        async with session.request(method, url + path, json=body, headers={**ANON, **headers}) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Answer(op, marker, -1, repr(exc), started, time.monotonic())
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:200].decode(errors="replace")
    return Answer(op, marker, status, parsed, started, time.monotonic())


def _kill_backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = conn.execute(
            "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity"
            " where usename = 'authenticator' and application_name = 'fluxbase'"
        ).fetchone()
    return int(killed[0]) if killed else 0


async def test_backend_kills_and_restarts_lose_no_acknowledged_write_and_answer_no_500(
    cluster: Cluster, server: ServerProcess
) -> None:
    email = f"load-{uuid.uuid4().hex[:10]}@example.org"
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        signup = await session.post(
            server.url + "/auth/v1/signup", json={"email": email, "password": PASSWORD}, headers=ANON
        )
        assert signup.status == 200, await signup.text()
        # The schema cache loads the table on the NOTIFY, asynchronously: wait (bounded) for it.
        deadline = time.monotonic() + 10
        while not (await _send(session, server.url, "read", email)).ok:
            assert time.monotonic() < deadline, "the schema cache never saw public.marks"
            await asyncio.sleep(0.1)

        answers: list[Answer] = []
        stop = asyncio.Event()

        async def worker(index: int) -> None:
            ops = ["insert", "rpc", "insert", "read", "token"]
            turn = index
            while not stop.is_set():
                answers.append(await _send(session, server.url, ops[turn % len(ops)], email))
                turn += 1

        def disrupt() -> dict[str, float]:
            """Kills the server's backends, then restarts the cluster twice; when each came back."""
            time.sleep(1.5)  # the load runs on a healthy database first
            killed = 0
            for _ in range(12):
                killed += _kill_backends(cluster.dsn)
                time.sleep(0.25)
            time.sleep(1.0)
            cluster.local.stop("fast")  # a clean shutdown: sessions end with admin_shutdown
            time.sleep(1.0)
            cluster.local.start()
            fast_up = time.monotonic()
            time.sleep(2.5)
            cluster.local.stop("immediate")  # a crash: no goodbye to any session
            time.sleep(1.0)
            cluster.local.start()
            crash_up = time.monotonic()
            time.sleep(RECOVERY + 1)
            return {"killed": killed, "fast_up": fast_up, "crash_up": crash_up}

        workers = [asyncio.create_task(worker(i)) for i in range(WORKERS)]
        try:
            events = await asyncio.wait_for(asyncio.to_thread(disrupt), 90)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), 60)

    assert server.terminate() == 0

    # Every answer was the work done or a retryable 503/504 in the service's shape; never a 500.
    wrong = [a for a in answers if not a.acceptable()]
    assert not wrong, [(a.op, a.status, a.body) for a in wrong[:10]]
    assert events["killed"] > 0, "no backend of the server was ever killed"
    refused = [a for a in answers if not a.ok]
    assert refused, "no request met the failures: the test proved nothing"

    # No write acknowledged and lost; none committed twice, whatever its answer said.
    with psycopg.connect(cluster.dsn) as conn:
        rows = conn.execute("select marker, count(*) from public.marks group by marker").fetchall()
    committed = dict(rows)
    writes = [a for a in answers if a.marker is not None]
    lost = [a.marker for a in writes if a.ok and committed.get(a.marker) != 1]
    assert not lost, f"{len(lost)} writes answered 2xx but not committed exactly once: {lost[:5]}"
    doubled = [m for m, count in committed.items() if count > 1]
    assert not doubled, doubled[:5]
    assert len([a for a in writes if a.ok]) >= 20, "too few writes succeeded to say anything"

    # After each restart the server serves again within seconds, without being restarted itself.
    recovered = {}
    for name in ("fast_up", "crash_up"):
        back = [a for a in answers if a.ok and a.op != "read" and a.started >= events[name]]
        assert back, f"no write succeeded after the {name} restart"
        recovered[name] = min(a.ended for a in back) - events[name]
        assert recovered[name] < RECOVERY, f"{recovered[name]:.1f} s to serve writes after the {name} restart"
    outcomes = Counter(
        (a.op, a.status, a.body.get("code") if isinstance(a.body, dict) else None) for a in answers
    )
    print(
        f"{len(answers)} answers {dict(outcomes)}; {events['killed']} backends killed; recovered {recovered}"
    )

    tracebacks = [line for line in server.log_lines() if "Traceback" in line]
    assert not tracebacks, "\n".join(tracebacks[:3])
