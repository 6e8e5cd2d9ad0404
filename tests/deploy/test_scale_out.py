"""Scale-out on loopback the way operators run it: three `fluxbase serve` replicas behind nginx
(the repository's deploy/nginx files, in an unprivileged config of the test's own) sharing one
PostgreSQL and one redis-server.

Realtime crosses replicas through PostgreSQL, the rate limit is one count in Redis, and a
rolling restart under a bounded wrk load loses no request.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
import pytest
from deploy_support import DEPLOY, tool

from fluxbase.db.migrate import Migrator
from harness import (
    AUTHENTICATOR_PASSWORD,
    PostgresServer,
    ServerProcess,
    free_port,
    server_env,
    start_server,
)
from realtime_support import SERVICE_KEY, open_socket, user_token
from redis_support import RedisServer

pytestmark = pytest.mark.process

REPLICAS = 3
IP_LIMIT = 10  # anonymous requests per minute per client address, across all replicas
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
USER = "cccccccc-0000-0000-0000-000000000003"
SCHEMA = """
create table public.scaleout (id bigint primary key, label text);
grant select on public.scaleout to anon, authenticated;
grant select, insert, update, delete on public.scaleout to service_role;
select realtime.enable('public.scaleout');
insert into public.scaleout values (0, 'seed');
"""


def nginx_config(folder: Path, port: int, replica_ports: list[int]) -> Path:
    """The repository's http- and server-level files, around an upstream of the replicas, with
    the pid, logs and temporary files in `folder` so no system path is touched."""
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in replica_ports)
    config = folder / "nginx.conf"
    config.write_text(
        f"""{user}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
{temp}
    include {DEPLOY / "nginx" / "fluxbase-http.conf"};
    access_log {folder / "access.log"} fluxbase_json;
    upstream fluxbase {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        include {DEPLOY / "nginx" / "fluxbase-server.conf"};
    }}
}}
"""
    )
    return config


@dataclass
class Cluster:
    dsn: str
    env: dict[str, str]
    ports: list[int]
    nginx_url: str
    nginx_dir: Path
    replicas: list[ServerProcess] = field(default_factory=list)

    def start(self, index: int) -> None:
        server = start_server(self.env, "serve", "--no-migrate", port=self.ports[index])
        wait_ready(server.url)
        self.replicas[index] = server

    def restart(self, index: int) -> None:
        code = self.replicas[index].terminate(timeout=40)
        assert code == 0, f"replica {index + 1} exited with {code} on SIGTERM"
        self.start(index)


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/ready did not answer 200 within {timeout} s")


@pytest.fixture
def cluster(postgres: PostgresServer, redis_server: RedisServer) -> Iterator[Cluster]:
    dsn = postgres.create_database("scaleout")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
    env = server_env(
        dsn,
        FLUXBASE_SECURITY_RATE_LIMIT_ENABLED="true",
        FLUXBASE_SECURITY_RATE_LIMIT_REQUESTS_PER_MINUTE=str(IP_LIMIT),
        FLUXBASE_SECURITY_RATE_LIMIT_USER_REQUESTS_PER_MINUTE="1000000",
        FLUXBASE_SECURITY_RATE_LIMIT_BACKEND="redis",
        FLUXBASE_SECURITY_RATE_LIMIT_REDIS_URL=redis_server.url,
        # nginx connects from 127.0.0.1; the clients below come from other loopback addresses.
        FLUXBASE_SECURITY_TRUSTED_PROXIES="127.0.0.1",
        FLUXBASE_DATABASE_MAX_CONNECTIONS="8",
        FLUXBASE_DATABASE_MIN_CONNECTIONS="1",
        FLUXBASE_LOG_LEVEL="warn",
    )
    nginx_dir = Path(tempfile.mkdtemp(prefix="fluxbase-nginx-"))
    nginx_dir.chmod(0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for kind in TEMP_KINDS:
            (nginx_dir / kind).mkdir()
            os.chown(nginx_dir / kind, nobody.pw_uid, nobody.pw_gid)
    ports = [free_port() for _ in range(REPLICAS)]
    nginx_port = free_port()
    state = Cluster(dsn, env, ports, f"http://127.0.0.1:{nginx_port}", nginx_dir, [None] * REPLICAS)  # type: ignore[list-item]
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for index in range(REPLICAS):
            state.start(index)
        config = nginx_config(nginx_dir, nginx_port, ports)
        nginx_bin = tool("nginx")
        check = subprocess.run(
            [nginx_bin, "-t", "-c", str(config)], capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(
            [nginx_bin, "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(state.nginx_url)
        yield state
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for server in state.replicas:
            if server is not None:
                server.terminate()
        shutil.rmtree(nginx_dir, ignore_errors=True)
        postgres.drop_database(dsn)


async def test_a_change_written_through_replica_3_reaches_subscribers_of_replica_1(cluster: Cluster) -> None:
    token = user_token(USER)
    config = {"postgres_changes": [{"event": "INSERT", "schema": "public", "table": "scaleout"}]}
    async with aiohttp.ClientSession() as session:
        sockets = []
        # One subscriber on replica 1 itself, one through nginx (the WebSocket upgrade).
        for base in (cluster.replicas[0].url, cluster.nginx_url):
            socket = await open_socket(
                session, f"{base.replace('http', 'ws')}/realtime/v1/websocket?apikey={token}&vsn=1.0.0"
            )
            reply = await socket.join("realtime:scaleout", config, access_token=token)
            assert reply["status"] == "ok", reply
            sockets.append(socket)
        async with session.post(
            cluster.replicas[2].url + "/rest/v1/scaleout",
            json={"id": 42, "label": "written through replica 3"},
            headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
        ) as response:
            assert response.status == 201, await response.text()
        for socket in sockets:
            [change] = await socket.changes(1, timeout=10)
            assert change["data"]["record"] == {"id": 42, "label": "written through replica 3"}
            await socket.close()


def _replica_request_counts(cluster: Cluster, path: str) -> list[float]:
    counts = []
    for server in cluster.replicas:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
        pattern = re.compile(
            r'^fluxbase_http_requests_total\{[^}]*path="' + re.escape(path) + r'"[^}]*\} (\S+)$', re.M
        )
        counts.append(sum(float(value) for value in pattern.findall(text)))
    return counts


async def test_one_rate_limit_counts_across_the_three_replicas(cluster: Cluster) -> None:
    """A client behind nginx gets IP_LIMIT requests a minute in all, whichever replica answers;
    a forged X-Forwarded-For does not buy a fresh budget; another client has its own."""

    async def statuses(source: str, count: int, forged: bool = False) -> list[int]:
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            result = []
            for n in range(count):
                headers = {"X-Forwarded-For": f"203.0.113.{n}"} if forged else {}
                async with session.get(cluster.nginx_url + "/auth/v1/settings", headers=headers) as response:
                    result.append(response.status)
            return result

    first = await statuses("127.0.0.5", IP_LIMIT + 2)
    assert first == [200] * IP_LIMIT + [429, 429]
    assert await statuses("127.0.0.5", 3, forged=True) == [429] * 3
    assert await statuses("127.0.0.6", 2) == [200, 200]
    # nginx spread the requests: every replica answered some of them.
    assert all(count > 0 for count in _replica_request_counts(cluster, "/auth/v1/settings"))


def test_a_rolling_restart_under_load_loses_no_request(cluster: Cluster, tmp_path: Path) -> None:
    wrk = tool("wrk")
    token = user_token(USER)
    duration = 30
    restarted: list[float] = []
    errors: list[BaseException] = []

    def roll() -> None:
        try:
            time.sleep(3)
            for index in range(REPLICAS):
                started = time.monotonic()
                cluster.restart(index)
                restarted.append(time.monotonic() - started)
                time.sleep(1)
        except BaseException as error:  # reported by the test thread below
            errors.append(error)

    roller = threading.Thread(target=roll)
    roller.start()
    result = subprocess.run(
        [wrk, "-t2", "-c16", f"-d{duration}s", "--timeout", "10s",
         "-H", f"apikey: {token}", "-H", f"Authorization: Bearer {token}",
         f"{cluster.nginx_url}/rest/v1/scaleout?select=id,label&order=id"],
        capture_output=True, text=True, timeout=duration + 30,
    )  # fmt: skip
    roller.join(timeout=120)
    assert not errors, errors
    assert len(restarted) == REPLICAS, "the rolling restart did not finish within the load"
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    assert done > 100, output
    assert "Non-2xx or 3xx responses" not in output, output
    assert "Socket errors" not in output, output
    (tmp_path / "wrk.txt").write_text(output + json.dumps({"restart_seconds": restarted}))
    print(output, "restart seconds:", restarted)
    # Each replica serves again after its restart.
    for server in cluster.replicas:
        wait_ready(server.url)
