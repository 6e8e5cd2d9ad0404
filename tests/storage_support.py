"""Storage's test support (a pytest plugin): a moto S3 server process, and `fluxbase serve`
with storage on the local disk or on that S3, on a migrated database of its own.

`storage_stack` is parametrized over both backends, so a test that takes it
runs twice: once with FLUXBASE_STORAGE_PROVIDER=local, once with s3.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import (
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    PostgresServer,
    ServerProcess,
    free_port,
    server_env,
    start_server,
)

ALICE = "aaaaaaaa-0000-4000-8000-00000000000a"
BOB = "bbbbbbbb-0000-4000-8000-00000000000b"
ANON_KEY = api_key(JWT_SECRET, "anon")
SERVICE_KEY = api_key(JWT_SECRET, "service_role")
MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
S3_BUCKET = "fluxbase-test"


def user_token(sub: str, lifetime: int = 3600) -> str:
    return jwt.encode(
        {"sub": sub, "role": "authenticated", "aud": "authenticated", "exp": int(time.time()) + lifetime},
        JWT_SECRET,
        algorithm="HS256",
    )


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real moto S3 server process on a free port (no mocks inside the Fluxbase process)."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("moto_server exited:\n" + Path(log.name).read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    try:
        yield MotoServer(process, f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def s3_env(endpoint: str, bucket: str = S3_BUCKET) -> dict[str, str]:
    return {
        "FLUXBASE_STORAGE_PROVIDER": "s3",
        "FLUXBASE_STORAGE_S3_ENDPOINT": endpoint,
        "FLUXBASE_STORAGE_S3_ACCESS_KEY": "testing",
        "FLUXBASE_STORAGE_S3_SECRET_KEY": "testing",
        "FLUXBASE_STORAGE_S3_BUCKET": bucket,
        "FLUXBASE_STORAGE_S3_REGION": "us-east-1",
        "FLUXBASE_STORAGE_S3_FORCE_PATH_STYLE": "true",
    }


@dataclass
class StorageStack:
    """One running server with storage, the database behind it and the local storage root."""

    server: ServerProcess
    dsn: str
    root: Path
    backend: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def storage_url(self) -> str:
        return self.server.url + "/storage/v1"

    def http(self, token: str | None = SERVICE_KEY, **headers: str) -> httpx.Client:
        auth = {"apikey": ANON_KEY, **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.Client(base_url=self.storage_url, headers={**auth, **headers}, timeout=30)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(query, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def blobs_on_disk(self) -> list[Path]:
        return [p for p in (self.root / "objects").glob("*/*") if p.is_file()]


def start_storage_stack(
    postgres: PostgresServer, backend: str, moto: MotoServer | None, root: Path, **extra: str
) -> StorageStack:
    dsn = postgres.create_database("storage")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    env = server_env(
        dsn,
        FLUXBASE_STORAGE_LOCAL_PATH=str(root),
        FLUXBASE_REALTIME_ENABLED="false",
        **(s3_env(moto.url, f"{S3_BUCKET}-{uuid.uuid4().hex[:12]}") if backend == "s3" and moto else {}),
        **extra,
    )
    return StorageStack(start_server(env, "serve"), dsn, root, backend, env)


@pytest.fixture(scope="module", params=["local", "s3"])
def storage_stack(
    request: pytest.FixtureRequest, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StorageStack]:
    moto = request.getfixturevalue("moto_server") if request.param == "s3" else None
    stack = start_storage_stack(postgres, request.param, moto, tmp_path_factory.mktemp("storage"))
    try:
        yield stack
    finally:
        stack.server.terminate()
        postgres.drop_database(stack.dsn)


@pytest.fixture(scope="module")
def local_stack(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageStack]:
    stack = start_storage_stack(postgres, "local", None, tmp_path_factory.mktemp("storage"))
    try:
        yield stack
    finally:
        stack.server.terminate()
        postgres.drop_database(stack.dsn)
