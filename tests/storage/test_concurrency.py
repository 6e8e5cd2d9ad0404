"""Objects under concurrent writes: readers always get one whole version, never a missing or
mixed object, while writers overwrite it (each overwrite removes the blob it replaced); and
the reaper removes resumable uploads past their expiry."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg

from fluxbase.config import DatabaseConfig
from fluxbase.db.migrate import Migrator
from fluxbase.db.pool import Database, authenticator_dsn
from fluxbase.storage.backends.local import LocalBackend
from fluxbase.storage.reaper import reap_once
from harness import AUTHENTICATOR_PASSWORD, PostgresServer
from storage_support import StorageStack

VERSIONS = [os.urandom(300_000) for _ in range(3)]


def test_downloads_during_overwrites_see_whole_versions(storage_stack: StorageStack) -> None:
    bucket = f"race{time.monotonic_ns()}"
    with storage_stack.http() as http:
        http.post("/bucket", json={"name": bucket})
        assert http.post(f"/object/{bucket}/hot.bin", content=VERSIONS[0]).status_code == 200
    stop = time.monotonic() + 4
    failures: list[str] = []

    def write() -> None:
        with storage_stack.http(**{"x-upsert": "true"}) as http:
            n = 0
            while time.monotonic() < stop:
                n += 1
                answer = http.post(f"/object/{bucket}/hot.bin", content=VERSIONS[n % len(VERSIONS)])
                if answer.status_code != 200:
                    failures.append(f"write {answer.status_code} {answer.text}")

    def read() -> None:
        with storage_stack.http() as http:
            while time.monotonic() < stop:
                answer = http.get(f"/object/{bucket}/hot.bin")
                if answer.status_code != 200 or answer.content not in VERSIONS:
                    failures.append(f"read {answer.status_code} {len(answer.content)}")

    threads = [threading.Thread(target=write), threading.Thread(target=read), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    if storage_stack.backend == "local":
        # Every replaced blob was removed: exactly the blobs the rows name are on disk.
        rows = storage_stack.sql("select version from storage.objects")
        assert sorted(p.name for p in storage_stack.blobs_on_disk()) == sorted(r[0] for r in rows)


async def test_reaper_removes_expired_resumable_uploads(postgres: PostgresServer, tmp_path: Path) -> None:
    dsn = postgres.create_database("reaper")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into storage.buckets (id, name) values ('r', 'r');"
            "insert into storage.resumable_uploads"
            " (id, bucket_id, name, upload_length, role, expires_at) values"
            " ('aa' || repeat('0', 30), 'r', 'old.bin', 10, 'service_role', now() - interval '1 hour'),"
            " ('bb' || repeat('0', 30), 'r', 'new.bin', 10, 'service_role', now() + interval '1 hour')"
        )
    spool = tmp_path / "uploads"
    spool.mkdir()
    old, live, stray = (spool / f"{name}.tus" for name in ("aa" + "0" * 30, "bb" + "0" * 30, "cc" + "0" * 30))
    for path in (old, live, stray):
        path.write_bytes(b"12345")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    database = await Database.connect(authenticator_dsn(dsn, AUTHENTICATOR_PASSWORD), DatabaseConfig(url=dsn))
    try:
        counts = await reap_once(database, LocalBackend(tmp_path), spool)
    finally:
        await database.close()
    assert counts["uploads"] == 2
    assert not old.exists() and not stray.exists() and live.exists()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select id from storage.resumable_uploads").fetchall() == [("bb" + "0" * 30,)]
    postgres.drop_database(dsn)
