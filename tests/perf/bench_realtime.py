"""The realtime benchmark (`make bench-realtime`): this branch next to the main branch's code.

Starts a throwaway PostgreSQL with two databases, one migrated by each version (the baseline is
`git archive <--baseline>` installed into a virtualenv of its own), creates an RLS-protected
table with realtime enabled in each, and for each measurement runs the versions one after the
other (alternating, so both see the same machine): the real `fluxbase serve`, N WebSocket
subscribers held by lean client processes (realtime_client.py: vsn 2.0.0 array frames as
realtime-js sends them, each socket one channel with an INSERT binding, every other one
filtered, each joined with its own user's JWT). It measures:

- one INSERT to 2,000 subscribers: every subscriber's delay from the row's clock_timestamp() to
  receipt (same machine, same clock), a few rounds;
- 20 inserts/s (40,000 events/s offered) for a few seconds: delivered, lost, p99;
- capacity, for 1 and 2 workers: the offered rate rises step by step; the highest step where
  every event arrived and p99 < 1 s;
- 10,000 idle joined sockets: the serving process's VmRSS growth per socket;
- during each load, the CPU used by the server, PostgreSQL, the clients and the whole machine.

Results go into docs/BENCHMARKS.md between the realtime markers. Every wait has a timeout;
everything talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import multiprocessing.connection
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psycopg

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from generated_section import write_generated_section  # noqa: E402

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
    user_token,
)

REPORT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- bench-realtime:begin (written by tests/perf/bench_realtime.py) -->"
END = "<!-- bench-realtime:end -->"
SINGLE_P99_GOAL_MS = 250.0
LOADED_P99_GOAL_MS = 1000.0
CAPACITY_GOAL = 60_000
STEADY_RATE = 20
STEPS = (2, 5, 10, 20, 25, 30, 35, 40, 50)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENT_BUSY = 0.8  # a client process's share of one CPU above which the report warns
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


def subscriber_token(index: int) -> str:
    """The index-th subscriber is a user of its own."""
    return user_token(f"00000000-0000-0000-0000-{index:012d}")


# --- the client processes --------------------------------------------------------------------


@dataclass
class Clients:
    """The driver's side of the client processes (tests/perf/realtime_client.py, run as scripts)."""

    processes: list[subprocess.Popen[bytes]]
    pipes: list[multiprocessing.connection.Connection]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def ask(self, messages: list[tuple[Any, ...]], timeout: float) -> list[dict[str, Any]]:
        answers = []
        try:
            for pipe, message in zip(self.pipes, messages, strict=True):
                pipe.send(message)
            deadline = time.monotonic() + timeout
            for pipe in self.pipes:
                if not pipe.poll(max(deadline - time.monotonic(), 0.01)):
                    raise BenchError(
                        f"a client process did not answer {messages[0][0]} within {timeout:.0f} s"
                    )
                answers.append(pipe.recv())
        except (OSError, EOFError) as exc:
            raise BenchError(f"a client process died during {messages[0][0]}: {exc!r}") from exc
        return answers

    def ask_all(self, message: tuple[Any, ...], timeout: float) -> list[dict[str, Any]]:
        return self.ask([message] * len(self.pipes), timeout)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for pipe in self.pipes:
            pipe.close()


def start_clients(count: int) -> Clients:
    processes, pipes = [], []
    for _ in range(count):
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, str(PERF / "realtime_client.py"), str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        processes.append(process)
        pipes.append(multiprocessing.connection.Connection(ours.detach()))
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
    # This tree's code comes first on the path: the interpreter's own `fluxbase` may be an
    # editable install of another checkout (a worktree run with the main venv).
    pythonpath: str = ""

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": self.pythonpath} if self.pythonpath else {}


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
    env = {**os.environ, **version.env()}
    if not version.pythonpath:
        env.pop("PYTHONPATH", None)
    subprocess.run([python, "-c", code, version.dsn, AUTHENTICATOR_PASSWORD], check=True, env=env)
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
        **version.env(),
    )
    # harness.start_server runs harness.FLUXBASE: pointed at this version's command.
    harness.FLUXBASE = str(version.bin_dir / "fluxbase")
    return start_server(env, "serve", "--no-migrate", "--workers", str(workers))


def server_pids(server: ServerProcess) -> list[int]:
    """`serve` itself and its workers."""
    return [server.process.pid, *_children(server.process.pid)]


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def rss_kib(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if match is None:
        raise BenchError(f"no VmRSS for pid {pid}")
    return int(match.group(1))


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes and all their descendants, living or reaped (a reaped child's
    time moves into its parent's cutime/cstime, so the sum stays continuous)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
            total += tree_cpu_seconds(_children(pid))
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all CPUs, every process, this benchmark or not)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS  # less idle and iowait


@dataclass
class Usage:
    """CPU used in cores (1.0 = one CPU busy all the time) over a window, by who used it."""

    server: float = 0.0
    postgres: float = 0.0
    clients: float = 0.0
    machine: float = 0.0


@dataclass
class Meter:
    """Reads the CPU counters of the server, PostgreSQL, the client processes and the machine."""

    server: list[int]
    postgres: int
    clients: list[int]

    def read(self) -> tuple[float, Usage]:
        return time.monotonic(), Usage(
            tree_cpu_seconds(self.server),
            tree_cpu_seconds([self.postgres]),
            tree_cpu_seconds(self.clients),
            machine_busy_seconds(),
        )

    def since(self, before: tuple[float, Usage]) -> tuple[Usage, Usage]:
        """(CPU seconds, cores) used since `before`."""
        (start, first), (end, last) = before, self.read()
        used = Usage(
            last.server - first.server,
            last.postgres - first.postgres,
            last.clients - first.clients,
            last.machine - first.machine,
        )
        wall = max(end - start, 1e-9)
        return used, Usage(used.server / wall, used.postgres / wall, used.clients / wall, used.machine / wall)


# --- measurements -----------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


def insert(conn: psycopg.Connection[Any], kind: int = 1) -> int:
    row = conn.execute(f"insert into public.{TABLE} (kind) values (%s) returning id", (kind,)).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class Tally:
    """What the client processes answered to one `collect`, summed."""

    latencies: list[float] = field(default_factory=list)
    lost: int = 0  # (subscriber, row) pairs not received within the wait
    stale: int = 0  # receipts of rows from an earlier measurement, arriving late
    duplicated: int = 0
    wrong: int = 0  # postgres_changes pushes that fail the subscriber's checks
    closed: int = 0  # sockets the server or the network closed since the last collect
    open: int = 0
    last_receipt: float = 0.0
    fast: int = 0  # pushes read by the fast path
    full_parses: int = 0
    heartbeats_missed: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, answers: list[dict[str, Any]]) -> Tally:
        return cls(
            latencies=[x for a in answers for x in a["latencies"]],
            lost=sum(a["missing"] for a in answers),
            stale=sum(a["stale"] for a in answers),
            duplicated=sum(a["duplicates"] for a in answers),
            wrong=sum(a["wrong"] for a in answers),
            closed=sum(a["closed"] for a in answers),
            open=sum(a["open"] for a in answers),
            last_receipt=max(a["last"] for a in answers),
            fast=sum(a["fast"] for a in answers),
            full_parses=sum(a["full_parses"] for a in answers),
            heartbeats_missed=sum(a["heartbeats_missed"] for a in answers),
            errors=[e for a in answers for e in a["errors"]][:5],
        )

    @property
    def clean(self) -> bool:
        """Nothing left behind: the next measurement starts on an idle server."""
        return not (self.lost or self.closed or self.wrong or self.duplicated)

    def anomalies(self) -> str:
        counts = (
            (self.duplicated, "duplicated"),
            (self.wrong, "wrong pushes"),
            (self.stale, "late from an earlier load"),
            (self.heartbeats_missed, "heartbeats unanswered"),
        )
        return ", ".join(f"{count:,} {what}" for count, what in counts if count)


@dataclass
class Load:
    """One steady load: inserts/s for some seconds, and what the subscribers received."""

    rate: int
    subscribers: int
    inserts: int = 0
    insert_seconds: float = 0.0  # how long the inserts took (longer than planned if the database lagged)
    seconds: float = 0.0  # from the first insert to the last receipt
    tally: Tally = field(default_factory=Tally)
    cores: Usage = field(default_factory=Usage)
    client_us_per_event: float = 0.0

    @property
    def offered(self) -> float:
        """Events/s offered: rows inserted times subscribers over the time the inserts took."""
        return self.inserts * self.subscribers / max(self.inserts / self.rate, self.insert_seconds, 1e-9)

    @property
    def delivered(self) -> int:
        return len(self.tally.latencies)

    @property
    def delivered_rate(self) -> float:
        return self.delivered / max(self.seconds, 1e-9)

    @property
    def p99(self) -> float:
        return percentile(self.tally.latencies, 0.99) if self.tally.latencies else float("inf")

    @property
    def ok(self) -> bool:
        return self.tally.clean and self.delivered > 0 and self.p99 < LOADED_P99_GOAL_MS


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
    restarts: int = 0
    anomalies: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def capacity(self) -> Load | None:
        passed = [step for step in self.steps if step.ok]
        return passed[-1] if passed else None


class Rig:
    """One version's server with `count` joined subscribers in the client processes; restartable,
    so that a measurement that left a backlog or closed sockets does not delay the next one."""

    def __init__(self, version: Version, workers: int, count: int, clients: int, postgres: int) -> None:
        self.version, self.workers, self.count, self.client_count = version, workers, count, clients
        self.postgres = postgres
        self.server: ServerProcess | None = None
        self.clients: Clients | None = None
        self.meter = Meter([], postgres, [])

    def start(self) -> float:
        """Starts the server and the clients, joins every subscriber; the seconds the joins took."""
        self.server = start_fluxbase(self.version, self.count, self.workers)
        self.clients = start_clients(self.client_count)
        self.meter = Meter([self.server.process.pid], self.postgres, self.clients.pids)
        return open_subscribers(self.clients, self.server, self.count)

    def stop(self) -> str:
        """Stops clients and server; what went wrong, if anything (a server deaf to SIGTERM is killed)."""
        if self.clients is not None:
            self.clients.stop()
            self.clients = None
        server, self.server = self.server, None
        if server is None:
            return ""
        try:
            server.terminate(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
            return "server did not exit within 60 s of SIGTERM (killed)"
        return ""

    def collect(self, ids: list[int], wait: float) -> Tally:
        assert self.clients is not None
        return Tally.of(self.clients.ask_all(("collect", ids, wait), wait + 60))


def open_subscribers(clients: Clients, server: ServerProcess, count: int) -> float:
    address = urlsplit(server.url)
    path = f"/realtime/v1/websocket?apikey={api_key(JWT_SECRET, 'anon')}&vsn=2.0.0"
    tokens = [(subscriber_token(i), i % 2 == 1) for i in range(count)]
    shares = [tokens[i :: len(clients.pipes)] for i in range(len(clients.pipes))]
    started = time.monotonic()
    answers = clients.ask(
        [("open", address.hostname, address.port, path, share) for share in shares], timeout=120 + count / 20
    )
    opened = sum(a["opened"] for a in answers)
    if opened < count:
        errors = [e for a in answers for e in a["errors"]]
        failed = sum(a["error_count"] for a in answers)
        raise BenchError(f"{opened} of {count} subscribers joined, {failed} failed: {errors[:5]}")
    return time.monotonic() - started


def run_load(conn: psycopg.Connection[Any], rig: Rig, rate: int, seconds: int, wait: float) -> Load:
    """`rate` inserts/s for `seconds`, then waits up to `wait` s for every subscriber's copy."""
    load = Load(rate, rig.count)
    before = rig.meter.read()
    ids: list[int] = []
    start = time.monotonic()
    for n in range(rate * seconds):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        ids.append(insert(conn))
    load.inserts, load.insert_seconds = len(ids), time.monotonic() - start
    started_wall = time.time() - load.insert_seconds
    load.tally = rig.collect(ids, wait)
    used, load.cores = rig.meter.since(before)
    load.seconds = max(load.inserts / rate, load.insert_seconds, load.tally.last_receipt - started_wall)
    load.client_us_per_event = used.clients / max(load.delivered, 1) * 1e6
    return load


def measure(version: Version, workers: int, options: argparse.Namespace, postgres: int) -> Session:
    session = Session(version.name, workers, options.subscribers)
    rig = Rig(version, workers, options.subscribers, options.clients, postgres)

    def restart(why: str) -> None:
        print(f"  restarting the server and subscribers: {why}", flush=True)
        stopped = rig.stop()
        if stopped:
            session.anomalies.append(stopped)
        session.restarts += 1
        rig.start()
        time.sleep(2)

    try:
        session.connect_seconds = rig.start()
        time.sleep(2)
        with psycopg.connect(version.dsn, autocommit=True) as conn:
            conn.execute("set statement_timeout = '10s'")
            for _ in range(options.rounds):
                tally = rig.collect([insert(conn)], options.timeout)
                session.single += tally.latencies
                session.single_missing += tally.lost
                session.anomalies += [tally.anomalies()] if tally.anomalies() else []
                time.sleep(0.5)
            print(
                f"  one insert: p99 {percentile(session.single, 0.99) if session.single else 0:.0f} ms, "
                f"missing {session.single_missing}",
                flush=True,
            )
            if session.single_missing:
                restart("the single inserts left events undelivered")
            session.steady = run_load(conn, rig, STEADY_RATE, options.duration, options.timeout)
            print(f"  {STEADY_RATE} inserts/s: {_load_text(session.steady)}", flush=True)
            if not session.steady.tally.clean:
                restart("the steady load left a backlog or closed sockets")
            for rate in options.steps:
                time.sleep(1)
                step = run_load(conn, rig, rate, options.step_seconds, options.step_wait)
                session.steps.append(step)
                print(f"  step {rate} inserts/s: {_load_text(step)}", flush=True)
                if not step.ok:
                    break  # a higher rate would fail too
    except (BenchError, psycopg.Error, AssertionError, OSError, subprocess.SubprocessError) as error:
        # AssertionError: the harness's word for a server that did not start.
        session.error = str(error)[:300]
        print(f"  stopped: {error}", flush=True)
    finally:
        stopped = rig.stop()
        if stopped:
            session.anomalies.append(stopped)
    for load in [session.steady, *session.steps]:
        if load is not None and load.tally.anomalies():
            session.anomalies.append(f"{load.rate}/s: {load.tally.anomalies()}")
        # A client process near a full CPU delays its own receipts: then the figure is theirs.
        if load is not None and load.cores.clients / options.clients > CLIENT_BUSY:
            session.anomalies.append(
                f"{load.rate}/s: client processes {load.cores.clients / options.clients:.0%} busy"
            )
    return session


def _load_text(load: Load) -> str:
    cores = load.cores
    return (
        f"{load.delivered_rate:,.0f} of {load.offered:,.0f} events/s, p99 {load.p99:,.0f} ms, "
        f"lost {load.tally.lost}, closed {load.tally.closed}, CPU cores server {cores.server:.2f} "
        f"PostgreSQL {cores.postgres:.2f} clients {cores.clients:.2f} ({load.client_us_per_event:.1f} us "
        f"per event) machine {cores.machine:.2f}"
        + (f"; {load.tally.anomalies()}" if load.tally.anomalies() else "")
        + (f"; errors {load.tally.errors}" if load.tally.errors else "")
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


def measure_idle(version: Version, options: argparse.Namespace, postgres: int) -> Idle:
    idle = Idle(version.name, options.idle)
    rig = Rig(version, 1, options.idle, options.idle_clients, postgres)
    try:
        rig.server = start_fluxbase(version, options.idle, 1)
        rig.clients = start_clients(options.idle_clients)
        pid = server_pids(rig.server)[-1]
        time.sleep(1)
        idle.rss_before_kib = rss_kib(pid)
        idle.connect_seconds = open_subscribers(rig.clients, rig.server, options.idle)
        time.sleep(3)
        idle.rss_after_kib = rss_kib(pid)
        # Held on through the server's pings and the Phoenix heartbeats, none may be dropped.
        time.sleep(options.idle_hold)
        tally = rig.collect([], 0)
        if tally.open < options.idle:
            raise BenchError(f"{options.idle - tally.open} idle sockets were closed: {tally.errors}")
        if tally.anomalies():
            raise BenchError(tally.anomalies())
        print(f"  {options.idle} idle sockets: {idle.kib_per_socket:.1f} KiB each", flush=True)
    except (BenchError, AssertionError, OSError, subprocess.SubprocessError) as error:
        idle.error = str(error)[:300]
        print(f"  stopped: {error}", flush=True)
    finally:
        stopped = rig.stop()
        idle.error = "; ".join(e for e in (idle.error, stopped) if e)
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
        f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"uvloop {importlib.metadata.version('uvloop')}, Linux {platform.release()}",
    ]


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return " / ".join(f"{percentile(values, q):,.0f}" for q in (0.5, 0.99, 1.0))


def _load_cells(load: Load | None) -> str:
    if load is None:
        return "- | - | -"
    return (
        f"{load.delivered_rate:,.0f} of {load.offered:,.0f} | {load.tally.lost:,} / {load.tally.closed} "
        f"| {_ms(load.tally.latencies)}"
    )


def _cpu_rows(session: Session) -> list[str]:
    """Who used the machine: the steady load, the capacity step and the first step that failed."""
    failed = next((step for step in session.steps if not step.ok), None)
    chosen = [("steady", session.steady), ("capacity", session.capacity), ("first failed step", failed)]
    rows = []
    for what, load in chosen:
        if load is None:
            continue
        c = load.cores
        rows.append(
            f"| {session.version} | {session.workers} | {what}: {load.rate} inserts/s "
            f"| {load.delivered_rate:,.0f} of {load.offered:,.0f} "
            f"| {c.server:.2f} / {c.postgres:.2f} / {c.clients:.2f} / {c.machine:.2f} "
            f"| {load.client_us_per_event:.1f} |"
        )
    return rows


def _session_error(session: Session) -> str:
    notes = [session.error] if session.error else []
    if session.restarts:
        notes.append(f"{session.restarts} restart(s) after a lossy load")
    return "; ".join(notes + session.anomalies)


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
        f"{options.subscribers:,} subscribers in {options.clients} client process(es) "
        "(uvloop, one asyncio Protocol per socket), each its own user; "
        f"one insert: {options.rounds} rounds; "
        f"steady load: {STEADY_RATE} inserts/s for {options.duration} s; "
        f"capacity steps of {options.step_seconds} s at {steps} inserts/s (events/s offered = inserts/s x "
        f"subscribers), stopping at the first step that loses an event or has p99 >= 1 s; "
        f"idle: {options.idle:,} joined sockets on one worker in {options.idle_clients} client process(es), "
        f"held {options.idle_hold:.0f} s more. "
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
        if not s.steps:
            cap = "-"
        lines.append(
            f"| {s.version} | {s.workers} | {s.connect_seconds:.1f} | {_ms(s.single)} "
            f"| {_load_cells(s.steady)} | {cap} | {_session_error(s)} |"
        )
    lines += [
        "",
        "Who used the machine during a load (CPU in cores, from /proc: the server with its workers, "
        "PostgreSQL with its backends, the client processes, and the whole machine including other "
        "sessions), and the client processes' CPU per event received:",
        "",
        "| version | workers | load | events/s delivered of offered | CPU cores: server / PostgreSQL / "
        "clients / machine | client µs per event |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for s in sessions:
        lines += _cpu_rows(s)
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
                f"lost {s.steady.tally.lost:,}, p99 {s.steady.p99:,.0f} ms, {_verdict(s.steady.ok)}."
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
    write_generated_section(REPORT, section, BEGIN, END, "Realtime")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default="main", help="git ref of the code to compare with")
    parser.add_argument("--subscribers", type=int, default=2000, help="subscribers for latency and load")
    parser.add_argument("--clients", type=int, default=1, help="client processes holding the sockets")
    parser.add_argument(
        "--versions", default="main,branch", help="which of main (the baseline) and branch to measure"
    )
    parser.add_argument("--rounds", type=int, default=5, help="single-insert latency rounds")
    parser.add_argument("--duration", type=int, default=10, help=f"seconds of {STEADY_RATE} inserts/s")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for deliveries")
    parser.add_argument(
        "--steps", default=",".join(map(str, STEPS)), help="capacity steps, inserts/s (comma list, rising)"
    )
    parser.add_argument("--step-seconds", type=int, default=5, help="seconds of each capacity step")
    parser.add_argument("--step-wait", type=float, default=10, help="seconds to wait for a step's deliveries")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts (comma list; empty: idle sockets only)"
    )
    parser.add_argument(
        "--idle", type=int, default=10_000, help="idle sockets for the memory figure (0: skip)"
    )
    parser.add_argument(
        "--idle-hold", type=float, default=30, help="seconds the idle sockets are held after the RSS reading"
    )
    parser.add_argument("--idle-clients", type=int, default=1, help="client processes for the idle sockets")
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.name}")
    options = parser.parse_args()
    options.steps = [int(n) for n in options.steps.split(",") if n]
    chosen = set(options.versions.split(","))
    limit = raise_nofile_limit()
    if max(options.subscribers, options.idle) + 200 > limit:
        print(f"RLIMIT_NOFILE is {limit}: too low", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fluxbase-bench-realtime-"))
    baseline_bin = Path()
    if "main" in chosen:
        print(f"installing {options.baseline} into {work}", flush=True)
        baseline_bin = install_baseline(options.baseline, work)
    cluster = start_local_cluster()
    postgres = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
    sessions: list[Session] = []
    idles: list[Idle] = []
    try:
        versions = []
        with psycopg.connect(cluster.dsn(database="postgres"), autocommit=True) as admin:
            for name, bin_dir in (("main", baseline_bin), ("branch", Path(sys.executable).parent)):
                if name not in chosen:
                    continue
                admin.execute(f"create database bench_{name}")  # type: ignore[arg-type]
                path = str(ROOT / "server") if name == "branch" else ""
                versions.append(Version(name, bin_dir, cluster.dsn(database=f"bench_{name}"), path))
        for version in versions:
            migrate(version)
        machine = machine_description(versions[0].dsn)
        load_before = os.getloadavg()[0]
        for workers in (int(n) for n in options.workers.split(",") if n):
            for version in versions:
                print(f"{version.name}, {workers} worker(s), {options.subscribers} subscribers", flush=True)
                sessions.append(measure(version, workers, options, postgres))
        if options.idle:
            for version in versions:
                print(f"{version.name}, {options.idle} idle sockets", flush=True)
                idles.append(measure_idle(version, options, postgres))
    finally:
        stop_local_cluster(cluster)
        shutil.rmtree(work, ignore_errors=True)
    section = report(sessions, idles, machine, f"{load_before:.2f}, {os.getloadavg()[0]:.2f}", options)
    print(section)
    if not options.no_report:
        write_report(section)
        print(f"written to {REPORT.relative_to(ROOT)}")
    errors = [s.error for s in sessions] + [i.error for i in idles]
    return 1 if errors and all(errors) else 0  # nothing at all was measured


if __name__ == "__main__":
    threading.current_thread().name = "bench-realtime"
    sys.exit(main())
