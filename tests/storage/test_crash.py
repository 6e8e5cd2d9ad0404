"""A crash mid-upload: `fluxbase serve` killed with SIGKILL while an upload streams in leaves no
visible object and no row; on restart the reaper removes the dead process's temp file, and
blobs that no row names (a crash between storing the bytes and committing the row)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness import PostgresServer, start_server
from storage_support import ANON_KEY, SERVICE_KEY, start_storage_stack

pytestmark = pytest.mark.process


def _wait_for(predicate: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_upload(postgres: PostgresServer, tmp_path: Path) -> None:
    stack = start_storage_stack(postgres, "local", None, tmp_path / "storage")
    try:
        with stack.http() as http:
            assert http.post("/bucket", json={"name": "crash"}).status_code == 200
        parts = urlsplit(stack.url)
        total = 20 * 1024 * 1024
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(
            (
                f"POST /storage/v1/object/crash/half.bin HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {SERVICE_KEY}\r\napikey: {ANON_KEY}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
            ).encode()
            + os.urandom(4 * 1024 * 1024)
        )
        temp_dir = stack.root / "tmp"
        assert _wait_for(lambda: any(p.stat().st_size > 0 for p in temp_dir.glob("*.part")))
        stack.server.process.send_signal(signal.SIGKILL)
        stack.server.process.wait(timeout=10)
        sock.close()
        leftovers = list(temp_dir.glob("*.part"))
        assert leftovers, "the killed upload left its temp file (what the reaper must clean)"
        assert stack.sql("select count(*) from storage.objects") == [(0,)]
        assert stack.blobs_on_disk() == []

        # A blob with no row, as a crash between the rename and the commit would leave it.
        orphan = stack.root / "objects" / "ab" / ("ab" + "0" * 30)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"orphan")
        two_hours_ago = time.time() - 7200
        os.utime(orphan, (two_hours_ago, two_hours_ago))

        stack.server = start_server(stack.env, "serve")
        try:
            assert _wait_for(lambda: not any(temp_dir.glob("*.part")))
            assert _wait_for(lambda: not orphan.exists())
            with stack.http() as http:
                missing = http.get("/object/crash/half.bin")
                assert missing.status_code == 400 and missing.json()["statusCode"] == "404"
                assert http.post("/object/list/crash", json={"prefix": ""}).json() == []
                # The server works normally after the crash.
                assert http.post("/object/crash/half.bin", content=b"whole").status_code == 200
                assert http.get("/object/crash/half.bin").content == b"whole"
        finally:
            stack.server.terminate()
    finally:
        if stack.server.process.poll() is None:
            stack.server.terminate()
        postgres.drop_database(stack.dsn)
