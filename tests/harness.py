"""Test harness: a real PostgreSQL per run, migrated databases, the app in-process or as a process.

PostgreSQL comes from testcontainers when a Docker engine answers, otherwise
from a throwaway cluster built with the local server binaries (run as an
unprivileged user when the tests run as root).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import jwt
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.config import AuthConfig, Config, DatabaseConfig, RateLimitConfig, SecurityConfig
from fluxbase.db.embedded import EmbeddedPostgres
from fluxbase.db.migrate import Migrator, derive_authenticator_password

ROOT = Path(__file__).resolve().parents[1]
FLUXBASE = str(Path(sys.executable).with_name("fluxbase"))
JWT_SECRET = "0f3c5a9e7d1b2468ace13579bdf02468ace13579bdf02468ace13579bdf0aa55"
AUTHENTICATOR_PASSWORD = derive_authenticator_password(JWT_SECRET)


def _docker_engine_answers() -> bool:
    if os.environ.get("FLUXBASE_TEST_NO_DOCKER") or not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@dataclass
class PostgresServer:
    """A running PostgreSQL the tests may create databases in (as its superuser)."""

    admin_dsn: str  # superuser, database `postgres`
    local: EmbeddedPostgres | None = None
    created: list[str] = field(default_factory=list)

    def create_database(self, prefix: str = "t", *, icu_locale: str | None = None) -> str:
        """A new database; with `icu_locale` (e.g. "en-US") its default collation is that ICU
        locale, so text sorts as in a real deployment ('b' < 'B' < 'é' < 'f'), whereas the
        cluster itself is built with --no-locale. ICU needs no operating-system locale."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        locale = ""
        if icu_locale is not None:
            if not icu_locale.replace("-", "").isalnum():
                raise ValueError(f"not an ICU locale name: {icu_locale!r}")
            locale = f" template template0 locale_provider icu icu_locale '{icu_locale}'"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'create database "{name}"{locale}')
        self.created.append(name)
        return with_database(self.admin_dsn, name)

    def drop_database(self, dsn: str) -> None:
        name = urlsplit(dsn).path.lstrip("/")
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def start_local_cluster() -> EmbeddedPostgres:
    cluster = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="fluxbase-pg-")))
    cluster.start()
    return cluster


def stop_local_cluster(cluster: EmbeddedPostgres) -> None:
    cluster.stop()
    shutil.rmtree(cluster.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if _docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield PostgresServer(with_database(container.get_connection_url(), "postgres"))
        return
    cluster = start_local_cluster()
    try:
        yield PostgresServer(cluster.dsn(database="postgres"), local=cluster)
    finally:
        stop_local_cluster(cluster)


@pytest.fixture(scope="session")
def local_postgres(postgres: PostgresServer) -> PostgresServer:
    """The run's server when it is a local cluster: needed by pgTAP, sqitch and pg_dump tests."""
    if postgres.local is None:
        pytest.skip("needs the local PostgreSQL binaries' cluster (pgTAP is not in the container image)")
    return postgres


@pytest.fixture(scope="session")
def migrated_dsn(postgres: PostgresServer) -> str:
    """One migrated database shared by the tests that only read its schema."""
    dsn = postgres.create_database("migrated")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    return dsn


@pytest.fixture
def fresh_dsn(postgres: PostgresServer) -> Iterator[str]:
    """An empty database of its own, dropped afterwards."""
    dsn = postgres.create_database("fresh")
    yield dsn
    postgres.drop_database(dsn)


def make_config(database_url: str, **sections: object) -> Config:
    """A test configuration: the given database, the test secret, no global rate limit unless asked."""
    base = Config(
        database=DatabaseConfig(url=database_url, min_connections=1, max_connections=5),
        auth=AuthConfig(jwt_secret=JWT_SECRET),
        security=SecurityConfig(rate_limit=RateLimitConfig(enabled=False)),
    )
    return dataclasses.replace(base, **sections)  # type: ignore[arg-type]


@pytest.fixture
def config(migrated_dsn: str) -> Config:
    return make_config(migrated_dsn)


@pytest.fixture
async def client(config: Config) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Every server log this run wrote: read after the server stops, removed when the run ends.
_SERVER_LOGS: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _remove_server_logs() -> Iterator[None]:
    yield
    for path in _SERVER_LOGS:
        path.unlink(missing_ok=True)


@dataclass
class ServerProcess:
    """`fluxbase serve` running as a real process; its stdout is the log."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_server(
    env: dict[str, str], *args: str, port: int | None = None, cwd: Path | None = None, wait: float = 60
) -> ServerProcess:
    """Starts the real `fluxbase` command and waits until /health answers."""
    import urllib.request

    port = port or free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="fluxbase-serve-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        # A worktree tested with another checkout's venv points PYTHONPATH at its own server/:
        # the server process must run that code too, not the venv's installed copy.
        **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        "FLUXBASE_SERVER_ADDRESS": f"127.0.0.1:{port}",
        **env,
    }
    process = subprocess.Popen(
        [FLUXBASE, *args], env=full_env, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd or ROOT
    )
    log_file.close()  # the child holds its own descriptor
    _SERVER_LOGS.append(Path(log_file.name))
    server = ServerProcess(process, f"http://127.0.0.1:{port}", Path(log_file.name))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"fluxbase exited with {process.returncode}:\n" + "\n".join(server.log_lines())
            )
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise AssertionError("fluxbase did not answer /health in time:\n" + "\n".join(server.log_lines()))


def user_token(sub: str, lifetime: int = 3600) -> str:
    """An `authenticated` access token for `sub`, signed with JWT_SECRET, as auth would issue it."""
    claims = {"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + lifetime}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "FLUXBASE_JWT_SECRET": JWT_SECRET,
        "FLUXBASE_SECURITY_RATE_LIMIT_ENABLED": "false",
        **extra,
    }
