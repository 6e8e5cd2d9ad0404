"""The realtime benchmark (`make bench-realtime`): N WebSocket subscribers on one `fluxbase serve`.

Starts a throwaway PostgreSQL, migrates, creates an RLS-protected table with realtime enabled,
runs `fluxbase serve` (1 worker) and opens N subscribers from a few client processes: vsn 2.0.0
array frames as realtime-js sends them, each socket one channel with a postgres_changes binding
(every other one with a filter), each joined with its own user's JWT. Then it measures:

- memory per idle connection: the server's VmRSS before and after the N sockets joined, over N;
- latency: one INSERT stamped with clock_timestamp(); for every subscriber the delay from that
  stamp to receipt (same machine, same clock), a few rounds;
- throughput: 100 inserts/s for a few seconds from another connection; events/s delivered,
  lost and duplicated messages, and the latency under that load.

Results go into docs/BENCHMARKS.md between the realtime markers. Every wait has a timeout;
everything talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import multiprocessing
import multiprocessing.connection
import os
import platform
import re
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import psycopg

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fluxbase.db.migrate import Migrator  # noqa: E402
from fluxbase.security.api_keys import api_key  # noqa: E402
from harness import (  # noqa: E402 - the test harness is found through the path set above
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    ServerProcess,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)

REPORT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- bench-realtime:begin (written by tests/perf/bench_realtime.py) -->"
END = "<!-- bench-realtime:end -->"
P99_GOAL_MS = 500.0
GOAL_SUBSCRIBERS = 2000
TABLE = "bench_events"

SCHEMA = f"""
create table public.{TABLE} (
  id bigint generated always as identity primary key,
  kind integer not null default 1,
  -- The insert's own clock: subscribers on this machine subtract it from their receipt time.
  stamped double precision not null default extract(epoch from clock_timestamp()),
  body text
);
alter table public.{TABLE} enable row level security;
-- Every signed-in subscriber sees every row, through a policy that reads the caller's claims.
create policy {TABLE}_read on public.{TABLE} for select to authenticated using (auth.uid() is not null);
grant select on public.{TABLE} to authenticated;
select realtime.enable('public.{TABLE}');
"""


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims to: connections failed or timed out."""


def user_token(index: int) -> str:
    claims = {
        "sub": f"00000000-0000-0000-0000-{index:012d}",
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


# --- the client processes --------------------------------------------------------------------


@dataclass
class Subscriber:
    ws: aiohttp.ClientWebSocketResponse | None = None
    received: dict[int, float] = field(default_factory=dict)  # row id -> latency in seconds
    duplicates: int = 0
    task: asyncio.Task[None] | None = None


@dataclass
class ClientState:
    subscribers: list[Subscriber] = field(default_factory=list)
    first_receipt: float = 0.0
    last_receipt: float = 0.0
    messages: int = 0


async def _read(subscriber: Subscriber, state: ClientState) -> None:
    assert subscriber.ws is not None
    async for frame in subscriber.ws:
        now = time.time()
        if frame.type != aiohttp.WSMsgType.TEXT:
            continue
        message = orjson.loads(frame.data)
        if message[3] != "postgres_changes":
            continue
        record = message[4]["data"]["record"]
        row_id = record["id"]
        if row_id in subscriber.received:
            subscriber.duplicates += 1
            continue
        subscriber.received[row_id] = now - record["stamped"]
        state.messages += 1
        if not state.first_receipt:
            state.first_receipt = now
        state.last_receipt = now


async def _open_one(
    session: aiohttp.ClientSession, url: str, token: str, filtered: bool, state: ClientState, timeout: float
) -> Subscriber:
    ws = await session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5), heartbeat=None)
    binding: dict[str, Any] = {"event": "INSERT", "schema": "public", "table": TABLE}
    if filtered:
        binding["filter"] = "kind=eq.1"
    config = {"broadcast": {"self": False}, "presence": {"key": ""}, "postgres_changes": [binding]}
    join = ["1", "1", "realtime:bench", "phx_join", {"config": config, "access_token": token}]
    await ws.send_str(orjson.dumps(join).decode())
    deadline = time.monotonic() + timeout
    while True:
        frame = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        if frame.type != aiohttp.WSMsgType.TEXT:
            raise BenchError(f"join: unexpected frame {frame.type}")
        reply = orjson.loads(frame.data)
        if reply[3] == "phx_reply" and reply[1] == "1":
            if reply[4].get("status") != "ok":
                raise BenchError(f"join refused: {reply[4]}")
            break
    subscriber = Subscriber(ws)
    subscriber.task = asyncio.create_task(_read(subscriber, state))
    return subscriber


async def _open_all(
    session: aiohttp.ClientSession, url: str, tokens: list[tuple[str, bool]], state: ClientState
) -> list[str]:
    gate = asyncio.Semaphore(50)  # the server's listen backlog is 1024
    errors: list[str] = []

    async def one(token: str, filtered: bool) -> None:
        async with gate:
            try:
                state.subscribers.append(
                    await asyncio.wait_for(_open_one(session, url, token, filtered, state, 20), 30)
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(token, filtered) for token, filtered in tokens))
    return errors


async def _collect(state: ClientState, expected: list[int], timeout: float) -> dict[str, Any]:
    """Waits until every subscriber has every expected row (or the timeout); hands back latencies."""
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(wanted <= s.received.keys() for s in state.subscribers):
            break
        await asyncio.sleep(0.02)
    latencies: list[float] = []
    missing = 0
    for subscriber in state.subscribers:
        for row_id in expected:
            latency = subscriber.received.pop(row_id, None)
            if latency is None:
                missing += 1
            else:
                latencies.append(latency)
        subscriber.received.clear()
    duplicates = sum(s.duplicates for s in state.subscribers)
    closed = sum(1 for s in state.subscribers if s.ws is None or s.ws.closed)
    result = {
        "latencies": latencies,
        "missing": missing,
        "duplicates": duplicates,
        "closed": closed,
        "first": state.first_receipt,
        "last": state.last_receipt,
        "messages": state.messages,
        "cpu": time.process_time(),
    }
    for subscriber in state.subscribers:
        subscriber.duplicates = 0
    state.first_receipt = state.last_receipt = 0.0
    state.messages = 0
    return result


def client_main(pipe: multiprocessing.connection.Connection) -> None:
    """One client process: obeys open / collect / close from the driver over a pipe."""
    raise_nofile_limit()
    asyncio.run(_client_loop(pipe))


async def _client_loop(pipe: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    state = ClientState()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "open":
                url, tokens = args
                started = time.monotonic()
                errors = await _open_all(session, url, tokens, state)
                pipe.send(
                    {
                        "opened": len(state.subscribers),
                        "errors": errors[:5],
                        "error_count": len(errors),
                        "seconds": time.monotonic() - started,
                    }
                )
            elif command == "collect":
                expected, timeout = args
                pipe.send(await _collect(state, expected, timeout))
            elif command == "close":
                for subscriber in state.subscribers:
                    if subscriber.task is not None:
                        subscriber.task.cancel()
                await asyncio.gather(
                    *(_close(s.ws) for s in state.subscribers if s.ws is not None), return_exceptions=True
                )
                pipe.send({"closed": True})
                return


async def _close(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 2)


@dataclass
class Clients:
    """The driver's side of the client processes."""

    processes: list[multiprocessing.process.BaseProcess]
    pipes: list[multiprocessing.connection.Connection]

    def ask(self, messages: list[tuple[Any, ...]], timeout: float) -> list[dict[str, Any]]:
        for pipe, message in zip(self.pipes, messages, strict=True):
            pipe.send(message)
        answers = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(deadline - time.monotonic(), 0.01)):
                raise BenchError(f"a client process did not answer {messages[0][0]} within {timeout:.0f} s")
            answers.append(pipe.recv())
        return answers

    def ask_all(self, message: tuple[Any, ...], timeout: float) -> list[dict[str, Any]]:
        return self.ask([message] * len(self.pipes), timeout)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for process in self.processes:
            process.join(timeout=20)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def start_clients(count: int) -> Clients:
    context = multiprocessing.get_context("spawn")
    processes, pipes = [], []
    for _ in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=client_main, args=(theirs,), daemon=True)
        process.start()
        processes.append(process)
        pipes.append(ours)
    return Clients(processes, pipes)


# --- the server ------------------------------------------------------------------------------


def raise_nofile_limit() -> int:
    """Sockets need descriptors: the soft limit goes up to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_fluxbase(dsn: str, connections: int) -> ServerProcess:
    limit = str(connections + 100)
    env = server_env(
        dsn,
        FLUXBASE_REALTIME_MAX_CONNECTIONS=limit,
        FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_IP=limit,
        FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER=limit,
        FLUXBASE_LOG_LEVEL="warn",
    )
    return start_server(env, "serve", "--no-migrate", "--workers", "1")


def serving_pid(server: ServerProcess) -> int:
    """The process that holds the sockets: `serve` itself with one worker, else its only child."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if len(pids) == 1 else server.process.pid


def rss_kib(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        raise BenchError(f"no VmRSS for pid {pid}")
    return int(match.group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- one measured run ------------------------------------------------------------------------


@dataclass
class Result:
    subscribers: int
    clients: int
    connect_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    single: list[float] = field(default_factory=list)  # latencies (s), all rounds
    single_missing: int = 0
    rounds: int = 0
    throughput_inserts: int = 0
    insert_seconds: float = 0.0
    delivered: int = 0
    delivery_seconds: float = 0.0
    lost: int = 0
    duplicated: int = 0
    closed: int = 0
    loaded: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # share of one core during the throughput phase
    client_cpu: list[float] = field(default_factory=list)  # same, per client process
    error: str = ""

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.subscribers


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


def insert(conn: psycopg.Connection[Any], kind: int = 1) -> int:
    row = conn.execute(f"insert into public.{TABLE} (kind) values (%s) returning id", (kind,)).fetchone()
    assert row is not None
    return int(row[0])


def measure(dsn: str, count: int, options: argparse.Namespace) -> Result:
    result = Result(count, options.clients)
    server = start_fluxbase(dsn, count)
    clients = start_clients(options.clients)
    try:
        pid = serving_pid(server)
        time.sleep(1)
        result.rss_before_kib = rss_kib(pid)
        url = server.url.replace("http://", "ws://") + (
            f"/realtime/v1/websocket?apikey={api_key(JWT_SECRET, 'anon')}&vsn=2.0.0"
        )
        tokens = [(user_token(i), i % 2 == 1) for i in range(count)]
        shares = [tokens[i :: options.clients] for i in range(options.clients)]
        started = time.monotonic()
        answers = clients.ask([("open", url, share) for share in shares], timeout=120 + count / 20)
        result.connect_seconds = time.monotonic() - started
        opened = sum(a["opened"] for a in answers)
        if opened < count:
            errors = [e for a in answers for e in a["errors"]]
            failed = sum(a["error_count"] for a in answers)
            raise BenchError(f"{opened} of {count} subscribers joined, {failed} failed: {errors[:5]}")
        print(f"  {count} subscribers joined in {result.connect_seconds:.1f} s", flush=True)
        time.sleep(2)
        result.rss_after_kib = rss_kib(pid)
        with psycopg.connect(dsn, autocommit=True) as conn:
            # Latency of one insert to everyone, a few times.
            for _ in range(options.rounds):
                row_id = insert(conn)
                answers = clients.ask_all(("collect", [row_id], options.timeout), options.timeout + 30)
                result.single += [x for a in answers for x in a["latencies"]]
                result.single_missing += sum(a["missing"] for a in answers)
                result.duplicated += sum(a["duplicates"] for a in answers)
                result.rounds += 1
                time.sleep(0.5)
            print(
                f"  one insert: p50 {percentile(result.single, 0.5):.0f} ms, "
                f"p99 {percentile(result.single, 0.99):.0f} ms, missing {result.single_missing}",
                flush=True,
            )
            # Throughput: a steady insert rate from this connection, the clients just count.
            cpu_server = cpu_seconds(pid)
            cpu_clients = [cpu_seconds(p.pid) for p in clients.processes if p.pid is not None]
            ids: list[int] = []
            start = time.monotonic()
            total = options.rate * options.duration
            for n in range(total):
                pause = start + n / options.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                ids.append(insert(conn))
            result.insert_seconds = time.monotonic() - start
            started_wall = time.time() - result.insert_seconds
            answers = clients.ask_all(("collect", ids, options.timeout), options.timeout + 60)
            elapsed = time.monotonic() - start
            result.server_cpu = (cpu_seconds(pid) - cpu_server) / elapsed
            result.client_cpu = [
                (cpu_seconds(p.pid) - before) / elapsed
                for p, before in zip(clients.processes, cpu_clients, strict=True)
                if p.pid is not None
            ]
            result.throughput_inserts = total
            result.loaded = [x for a in answers for x in a["latencies"]]
            result.delivered = sum(a["messages"] for a in answers)
            result.lost = sum(a["missing"] for a in answers)
            result.duplicated += sum(a["duplicates"] for a in answers)
            result.closed = max(a["closed"] for a in answers)
            last = max(a["last"] for a in answers)
            result.delivery_seconds = max(last - started_wall, result.insert_seconds)
        print(
            f"  {options.rate} inserts/s: {result.delivered / result.delivery_seconds:,.0f} events/s, "
            f"p99 {percentile(result.loaded, 0.99) if result.loaded else float('nan'):.0f} ms, "
            f"undelivered {result.lost}, duplicated {result.duplicated}, closed {result.closed}",
            flush=True,
        )
    except BenchError as error:
        result.error = str(error)
        print(f"  stopped: {error}", flush=True)
    finally:
        clients.stop()
        server.terminate()
    return result


# --- the report ------------------------------------------------------------------------------


def machine_description(dsn: str) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("show server_version").fetchone()
    return [
        f"- CPUs: {os.cpu_count()} (`nproc`), {model.group(1).strip() if model else 'unknown model'}",
        f"- PostgreSQL {row[0] if row else '?'} (throwaway cluster, default settings, Unix socket)",
        f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, Linux {platform.release()}",
    ]


def _ms(values: list[float]) -> str:
    if not values:
        return "- / - / - / -"
    return " / ".join(f"{percentile(values, q):,.0f}" for q in (0.5, 0.9, 0.99, 1.0))


def report(results: list[Result], machine: list[str], load: str, options: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        f"Measured {now} with `make bench-realtime` (`python tests/perf/bench_realtime.py "
        f"--subscribers {options.subscribers} --clients {options.clients}`): one `fluxbase serve` worker; "
        f"the subscribers live in {options.clients} client processes (aiohttp) on the same machine. "
        "Each subscriber is its own user (its own JWT), joins one channel with vsn 2.0.0 frames and an "
        f"INSERT binding on `{TABLE}` (every other one with the filter `kind=eq.1`); the table has RLS "
        "with a policy reading `auth.uid()`. Latency is receipt time minus the row's `clock_timestamp()` "
        f"(same clock). One insert: {options.rounds} rounds, every subscriber's latency counted. "
        f"Load: {options.rate} inserts/s for {options.duration} s from another connection. "
        "Server, clients and PostgreSQL share the machine:",
        "",
        *machine,
        f"- load average (1 min) before and after: {load}; the machine runs other sessions' test suites "
        "too, which take CPU from these numbers",
        "",
        "| subscribers | joined in s | RSS KiB per idle connection | one insert: p50 / p90 / p99 / max ms "
        "| events/s delivered (offered) | undelivered / duplicated / sockets closed "
        "| under load: p50 / p90 / p99 / max ms "
        "| server CPU, clients CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for r in results:
        if r.error and not r.single:
            lines.append(f"| {r.subscribers:,} | failed: {r.error} | | | | | | |")
            continue
        offered = r.throughput_inserts * r.subscribers / max(r.insert_seconds, 1e-9)
        rate = r.delivered / r.delivery_seconds if r.delivery_seconds else 0.0
        lines.append(
            f"| {r.subscribers:,} | {r.connect_seconds:.1f} | {r.kib_per_connection:.0f} | {_ms(r.single)} "
            f"| {rate:,.0f} ({offered:,.0f}) | {r.lost + r.single_missing:,} / {r.duplicated} / {r.closed} "
            f"| {_ms(r.loaded)} "
            f"| {r.server_cpu:.0%}, " + " + ".join(f"{c:.0%}" for c in r.client_cpu) + " |"
        )
        if r.error:
            lines.append(f"| | stopped: {r.error} | | | | | | |")
        if r.subscribers == GOAL_SUBSCRIBERS and r.single:
            p99 = percentile(r.single, 0.99)
            met = "met" if p99 < P99_GOAL_MS else "**missed**"
            verdicts.append(
                f"- p99 delivery of one insert < {P99_GOAL_MS:.0f} ms to {GOAL_SUBSCRIBERS:,} subscribers: "
                f"{p99:,.0f} ms, {met}."
            )
        if r.loaded or r.lost:
            verdicts.append(
                f"- {r.subscribers:,} subscribers at {options.rate} inserts/s: {rate:,.0f} of {offered:,.0f} "
                f"events/s delivered; {r.lost:,} messages not delivered within {options.timeout:.0f} s "
                f"of the last insert, {r.duplicated} duplicated, {r.closed} sockets closed by the server; "
                f"p99 latency of what arrived {percentile(r.loaded, 0.99) if r.loaded else 0:,.0f} ms."
            )
    lines += ["", "### Goals", "", *verdicts, "", END]
    return "\n".join(lines)


def write_report(section: str) -> None:
    """Replaces the generated realtime section; everything else in the file stays."""
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        REPORT.write_text(head + section + rest.split(END, 1)[1])
        return
    REPORT.write_text(text.rstrip("\n") + "\n\n## Realtime\n\n" + section + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", default="2000,5000", help="comma list of subscriber counts")
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the sockets")
    parser.add_argument("--rounds", type=int, default=5, help="single-insert latency rounds")
    parser.add_argument("--rate", type=int, default=100, help="inserts per second under load")
    parser.add_argument("--duration", type=int, default=10, help="seconds of inserts under load")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for deliveries")
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.name}")
    options = parser.parse_args()
    limit = raise_nofile_limit()
    counts = [int(n) for n in options.subscribers.split(",")]
    if max(counts) + 200 > limit:
        print(f"RLIMIT_NOFILE is {limit}: too low for {max(counts)} sockets", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="fluxbase-bench-realtime-"))
    cluster = start_local_cluster()
    results: list[Result] = []
    try:
        dsn = cluster.dsn()
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        machine = machine_description(dsn)
        load_before = os.getloadavg()[0]
        for count in counts:
            print(f"{count} subscribers, {options.clients} client processes", flush=True)
            result = measure(dsn, count, options)
            results.append(result)
            if result.error:
                break  # a larger count would fail too
    finally:
        stop_local_cluster(cluster)
    section = report(results, machine, f"{load_before:.2f}, {os.getloadavg()[0]:.2f}", options)
    print(section)
    if not options.no_report:
        write_report(section)
        print(f"written to {REPORT.relative_to(ROOT)}; logs in {log_dir}")
    return 1 if any(r.error for r in results) and not any(r.single for r in results) else 0


if __name__ == "__main__":
    threading.current_thread().name = "bench-realtime"
    sys.exit(main())
