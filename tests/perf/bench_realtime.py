"""The realtime benchmark (`make bench-realtime`): this branch next to the main branch's code.

Starts a throwaway PostgreSQL with two databases, one migrated by each version (the baseline is
`git archive <--baseline>`, run with the same interpreter through PYTHONPATH), creates an
RLS-protected table with realtime enabled in each, and for each measurement runs the versions
one after the other (alternating, so both see the same machine): the real `fluxbase serve`, N
WebSocket subscribers held by a few client processes (vsn 2.0.0 array frames as realtime-js
sends them, each socket one channel with an INSERT binding, every other one filtered, each
joined with its own user's JWT). It measures:

- one INSERT to 2,000 subscribers: every subscriber's delay from the row's clock_timestamp() to
  receipt (same machine, same clock), a few rounds;
- 20 inserts/s (40,000 events/s offered) for a few seconds: delivered, lost, p99;
- capacity, for 1 and 2 workers: the offered rate rises step by step; the highest step where
  every event arrived and p99 < 1 s;
- 10,000 idle joined sockets: the serving process's VmRSS growth per socket.

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
import shutil
import subprocess
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

import harness  # noqa: E402
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
SINGLE_P99_GOAL_MS = 250.0
LOADED_P99_GOAL_MS = 1000.0
CAPACITY_GOAL = 60_000
STEADY_RATE = 20
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


# --- the servers ------------------------------------------------------------------------------


def raise_nofile_limit() -> int:
    """Sockets need descriptors: the soft limit goes up to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Version:
    """One code version under test: its name, its interpreter and `fluxbase` command, its database."""

    name: str
    bin_dir: Path
    dsn: str


def install_baseline(ref: str, into: Path) -> Path:
    """`git archive ref` unpacked into `into` and installed, with the dependencies it declares,
    into a virtualenv of its own (the baseline may need packages this tree does not);
    returns that virtualenv's bin directory."""
    source = into / "source"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    venv = into / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-e", str(source)],
        check=True,
    )
    return venv / "bin"


def migrate(version: Version) -> None:
    """Migrates the version's database with that version's own migrations and SQL."""
    code = (
        "import sys; from fluxbase.db.migrate import Migrator; "
        "Migrator(sys.argv[1], authenticator_password=sys.argv[2]).up()"
    )
    python = str(version.bin_dir / "python")
    subprocess.run([python, "-c", code, version.dsn, AUTHENTICATOR_PASSWORD], check=True)
    with psycopg.connect(version.dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]


def start_fluxbase(version: Version, connections: int, workers: int) -> ServerProcess:
    limit = str(connections + 100)
    env = server_env(
        version.dsn,
        FLUXBASE_REALTIME_MAX_CONNECTIONS=limit,
        FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_IP=limit,
        FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER=limit,
        FLUXBASE_LOG_LEVEL="warn",
    )
    # harness.start_server runs harness.FLUXBASE: pointed at this version's command.
    harness.FLUXBASE = str(version.bin_dir / "fluxbase")
    return start_server(env, "serve", "--no-migrate", "--workers", str(workers))


def server_pids(server: ServerProcess) -> list[int]:
    """`serve` itself and its workers."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [
        server.process.pid,
        *(int(pid) for pid in (children.read_text().split() if children.exists() else [])),
    ]


def rss_kib(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        raise BenchError(f"no VmRSS for pid {pid}")
    return int(match.group(1))


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --- measurements -----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


def insert(conn: psycopg.Connection[Any], kind: int = 1) -> int:
    row = conn.execute(f"insert into public.{TABLE} (kind) values (%s) returning id", (kind,)).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class Load:
    """One steady load: inserts/s for some seconds, and what the subscribers received."""

    rate: int
    subscribers: int
    seconds: float = 0.0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    closed: int = 0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0

    @property
    def offered(self) -> float:
        return self.rate * self.subscribers

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99) if self.latencies else float("inf")

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.closed == 0 and self.p99 < LOADED_P99_GOAL_MS


@dataclass
class Session:
    """One version at one worker count with N subscribers: latency, steady load, capacity."""

    version: str
    workers: int
    subscribers: int
    connect_seconds: float = 0.0
    single: list[float] = field(default_factory=list)
    single_missing: int = 0
    steady: Load | None = None
    steps: list[Load] = field(default_factory=list)
    error: str = ""

    @property
    def capacity(self) -> Load | None:
        passed = [step for step in self.steps if step.ok]
        return passed[-1] if passed else None


def open_subscribers(clients: Clients, server: ServerProcess, count: int) -> float:
    url = server.url.replace("http://", "ws://") + (
        f"/realtime/v1/websocket?apikey={api_key(JWT_SECRET, 'anon')}&vsn=2.0.0"
    )
    tokens = [(user_token(i), i % 2 == 1) for i in range(count)]
    shares = [tokens[i :: len(clients.pipes)] for i in range(len(clients.pipes))]
    started = time.monotonic()
    answers = clients.ask([("open", url, share) for share in shares], timeout=120 + count / 20)
    opened = sum(a["opened"] for a in answers)
    if opened < count:
        errors = [e for a in answers for e in a["errors"]]
        failed = sum(a["error_count"] for a in answers)
        raise BenchError(f"{opened} of {count} subscribers joined, {failed} failed: {errors[:5]}")
    return time.monotonic() - started


def run_load(
    conn: psycopg.Connection[Any],
    clients: Clients,
    pids: list[int],
    rate: int,
    seconds: int,
    count: int,
    wait: float,
) -> Load:
    load = Load(rate, count)
    cpu_before = cpu_seconds(pids)
    ids: list[int] = []
    start = time.monotonic()
    for n in range(rate * seconds):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        ids.append(insert(conn))
    inserting = time.monotonic() - start
    started_wall = time.time() - inserting
    answers = clients.ask_all(("collect", ids, wait), wait + 60)
    # Delivered events/s: over the time from the first insert to the last receipt.
    load.seconds = max(inserting, max(a["last"] for a in answers) - started_wall)
    load.server_cpu = (cpu_seconds(pids) - cpu_before) / (time.monotonic() - start)
    load.latencies = [x for a in answers for x in a["latencies"]]
    load.delivered = sum(a["messages"] for a in answers)
    load.lost = sum(a["missing"] for a in answers)
    load.duplicated = sum(a["duplicates"] for a in answers)
    load.closed = max(a["closed"] for a in answers)
    return load


def measure(version: Version, workers: int, options: argparse.Namespace) -> Session:
    count = options.subscribers
    session = Session(version.name, workers, count)
    server = start_fluxbase(version, count, workers)
    clients = start_clients(options.clients)
    try:
        pids = server_pids(server)
        session.connect_seconds = open_subscribers(clients, server, count)
        time.sleep(2)
        with psycopg.connect(version.dsn, autocommit=True) as conn:
            for _ in range(options.rounds):
                row_id = insert(conn)
                answers = clients.ask_all(("collect", [row_id], options.timeout), options.timeout + 30)
                session.single += [x for a in answers for x in a["latencies"]]
                session.single_missing += sum(a["missing"] for a in answers)
                time.sleep(0.5)
            print(
                f"  one insert: p99 {percentile(session.single, 0.99):.0f} ms, "
                f"missing {session.single_missing}",
                flush=True,
            )
            session.steady = run_load(
                conn, clients, pids, STEADY_RATE, options.duration, count, options.timeout
            )
            print(f"  {STEADY_RATE} inserts/s: {_load_text(session.steady)}", flush=True)
            for rate in options.steps:
                step = run_load(conn, clients, pids, rate, options.step_seconds, count, options.step_wait)
                session.steps.append(step)
                print(f"  step {rate} inserts/s: {_load_text(step)}", flush=True)
                if not step.ok:
                    break  # the backlog now delays every later step
    except BenchError as error:
        session.error = str(error)
        print(f"  stopped: {error}", flush=True)
    finally:
        clients.stop()
        server.terminate(timeout=60)
    return session


def _load_text(load: Load) -> str:
    rate = load.delivered / max(load.seconds, 1e-9)
    return (
        f"{rate:,.0f} of {load.offered:,.0f} events/s, p99 {load.p99:,.0f} ms, lost {load.lost}, "
        f"closed {load.closed}, server CPU {load.server_cpu:.0%}"
    )


@dataclass
class Idle:
    version: str
    sockets: int
    connect_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    error: str = ""

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.sockets


def measure_idle(version: Version, options: argparse.Namespace) -> Idle:
    idle = Idle(version.name, options.idle)
    server = start_fluxbase(version, options.idle, 1)
    clients = start_clients(options.idle_clients)
    try:
        pid = server_pids(server)[-1]
        time.sleep(1)
        idle.rss_before_kib = rss_kib(pid)
        idle.connect_seconds = open_subscribers(clients, server, options.idle)
        time.sleep(3)
        idle.rss_after_kib = rss_kib(pid)
        print(f"  {options.idle} idle sockets: {idle.kib_per_socket:.1f} KiB each", flush=True)
    except BenchError as error:
        idle.error = str(error)
        print(f"  stopped: {error}", flush=True)
    finally:
        clients.stop()
        server.terminate(timeout=60)
    return idle


# --- the report ------------------------------------------------------------------------------


def machine_description(dsn: str) -> list[str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = re.search(r"^Model name:\s*(.*)$", lscpu, re.MULTILINE)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("show server_version").fetchone()
    return [
        f"- CPUs: {os.cpu_count()} (`nproc`), "
        f"{model.group(1).strip() if model else 'unknown model'} (`lscpu`)",
        f"- PostgreSQL {row[0] if row else '?'} (throwaway cluster, default settings, Unix socket)",
        f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, Linux {platform.release()}",
    ]


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return " / ".join(f"{percentile(values, q):,.0f}" for q in (0.5, 0.99, 1.0))


def _load_cells(load: Load | None) -> str:
    if load is None:
        return "- | - | -"
    rate = load.delivered / max(load.seconds, 1e-9)
    return f"{rate:,.0f} of {load.offered:,.0f} | {load.lost:,} / {load.closed} | {_ms(load.latencies)}"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def report(
    sessions: list[Session], idles: list[Idle], machine: list[str], load: str, options: argparse.Namespace
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    steps = ", ".join(str(rate) for rate in options.steps)
    lines = [
        BEGIN,
        f"Measured {now} with `make bench-realtime`: this tree (`branch`) next to `{options.baseline}` "
        "(`main`, the same measurements run alternately in the same invocation). "
        f"{options.subscribers:,} subscribers in {options.clients} client processes, each its own user; "
        f"one insert: {options.rounds} rounds; "
        f"steady load: {STEADY_RATE} inserts/s for {options.duration} s; "
        f"capacity steps of {options.step_seconds} s at {steps} inserts/s (events/s offered = inserts/s x "
        f"subscribers), stopping at the first step that loses an event or has p99 >= 1 s; "
        f"idle: {options.idle:,} joined sockets on one worker. "
        "Server, clients and PostgreSQL share the machine:",
        "",
        *machine,
        f"- load average (1 min) before and after: {load}; "
        "other sessions' test suites run on the machine too",
        "",
        "| version | workers | joined in s | one insert p50 / p99 / max ms | steady: events/s delivered of "
        "offered | lost / closed | steady p50 / p99 / max ms | capacity events/s (p99 ms) | error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in sessions:
        capacity = s.capacity
        cap = f"{capacity.offered:,.0f} ({capacity.p99:,.0f})" if capacity else "below the first step"
        lines.append(
            f"| {s.version} | {s.workers} | {s.connect_seconds:.1f} | {_ms(s.single)} "
            f"| {_load_cells(s.steady)} | {cap} | {s.error} |"
        )
    lines += [
        "",
        "| version | idle sockets | joined in s | RSS KiB per socket | error |",
        "|---|---:|---:|---:|---|",
    ]
    for i in idles:
        lines.append(
            f"| {i.version} | {i.sockets:,} | {i.connect_seconds:.1f} | {i.kib_per_socket:.1f} | {i.error} |"
        )
    verdicts = []
    for s in sessions:
        if s.version != "branch":
            continue
        if s.workers == 1 and s.single:
            p99 = percentile(s.single, 0.99)
            verdicts.append(
                f"- one insert to {s.subscribers:,} subscribers, p99 < {SINGLE_P99_GOAL_MS:.0f} ms: "
                f"{p99:,.0f} ms, {_verdict(p99 < SINGLE_P99_GOAL_MS and s.single_missing == 0)}."
            )
        if s.steady is not None:
            verdicts.append(
                f"- {s.workers} worker(s), {STEADY_RATE} inserts/s, everything delivered with p99 < 1 s: "
                f"lost {s.steady.lost:,}, p99 {s.steady.p99:,.0f} ms, {_verdict(s.steady.ok)}."
            )
        capacity = s.capacity
        if s.workers == 2:
            value = capacity.offered if capacity else 0.0
            verdicts.append(
                f"- capacity with 2 workers >= {CAPACITY_GOAL:,} events/s: {value:,.0f}, "
                f"{_verdict(value >= CAPACITY_GOAL)}."
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
    parser.add_argument("--baseline", default="main", help="git ref of the code to compare with")
    parser.add_argument("--subscribers", type=int, default=2000, help="subscribers for latency and load")
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the sockets")
    parser.add_argument("--rounds", type=int, default=5, help="single-insert latency rounds")
    parser.add_argument("--duration", type=int, default=10, help=f"seconds of {STEADY_RATE} inserts/s")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for deliveries")
    parser.add_argument(
        "--steps", default="2,5,10,20,30,40,50", help="capacity steps, inserts/s (comma list, rising)"
    )
    parser.add_argument("--step-seconds", type=int, default=5, help="seconds of each capacity step")
    parser.add_argument("--step-wait", type=float, default=10, help="seconds to wait for a step's deliveries")
    parser.add_argument("--workers", default="1,2", help="worker counts (comma list)")
    parser.add_argument(
        "--idle", type=int, default=10_000, help="idle sockets for the memory figure (0: skip)"
    )
    parser.add_argument("--idle-clients", type=int, default=4, help="client processes for the idle sockets")
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.name}")
    options = parser.parse_args()
    options.steps = [int(n) for n in options.steps.split(",")]
    limit = raise_nofile_limit()
    if max(options.subscribers, options.idle) + 200 > limit:
        print(f"RLIMIT_NOFILE is {limit}: too low", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fluxbase-bench-realtime-"))
    print(f"installing {options.baseline} into {work}", flush=True)
    baseline_bin = install_baseline(options.baseline, work)
    cluster = start_local_cluster()
    sessions: list[Session] = []
    idles: list[Idle] = []
    try:
        versions = []
        with psycopg.connect(cluster.dsn(database="postgres"), autocommit=True) as admin:
            for name, bin_dir in (("main", baseline_bin), ("branch", Path(sys.executable).parent)):
                admin.execute(f"create database bench_{name}")  # type: ignore[arg-type]
                versions.append(Version(name, bin_dir, cluster.dsn(database=f"bench_{name}")))
        for version in versions:
            migrate(version)
        machine = machine_description(versions[0].dsn)
        load_before = os.getloadavg()[0]
        for workers in (int(n) for n in options.workers.split(",")):
            for version in versions:
                print(f"{version.name}, {workers} worker(s), {options.subscribers} subscribers", flush=True)
                sessions.append(measure(version, workers, options))
        if options.idle:
            for version in versions:
                print(f"{version.name}, {options.idle} idle sockets", flush=True)
                idles.append(measure_idle(version, options))
    finally:
        stop_local_cluster(cluster)
        shutil.rmtree(work, ignore_errors=True)
    section = report(sessions, idles, machine, f"{load_before:.2f}, {os.getloadavg()[0]:.2f}", options)
    print(section)
    if not options.no_report:
        write_report(section)
        print(f"written to {REPORT.relative_to(ROOT)}")
    return 1 if all(s.error for s in sessions) else 0


if __name__ == "__main__":
    threading.current_thread().name = "bench-realtime"
    sys.exit(main())
