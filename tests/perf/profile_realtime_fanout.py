"""Where one realtime fan-out's time goes: a real server, lean raw-socket subscribers.

Not a benchmark with a verdict (`make bench-realtime` is that): a measuring tool for working on
the fan-out. It starts a throwaway PostgreSQL, migrates it with this tree's code, creates an
RLS-protected table whose policy reads the caller's claims (`auth.uid() is not null`, the shape
of tests/perf/bench_realtime.py), starts `fluxbase serve --workers N` from THIS tree (PYTHONPATH
is set explicitly: the venv's editable install may point at another checkout), and opens N
WebSockets, each its own user, one channel with one INSERT binding (every other one filtered
`kind=eq.1`), vsn 2.0.0.

The subscribers are raw sockets in a few client processes: a minimal WebSocket client (one
asyncio Protocol per socket, frames split by their header, no JSON parsing but one regex per
postgres_changes frame), so nearly all CPU a round costs is the server's and PostgreSQL's.

It reports, per single INSERT: the receipt delay of every subscriber (p50 / p99 / max, from the
row's clock_timestamp() to receipt), and the CPU seconds the server processes, the PostgreSQL
processes and the client processes spent on it; optionally a steady rate, the time of one
realtime.visible_changes() call for G groups (the database's share, without the server), and a
py-spy profile of the worker(s) during the rounds, summarised by function.

    PYTHONPATH=server .venv/bin/python tests/perf/profile_realtime_fanout.py --subscribers 2000
    ... --workers 2 --rate 20 --seconds 5 --py-spy --sql 500,2000

Everything talks to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from fluxbase.db.migrate import Migrator  # noqa: E402
from fluxbase.db.pool import authenticator_dsn  # noqa: E402
from fluxbase.security.api_keys import api_key  # noqa: E402
from harness import (  # noqa: E402
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    server_env,
    start_local_cluster,
    start_server,
    user_token,
)

TABLE = "fanout_events"
TOPIC = "realtime:fanout"
SCHEMA = f"""
create table public.{TABLE} (
  id bigint generated always as identity primary key,
  kind integer not null default 1,
  stamped double precision not null default extract(epoch from clock_timestamp()),
  body text
);
alter table public.{TABLE} enable row level security;
create policy {TABLE}_read on public.{TABLE} for select to authenticated using (auth.uid() is not null);
grant select on public.{TABLE} to authenticated;
select realtime.enable('public.{TABLE}');
"""
STAMPED = re.compile(rb'"stamped":([0-9.eE+-]+)')


def subscriber_token(index: int) -> str:
    """The index-th subscriber is a user of its own."""
    return user_token(f"00000000-0000-0000-0000-{index:012d}")


# --- the lean client ---------------------------------------------------------------------------


def client_frame(text: bytes, opcode: int = 1) -> bytes:
    """A masked client frame; the zero mask leaves the bytes as they are (servers must unmask)."""
    size = len(text)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return header + b"\0\0\0\0" + text


class Subscriber(asyncio.Protocol):
    """One raw WebSocket: handshake, join, then it records each postgres_changes receipt."""

    def __init__(self, host: str, path: str, join: bytes, owner: ClientState) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.join = join
        self.owner = owner
        self.buffer = bytearray()
        self.upgraded = False
        self.joined: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.joined.done():
            self.joined.set_exception(ConnectionError("closed before the join reply"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.joined.set_exception(ConnectionError(bytes(buffer[:200]).decode(errors="replace")))
                return
            del buffer[: end + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(client_frame(self.join))
        offset = 0
        while len(buffer) - offset >= 2:
            opcode, size = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
            start = offset + 2
            if size == 126:
                if len(buffer) - offset < 4:
                    break
                size = struct.unpack_from("!H", buffer, offset + 2)[0]
                start = offset + 4
            elif size == 127:
                if len(buffer) - offset < 10:
                    break
                size = struct.unpack_from("!Q", buffer, offset + 2)[0]
                start = offset + 10
            if len(buffer) < start + size:
                break
            payload = bytes(buffer[start : start + size])
            offset = start + size
            if opcode == 9 and self.transport is not None:  # ping
                self.transport.write(client_frame(payload, 10))
            elif opcode == 1:
                self.text(payload, now)
        del buffer[:offset]

    def text(self, payload: bytes, now: float) -> None:
        if b'"postgres_changes",{' in payload:  # the event, not the join reply's key
            match = STAMPED.search(payload)
            if match is not None:
                self.owner.latencies.append(now - float(match.group(1)))
        elif not self.joined.done() and b'"phx_reply"' in payload:
            self.joined.set_result(b'"status":"ok"' in payload)


class ClientState:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.subscribers: list[Subscriber] = []


async def _open(state: ClientState, port: int, path: str, joins: list[bytes]) -> list[str]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)
    errors: list[str] = []

    async def one(join: bytes) -> None:
        async with gate:
            try:
                _, protocol = await loop.create_connection(
                    lambda: Subscriber(f"127.0.0.1:{port}", path, join, state), "127.0.0.1", port
                )
                if not await asyncio.wait_for(protocol.joined, 30):
                    errors.append("join refused")
                state.subscribers.append(protocol)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(join) for join in joins))
    return errors


async def _collect(state: ClientState, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len(state.latencies) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    latencies, state.latencies = state.latencies, []
    return {
        "latencies": latencies,
        "closed": sum(s.closed for s in state.subscribers),
        "cpu": time.process_time(),
    }


def client_main(pipe: multiprocessing.connection.Connection) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        state = ClientState()
        while True:
            command, *args = await loop.run_in_executor(None, pipe.recv)
            if command == "open":
                pipe.send({"errors": await _open(state, *args)})
            elif command == "collect":
                pipe.send(await _collect(state, *args))
            elif command == "cpu":
                pipe.send({"cpu": time.process_time()})
            else:
                for subscriber in state.subscribers:
                    if subscriber.transport is not None:
                        subscriber.transport.close()
                pipe.send({})
                return

    asyncio.run(run())


class Clients:
    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.processes: list[Any] = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=client_main, args=(theirs,), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def ask(self, messages: list[tuple[Any, ...]], timeout: float) -> list[dict[str, Any]]:
        for pipe, message in zip(self.pipes, messages, strict=True):
            pipe.send(message)
        deadline = time.monotonic() + timeout
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(max(deadline - time.monotonic(), 0.01)):
                raise RuntimeError(f"a client process did not answer {messages[0][0]}")
            answers.append(pipe.recv())
        return answers

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


# --- CPU accounting ----------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000 if ordered else 0.0


def summary(latencies: list[float]) -> str:
    return " / ".join(f"{percentile(latencies, q):.0f}" for q in (0.5, 0.99, 1.0))


# --- py-spy ------------------------------------------------------------------------------------


def summarise_raw(path: Path, top: int) -> str:
    """Self and inclusive sample shares by function, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [re.sub(r" \(.*?/(?=[^/]*$)", " (", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples; self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


# --- the database's share ----------------------------------------------------------------------


def time_visible_changes(dsn: str, groups: int, repeat: int = 5) -> float:
    """Median seconds of one visible_changes() call for `groups` distinct users, one change."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        oid = conn.execute(f"select 'public.{TABLE}'::regclass::oid").fetchone()[0]  # type: ignore[index]
    filters = [{"c": []}, {"c": [{"col": "kind", "op": "eq", "not": False, "v": "1"}]}]
    body = [
        {
            "role": "authenticated",
            "claims": {
                "sub": f"00000000-0000-0000-0000-{i:012d}",
                "role": "authenticated",
                "aud": "authenticated",
                "exp": 2_000_000_000,
            },
            "b": [{"f": 1 + i % 2, "e": "INSERT"}],
        }
        for i in range(groups)
    ]
    changes = [{"t": "INSERT", "r": {"id": 1, "kind": 1, "stamped": 1.0, "body": None}}]
    times = []
    with psycopg.connect(authenticator_dsn(dsn, AUTHENTICATOR_PASSWORD), autocommit=True) as conn:
        for _ in range(repeat):
            started = time.perf_counter()
            with conn.transaction():
                rows = conn.execute(
                    "select group_index, change_index, binding_index, columns from"
                    " realtime.visible_changes(%s::oid::regclass, %s::jsonb, %s::jsonb, %s::jsonb)",
                    (oid, json.dumps(changes), json.dumps(filters), json.dumps(body)),
                ).fetchall()
            times.append(time.perf_counter() - started)
    assert len({r[0] for r in rows}) == groups, len(rows)
    return sorted(times)[len(times) // 2]


# --- the run -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--rounds", type=int, default=10, help="single inserts")
    parser.add_argument("--rate", type=int, default=0, help="then inserts/s for --seconds (0: skip)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--py-spy", action="store_true", help="profile the worker(s) during the rounds")
    parser.add_argument("--sql", default="", help="also time visible_changes() for these group counts")
    parser.add_argument("--code", default=str(ROOT / "server"), help="the server code to run (PYTHONPATH)")
    options = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average {os.getloadavg()}", flush=True)

    cluster = start_local_cluster()
    clients: Clients | None = None
    server = None
    try:
        dsn = cluster.dsn()
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)  # type: ignore[arg-type]
        postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
        for groups in (int(g) for g in options.sql.split(",") if g):
            seconds = time_visible_changes(dsn, groups)
            print(f"visible_changes, {groups} groups, 1 change: {1000 * seconds:.1f} ms", flush=True)

        limit = str(options.subscribers + 100)
        env = server_env(
            dsn,
            PYTHONPATH=options.code,
            FLUXBASE_REALTIME_MAX_CONNECTIONS=limit,
            FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_IP=limit,
            FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER=limit,
            FLUXBASE_LOG_LEVEL="warn",
        )
        server = start_server(env, "serve", "--no-migrate", "--workers", str(options.workers))
        pids = [server.process.pid, *children(server.process.pid)]
        port = int(server.url.rsplit(":", 1)[1])
        path = f"/realtime/v1/websocket?apikey={api_key(JWT_SECRET, 'anon')}&vsn=2.0.0"
        joins = []
        for i in range(options.subscribers):
            binding: dict[str, Any] = {"event": "INSERT", "schema": "public", "table": TABLE}
            if i % 2:
                binding["filter"] = "kind=eq.1"
            config = {"broadcast": {"self": False}, "presence": {"key": ""}, "postgres_changes": [binding]}
            payload = {"config": config, "access_token": subscriber_token(i)}
            joins.append(json.dumps(["1", "1", TOPIC, "phx_join", payload]).encode())
        clients = Clients(options.clients)
        shares = [joins[i :: options.clients] for i in range(options.clients)]
        started = time.monotonic()
        answers = clients.ask([("open", port, path, share) for share in shares], 300)
        errors = [e for a in answers for e in a["errors"]]
        if errors:
            print(f"{len(errors)} joins failed: {errors[:3]}")
            return 1
        print(f"{options.subscribers} subscribers joined in {time.monotonic() - started:.1f} s", flush=True)
        time.sleep(1)
        idle_before = sum(map(process_cpu, pids))
        time.sleep(3)
        idle = (sum(map(process_cpu, pids)) - idle_before) / 3
        print(f"idle server with {options.subscribers} sockets: {idle:.0%} of a core", flush=True)

        spy = None
        spy_files: list[Path] = []
        if options.py_spy:
            workers = children(server.process.pid) or [server.process.pid]
            spy = []
            for pid in workers:
                out = Path(tempfile.mkdtemp(prefix="fanout-spy-")) / "raw.txt"
                spy_files.append(out)
                spy.append(
                    subprocess.Popen(
                        [
                            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                            "record",
                            "--format",
                            "raw",
                            "-r",
                            "250",
                            "-o",
                            str(out),
                            "--pid",
                            str(pid),
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1)

        pg_pids = lambda: [postmaster, *children(postmaster)]  # noqa: E731
        all_latencies: list[float] = []
        server_cpu = pg_cpu = client_cpu = 0.0
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(options.rounds):
                before = (
                    sum(map(process_cpu, pids)),
                    sum(map(process_cpu, pg_pids())),
                    sum(a["cpu"] for a in clients.ask([("cpu",)] * options.clients, 10)),
                )
                conn.execute(f"insert into public.{TABLE} (kind) values (1)")
                answers = clients.ask([("collect", len(s), 30.0) for s in shares], 60)
                latencies = [x for a in answers for x in a["latencies"]]
                time.sleep(0.3)  # let the server finish its bookkeeping before reading its CPU
                server_cpu += sum(map(process_cpu, pids)) - before[0]
                pg_cpu += sum(map(process_cpu, pg_pids())) - before[1]
                client_cpu += sum(a["cpu"] for a in clients.ask([("cpu",)] * options.clients, 10)) - before[2]
                all_latencies += latencies
                missing = options.subscribers - len(latencies)
                print(f"  insert: p50 / p99 / max {summary(latencies)} ms, missing {missing}", flush=True)
                time.sleep(0.2)
            rounds = options.rounds
            print(
                f"one insert, {rounds} rounds: p50 / p99 / max {summary(all_latencies)} ms; CPU per insert:"
                f" server {1000 * server_cpu / rounds:.0f} ms, PostgreSQL {1000 * pg_cpu / rounds:.0f} ms,"
                f" clients {1000 * client_cpu / rounds:.0f} ms",
                flush=True,
            )
            if spy is not None:
                for process in spy:
                    process.send_signal(2)
                for process in spy:
                    process.wait(timeout=30)
                for out in spy_files:
                    if out.exists():
                        print(summarise_raw(out, 25))
                        shutil.rmtree(out.parent, ignore_errors=True)

            if options.rate:
                count = options.rate * options.seconds
                before_cpu = sum(map(process_cpu, pids))
                start = time.monotonic()
                for n in range(count):
                    pause = start + n / options.rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    conn.execute(f"insert into public.{TABLE} (kind) values (1)")
                answers = clients.ask([("collect", len(s) * count, 30.0) for s in shares], 90)
                elapsed = time.monotonic() - start
                latencies = [x for a in answers for x in a["latencies"]]
                print(
                    f"{options.rate} inserts/s for {options.seconds} s: delivered {len(latencies)} of"
                    f" {count * options.subscribers}, p50 / p99 / max {summary(latencies)} ms,"
                    f" server CPU {(sum(map(process_cpu, pids)) - before_cpu) / elapsed:.0%},"
                    f" closed {max(a['closed'] for a in answers)}",
                    flush=True,
                )
    finally:
        if clients is not None:
            clients.stop()
        if server is not None:
            server.terminate(timeout=60)
        harness.stop_local_cluster(cluster)
    print(f"load average {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
