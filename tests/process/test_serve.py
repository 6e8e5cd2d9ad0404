"""`fluxbase serve` as a process: JSON logs, SIGTERM drain, workers, outages, embedded mode."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from fluxbase.db.embedded import EmbeddedPostgres
from fluxbase.db.migrate import REGISTRY_SCHEMA, Migrator
from harness import (
    AUTHENTICATOR_PASSWORD,
    ServerProcess,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)

ACCESS_FIELDS = {"level", "request_id", "method", "path", "status", "duration_ms", "ip", "user_id", "message"}


def get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for_status(url: str, status: int, within: float, what: str) -> None:
    started = time.monotonic()
    while get(url)[0] != status:
        assert time.monotonic() - started < within, f"{what} (waited {within} s for {status})"
        time.sleep(0.2)


def json_lines(server: ServerProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in server.log_lines() if line.strip()]


def test_plain_fluxbase_serves(migrated_dsn: str) -> None:
    """The runbook's systemd unit runs the binary with no arguments."""
    server = start_server(server_env(migrated_dsn))
    try:
        assert get(server.url + "/health")[0] == 200
    finally:
        assert server.terminate() == 0


def test_serves_and_logs_one_json_object_per_line(migrated_dsn: str) -> None:
    server = start_server(server_env(migrated_dsn), "serve")
    try:
        assert get(server.url + "/health")[0] == 200
        status, _, body = get(server.url + "/ready")
        assert status == 200, body
        status, headers, _ = get(server.url + "/missing?apikey=secret-in-query", {"X-Request-ID": "trace-42"})
        assert status == 404
        assert headers["X-Request-ID"] == "trace-42"
        status, _, metrics = get(server.url + "/metrics")
        assert b"fluxbase_http_requests_total" in metrics
    finally:
        assert server.terminate() == 0
    entries = json_lines(server)  # raises if any line is not JSON
    access = [e for e in entries if e.get("message") == "HTTP request"]
    assert access and all(set(e) >= ACCESS_FIELDS for e in access)
    [missing] = [e for e in access if e["path"] == "/missing"]
    assert missing["level"] == "warn" and missing["status"] == 404 and missing["request_id"] == "trace-42"
    assert missing["ip"] == "127.0.0.1"
    assert "secret-in-query" not in server.log_path.read_text()
    assert next(e for e in access if e["path"] == "/health")["level"] == "info"


def test_sigterm_drains_in_flight_requests_then_exits_0(migrated_dsn: str) -> None:
    server = start_server(server_env(migrated_dsn))
    port = urlsplit(server.url).port
    result: dict[str, object] = {}

    def slow_ready() -> None:
        result["status"], _, result["body"] = get(server.url + "/ready", timeout=30)

    with psycopg.connect(migrated_dsn) as owner:
        # /ready reads the migration registry: holding a lock on it keeps the request in flight.
        owner.execute(f"lock table {REGISTRY_SCHEMA}.changes in access exclusive mode")
        request = threading.Thread(target=slow_ready)
        request.start()
        time.sleep(0.5)
        server.process.send_signal(15)
        time.sleep(0.5)
        # Draining: no new connections are accepted...
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        owner.rollback()  # ...and the request in flight completes.
    request.join(timeout=20)
    assert result.get("status") == 200, result
    assert server.process.wait(timeout=20) == 0
    messages = [e["message"] for e in json_lines(server)]
    assert "shutting down: draining in-flight requests" in messages
    assert messages[-1] == "stopped"


def test_workers_share_the_port_and_metrics_add_up(migrated_dsn: str) -> None:
    server = start_server(server_env(migrated_dsn), "serve", "--workers", "2")
    try:
        for _ in range(40):
            assert get(server.url + "/health")[0] == 200
        # Any worker answers /metrics with every worker's counts.
        _, _, body = get(server.url + "/metrics")
        text = body.decode()
        counted = sum(
            float(v)
            for v in re.findall(
                r'fluxbase_http_requests_total\{method="GET",path="/health",status="200"\} (\S+)', text
            )
        )
        assert counted >= 40
        # On a loaded machine the second worker may still be starting after 40 requests.
        deadline = time.monotonic() + 20
        while True:
            listening = {e["pid"] for e in json_lines(server) if e.get("message") == "listening"}
            if len(listening) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(listening) == 2
    finally:
        assert server.terminate() == 0


def test_ready_follows_the_database_and_health_does_not() -> None:
    cluster = start_local_cluster()
    try:
        dsn = cluster.dsn()
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        server = start_server(server_env(dsn))
        try:
            assert get(server.url + "/ready")[0] == 200
            cluster.stop()
            wait_for_status(server.url + "/ready", 503, 5, "/ready still 200 after the database stopped")
            assert get(server.url + "/health")[0] == 200
            _status, _, body = get(server.url + "/ready")
            assert json.loads(body)["database"] == "unreachable"

            cluster.start()
            wait_for_status(
                server.url + "/ready", 200, 15, "/ready did not recover after the database came back"
            )
        finally:
            assert server.terminate() == 0
    finally:
        stop_local_cluster(cluster)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A folder the unprivileged database user can pass through (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="fluxbase-embedded-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_embedded_database_is_created_kept_and_stopped(reachable_dir: Path) -> None:
    tmp_path = reachable_dir
    data_dir = tmp_path / "data"
    env = {"FLUXBASE_DATA_DIR": str(data_dir), "FLUXBASE_SECURITY_RATE_LIMIT_ENABLED": "false"}
    server = start_server(env, cwd=tmp_path, wait=120)
    embedded = EmbeddedPostgres(data_dir)
    try:
        assert get(server.url + "/ready")[0] == 200
        with psycopg.connect(embedded.dsn(), autocommit=True) as conn:
            conn.execute("create table public.kept (note text)")
            conn.execute("insert into public.kept values ('survives a restart')")
    finally:
        assert server.terminate() == 0
    assert not embedded.running(), "the embedded cluster must stop with the server"
    secret_file = data_dir / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    # Nothing listens on TCP: the socket lives in a folder only the cluster's user may enter.
    conf = (data_dir / "pgdata" / "postgresql.conf").read_text()
    assert "listen_addresses = ''" in conf
    assert stat.S_IMODE((data_dir / "run").stat().st_mode) == 0o700

    server = start_server(env, cwd=tmp_path, wait=120)
    try:
        assert get(server.url + "/ready")[0] == 200
        with psycopg.connect(embedded.dsn()) as conn:
            assert conn.execute("select note from public.kept").fetchone() == ("survives a restart",)
    finally:
        assert server.terminate() == 0
    assert secret_file.read_text() == secret
    if os.geteuid() == 0:
        owner = (data_dir / "pgdata").stat().st_uid
        assert owner != 0, "PostgreSQL must not run as root"
