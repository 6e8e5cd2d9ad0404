"""Longer attacks on a real `fluxbase serve` (make test-nightly): each bounded in count and time,
127.0.0.1 only. While each runs, an ordinary client's p99 latency must stay under 50 ms."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ServerProcess, server_env, start_server
from redis_support import RedisServer
from security_support import peak_kib

pytestmark = [pytest.mark.nightly, pytest.mark.process]


@pytest.fixture
def server(migrated_dsn: str) -> Iterator[ServerProcess]:
    served = start_server(server_env(migrated_dsn), "serve", "--no-migrate")
    try:
        yield served
    finally:
        served.terminate()


# The ordinary client runs in a process of its own: in the test's process, the attackers would
# hold the GIL and the latencies would measure the test, not the server. One request every
# 20 ms, so that a p99 rests on a few hundred requests rather than on the slowest of ninety.
PROBE = """
import json, sys, time, urllib.request
url, stop_file = sys.argv[1], sys.argv[2]
for _ in range(3):  # warm: the first requests pay for connections and imports
    urllib.request.urlopen(url, timeout=10).read()
open(stop_file + ".ready", "w").close()
latencies = []
while len(latencies) < 5000:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    latencies.append(time.perf_counter() - started)
    try:
        open(stop_file).close()
        break
    except FileNotFoundError:
        time.sleep(0.02)
print(json.dumps(latencies))
"""


class LegitClient:
    """One request every 20 ms to /auth/v1/settings until stop(); then its latencies, in seconds."""

    def __init__(self, url: str) -> None:
        self._stop = Path(tempfile.mkdtemp(prefix="fluxbase-probe-")) / "stop"
        self._process = subprocess.Popen(
            [sys.executable, "-c", PROBE, url + "/auth/v1/settings", str(self._stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not self._stop.with_suffix(".ready").exists():
            assert time.monotonic() < deadline and self._process.poll() is None, "the probe did not start"
            time.sleep(0.05)

    def stop(self) -> list[float]:
        self._stop.touch()
        out, _ = self._process.communicate(timeout=30)
        assert self._process.returncode == 0
        latencies: list[float] = json.loads(out)
        return latencies


def legit_latencies(url: str, seconds: float) -> list[float]:
    """The ordinary client's latencies with no attack: what the machine allows at the moment."""
    legit = LegitClient(url)
    time.sleep(seconds)
    return legit.stop()


# The attackers run in a process of their own, at a lower priority: on a real deployment they
# send from other machines, whereas here the kernel's copying of their bodies through the
# loopback (counted to the sender) would otherwise take the server's share of the two cores, and
# the latencies would measure the machine. What reaches the server is the same.
FLOOD = """
import json, os, select, socket, sys, threading, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.nice(10)
chunk = b"a" * (256 * 1024)
HEAD = b"POST /auth/v1/token?grant_type=password HTTP/1.1\\r\\nHost: x\\r\\n"
answers = []

def attacker(chunked):
    # As curl does: send while watching for an early answer, which stops the sending.
    framing = b"Transfer-Encoding: chunked\\r\\n" if chunked else b"Content-Length: 134217728\\r\\n"
    piece = b"%x\\r\\n%s\\r\\n" % (len(chunk), chunk) if chunked else chunk
    answer, pending, sent = b"", b"", 0
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(HEAD + framing + b"\\r\\n")
            sock.setblocking(False)
            deadline = time.monotonic() + 20
            while sent < 128 * 1024 * 1024 and time.monotonic() < deadline:
                readable, writable, _ = select.select([sock], [sock], [], 1)
                if readable:
                    answer = sock.recv(200)
                    break
                if writable:
                    pending = pending or piece
                    written = sock.send(pending)
                    pending, sent = pending[written:], sent + written
    except OSError:
        pass
    answers.append(answer[:12].decode(errors="replace"))


started, waves = time.monotonic(), 0
while waves < 40 and time.monotonic() - started < seconds:  # waves of 16 every 0.25 s
    waves += 1
    threads = [threading.Thread(target=attacker, args=(i % 2 == 0,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    time.sleep(0.25)
print(json.dumps({"waves": waves, "answers": answers}))
"""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def test_slow_loris_at_the_default_timeout(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    head = b"GET /auth/v1/settings HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    legit = LegitClient(server.url)
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(200)]
    started = time.monotonic()
    open_ones = list(connections)
    step = 0
    while open_ones and time.monotonic() - started < 20:  # bounded: the default timeout is 10 s
        for reader, writer in list(open_ones):
            if reader.at_eof() or writer.is_closing():
                open_ones.remove((reader, writer))
                continue
            writer.write(head[step : step + 1])
        step += 1
        await asyncio.sleep(2)
        for reader, writer in list(open_ones):
            try:
                if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                    open_ones.remove((reader, writer))
            except TimeoutError:
                pass
    latencies = legit.stop()
    for _, writer in connections:
        writer.close()
    figures = f"legit p99 {p99(latencies) * 1000:.1f} ms over {len(latencies)} requests during the slow-loris"
    print(figures)
    assert not open_ones, f"{len(open_ones)} slow connections still open after 20 s"
    assert p99(latencies) < 0.05, figures


def test_a_flood_of_large_bodies(server: ServerProcess) -> None:
    pid = server.process.pid
    baseline = legit_latencies(server.url, 5)
    before = peak_kib(pid)
    legit = LegitClient(server.url)
    host, port = server.url.removeprefix("http://").split(":")
    cpu_before = cpu_seconds(pid)
    flood = subprocess.run(
        [sys.executable, "-c", FLOOD, host, port, "5"], capture_output=True, text=True, timeout=120
    )
    spent = cpu_seconds(pid) - cpu_before
    latencies = legit.stop()
    assert flood.returncode == 0, flood.stderr
    attack = json.loads(flood.stdout)
    refused = len(attack["answers"])
    grown = peak_kib(pid) - before
    figures = (
        f"legit p99 {p99(latencies) * 1000:.1f} ms during {refused} refused bodies "
        f"({p99(baseline) * 1000:.1f} ms before the attack); server CPU {spent / max(refused, 1) * 1000:.2f} "
        f"ms each; answers {dict(Counter(attack['answers']))}; peak RSS grew by {grown} KiB"
    )
    print(figures)
    assert refused >= 16 * 10, f"only {attack['waves']} waves: the attack hardly happened"
    # Every body was refused with 413, the answer reaching the client (not lost to a reset).
    assert all(a == "HTTP/1.1 413" for a in attack["answers"]), figures
    assert spent / refused < 0.005, figures
    assert len(latencies) >= 100
    assert grown < 48 * 1024, figures
    assert p99(latencies) < 0.05, figures


def test_four_workers_on_two_servers_share_one_count(migrated_dsn: str, redis_server: RedisServer) -> None:
    env = server_env(
        migrated_dsn,
        FLUXBASE_SECURITY_RATE_LIMIT_ENABLED="true",
        FLUXBASE_SECURITY_RATE_LIMIT_REQUESTS_PER_MINUTE="100",
        FLUXBASE_SECURITY_RATE_LIMIT_BACKEND="redis",
        FLUXBASE_SECURITY_RATE_LIMIT_REDIS_URL=redis_server.url,
    )
    servers: list[ServerProcess] = []
    try:
        servers = [start_server(env, "serve", "--no-migrate", "--workers", "2") for _ in range(2)]
        allowed = 0
        for i in range(150):  # a new connection each: the kernel spreads them over the workers
            try:
                with urllib.request.urlopen(servers[i % 2].url + "/auth/v1/settings", timeout=10) as response:
                    allowed += response.status == 200
            except urllib.error.HTTPError as error:
                assert error.code == 429
        assert allowed == 100
    finally:
        for server in servers:
            server.terminate()
