"""Resumable uploads (TUS 1.0) at /storage/v1/upload/resumable against both backends: create,
PATCH in chunks, HEAD for the offset, resume after the connection dropped mid-PATCH."""

from __future__ import annotations

import base64
import os
import socket
import time
from urllib.parse import urlsplit

import httpx

from storage_support import ALICE, ANON_KEY, SERVICE_KEY, StorageStack, user_token

TUS = {"Tus-Resumable": "1.0.0"}


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _bucket(stack: StorageStack, name: str) -> None:
    with stack.http() as http:
        http.post("/bucket", json={"name": name})


def _create(http: httpx.Client, bucket: str, key: str, length: int, **headers: str) -> httpx.Response:
    return http.post(
        "/upload/resumable",
        headers={
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": _metadata(bucketName=bucket, objectName=key, contentType="application/zip"),
            **headers,
        },
    )


def _offset(http: httpx.Client, location: str) -> int:
    head = http.head(location, headers=TUS)
    assert head.status_code == 200, head.text
    return int(head.headers["Upload-Offset"])


def test_chunks_then_object(storage_stack: StorageStack) -> None:
    bucket = f"tus{time.monotonic_ns()}"
    _bucket(storage_stack, bucket)
    body = os.urandom(700_000)
    with storage_stack.http() as http:
        options = http.options("/upload/resumable")
        assert options.status_code == 204 and "creation" in options.headers["Tus-Extension"]
        created = _create(http, bucket, "big/archive.zip", len(body))
        assert created.status_code == 201, created.text
        assert created.headers["Location"].startswith("/storage/v1/upload/resumable/")
        location = storage_stack.url + created.headers["Location"]
        assert _offset(http, location) == 0
        for start in range(0, len(body), 300_000):
            chunk = body[start : start + 300_000]
            patched = http.patch(
                location,
                content=chunk,
                headers={
                    **TUS,
                    "Upload-Offset": str(start),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert patched.status_code == 204, patched.text
            assert int(patched.headers["Upload-Offset"]) == start + len(chunk)
        stored = http.get(f"/object/{bucket}/big/archive.zip")
        assert stored.content == body
        assert stored.headers["content-type"] == "application/zip"
        # A finished upload is gone; a wrong offset is refused.
        assert http.head(location, headers=TUS).status_code == 404
    assert storage_stack.sql("select count(*) from storage.resumable_uploads") == [(0,)]


def test_resume_after_dropped_connection(storage_stack: StorageStack) -> None:
    bucket = f"tusdrop{time.monotonic_ns()}"
    _bucket(storage_stack, bucket)
    body = os.urandom(2_000_000)
    sent = 900_000
    with storage_stack.http() as http:
        path = _create(http, bucket, "resumed.bin", len(body)).headers["Location"]
        location = storage_stack.url + path
        # A PATCH that announces the whole body, sends part of it and drops the connection.
        parts = urlsplit(storage_stack.url)
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            head = (
                f"PATCH {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {SERVICE_KEY}\r\napikey: {ANON_KEY}\r\n"
                "Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                "Content-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:sent])
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        offset = -1
        while time.monotonic() < deadline:
            offset = _offset(http, location)
            if offset == sent:
                break
            time.sleep(0.1)
        assert offset == sent
        # The object does not exist until the upload is complete.
        assert http.get(f"/object/{bucket}/resumed.bin").status_code == 400
        # Until the server has noticed the drop, the upload is locked (423, which tus clients
        # retry); then a PATCH at the wrong offset gets 409.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            wrong = http.patch(
                location,
                content=body[:10],
                headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )
            if wrong.status_code != 423:
                break
            time.sleep(0.1)
        assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == str(sent)
        rest = http.patch(
            location,
            content=body[offset:],
            headers={**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        )
        assert rest.status_code == 204 and rest.headers["Upload-Offset"] == str(len(body))
        assert http.get(f"/object/{bucket}/resumed.bin").content == body


def test_tus_is_governed_like_uploads(storage_stack: StorageStack) -> None:
    bucket = f"tusrls{time.monotonic_ns()}"
    _bucket(storage_stack, bucket)
    with storage_stack.http(token=user_token(ALICE)) as alice:
        # No policy lets Alice insert: refused before any byte.
        refused = _create(alice, bucket, "a.bin", 10)
        assert refused.status_code == 400 and refused.json()["statusCode"] == "403"
    with storage_stack.http() as http:
        too_big = _create(http, bucket, "huge.bin", 10**12)
        assert too_big.status_code == 413
        bad_key = _create(http, bucket, "../escape.bin", 10)
        assert bad_key.status_code == 400 and bad_key.json()["error"] == "InvalidKey"
        location = storage_stack.url + _create(http, bucket, "mine.bin", 10).headers["Location"]
    # Another caller cannot see or continue the upload.
    with storage_stack.http(token=user_token(ALICE)) as alice:
        assert alice.head(location, headers=TUS).status_code == 404
        stolen = alice.patch(
            location,
            content=b"0123456789",
            headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert stolen.status_code == 404
    with storage_stack.http() as http:
        assert http.delete(location, headers=TUS).status_code == 204
        assert http.head(location, headers=TUS).status_code == 404
