"""A 128 MiB body to `fluxbase serve`: refused with 413 before it is buffered, memory flat."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from harness import ServerProcess, server_env, start_server
from security_support import peak_kib, rss_kib

BODY = 128 * 1024 * 1024
CHUNK = b"a" * (256 * 1024)


@pytest.fixture
def server(migrated_dsn: str) -> Iterator[ServerProcess]:
    served = start_server(server_env(migrated_dsn), "serve", "--no-migrate")
    try:
        yield served
    finally:
        served.terminate()


def send_large(url: str, head: bytes, chunked: bool) -> bytes:
    """Writes the head, then up to 128 MiB (bounded in time); returns what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        sent, deadline = 0, time.monotonic() + 60
        sock.settimeout(0.001)
        answer = b""
        while sent < BODY and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
                if answer:
                    break  # answered before the body was sent: what we are after
            except (TimeoutError, BlockingIOError):
                pass
            piece = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
            try:
                sock.settimeout(5)
                sock.sendall(piece)
                sock.settimeout(0.001)
            except OSError:
                break  # the server closed while we were still sending
            sent += len(CHUNK)
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


@pytest.mark.process
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_128_mib_to_the_token_endpoint_is_a_413_and_memory_stays_flat(
    server: ServerProcess, chunked: bool
) -> None:
    pid = server.process.pid
    send_large(server.url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", chunked=False)  # warm
    before_rss, before_peak = rss_kib(pid), peak_kib(pid)
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % BODY
    head = (
        b"POST /auth/v1/token?grant_type=password HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n"
    )
    answer = send_large(server.url, head, chunked)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer
    grown = max(rss_kib(pid) - before_rss, peak_kib(pid) - before_peak)
    assert grown < 8 * 1024, f"the process grew by {grown} KiB"
    assert not [line for line in server.log_lines() if "Traceback" in line]
