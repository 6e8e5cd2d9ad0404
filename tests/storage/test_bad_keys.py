"""A traversal and bad-key corpus: every route that takes a key answers 400 and writes nothing,
neither a row nor a file, inside or outside the storage root."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from fluxbase.storage import keys
from fluxbase.storage.errors import StorageError
from storage_support import ANON_KEY, SERVICE_KEY, StorageStack

BAD_KEYS = [
    "../escape.txt",
    "a/../../escape.txt",
    "..",
    ".",
    "a/./b.txt",
    "/etc/passwd",
    "//double.txt",
    "a//b.txt",
    "trailing/",
    "back\\slash.txt",
    "..\\..\\windows.txt",
    "nul\x00byte.txt",
    "new\nline.txt",
    "tab\there.txt",
    "bell\x07.txt",
    "del\x7f.txt",
    "c1\x85control.txt",
    "x" * 1025,
    "é" * 600,  # 1200 bytes of UTF-8
    "",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validation_refuses(key: str) -> None:
    with pytest.raises(StorageError) as refused:
        keys.object_key(key)
    assert refused.value.status_code == 400 and refused.value.code == "InvalidKey"


@pytest.mark.parametrize(
    "key", ["a.txt", "folder/sub/file name (1).png", "ünïcode/ファイル.txt", "x" * 1024, ".hidden/..dots../f"]
)
def test_validation_accepts(key: str) -> None:
    assert keys.object_key(key) == key


def test_validation_normalises_to_nfc() -> None:
    assert keys.object_key("cafe\u0301.txt") == "caf\u00e9.txt"


@pytest.mark.parametrize("bucket", ["", "..", "a/b", "x" * 101, "nul\x00", "new\nline"])
def test_bucket_ids_refused(bucket: str) -> None:
    with pytest.raises(StorageError):
        keys.bucket_id(bucket)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _raw(stack: StorageStack, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """A request whose path goes out exactly as written (no client-side dot-segment folding)."""
    parts = urlsplit(stack.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {SERVICE_KEY}")
        conn.putheader("apikey", ANON_KEY)
        conn.putheader("Content-Type", "text/plain")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_corpus_over_http(local_stack: StorageStack, tmp_path: Path) -> None:
    stack = local_stack
    with stack.http() as service:
        service.post("/bucket", json={"name": "corpus"})
        service.post("/object/corpus/good.txt", content=b"good")
    outside = stack.root.parent
    before_outside = _files(outside)
    rows_before = stack.sql("select count(*) from storage.objects")
    with stack.http() as service:
        for key in BAD_KEYS:
            encoded = quote(key, safe="").replace(".", "%2E")
            for method, path, kwargs in (
                ("POST", f"/object/corpus/{encoded}", {"content": b"evil"}),
                ("PUT", f"/object/corpus/{encoded}", {"content": b"evil"}),
                ("GET", f"/object/corpus/{encoded}", {}),
                ("GET", f"/object/info/corpus/{encoded}", {}),
                ("DELETE", f"/object/corpus/{encoded}", {}),
                ("POST", f"/object/sign/corpus/{encoded}", {"json": {"expiresIn": 60}}),
                ("POST", f"/object/upload/sign/corpus/{encoded}", {}),
            ):
                if key == "":
                    continue  # an empty key is another route (the bucket or none)
                response = service.request(method, path, **kwargs)
                assert response.status_code == 400, (method, key, response.text)
                assert response.json()["statusCode"] == "400", (method, key)
            for body in (
                {"bucketId": "corpus", "sourceKey": "good.txt", "destinationKey": key},
                {"bucketId": "corpus", "sourceKey": key, "destinationKey": "copy.txt"},
            ):
                assert service.post("/object/move", json=body).status_code == 400, key
                assert service.post("/object/copy", json=body).status_code == 400, key
            assert service.request("DELETE", "/object/corpus", json={"prefixes": [key]}).status_code == 400
            listed = service.post("/object/list/corpus", json={"prefix": key})
            assert key in ("", "trailing/") or listed.status_code == 400, key
    # Raw dot segments, as an attacker's client would send them.
    for path in (
        "/storage/v1/object/corpus/../../../../tmp/escape.txt",
        "/storage/v1/object/corpus/a/../../escape.txt",
        "/storage/v1/object/corpus/%2e%2e/escape.txt",
        "/storage/v1/object/corpus/..%2f..%2fescape.txt",
        "/storage/v1/object/corpus/a%5c..%5cescape.txt",
    ):
        status, body = _raw(stack, "POST", path, b"evil")
        assert status == 400, (path, status, body)
    assert _files(outside) - before_outside <= {p for p in _files(stack.root)}
    assert stack.sql("select count(*) from storage.objects") == rows_before
    for folder in (Path("/tmp"), stack.root.parent, stack.root.parent.parent, Path.cwd()):
        assert not (folder / "escape.txt").exists()
