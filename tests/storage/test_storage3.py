"""storage3 (the Python client, as supabase-py ships it) against a real `fluxbase serve`,
once with the local backend and once with S3 (a moto server process): every endpoint the
client has, and what PostgreSQL holds afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError
from storage3.types import CreateSignedUploadUrlOptions

from storage_support import ANON_KEY, SERVICE_KEY, StorageStack


@pytest.fixture
def client(storage_stack: StorageStack) -> Iterator[SyncStorageClient]:
    headers = {"apikey": ANON_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}
    with SyncStorageClient(storage_stack.storage_url + "/", headers) as storage:
        yield storage


@pytest.fixture
def bucket(client: SyncStorageClient) -> Iterator[str]:
    name = f"b{time.monotonic_ns()}"
    client.create_bucket(name, options={"public": False})
    yield name
    client.empty_bucket(name)
    client.delete_bucket(name)


def test_bucket_lifecycle(client: SyncStorageClient, storage_stack: StorageStack) -> None:
    name = f"life{time.monotonic_ns()}"
    created = client.create_bucket(
        name, options={"public": True, "file_size_limit": "1MB", "allowed_mime_types": ["image/*"]}
    )
    assert created == {"name": name}
    got = client.get_bucket(name)
    assert (got.id, got.name, got.public, got.file_size_limit, got.allowed_mime_types) == (
        name,
        name,
        True,
        1024 * 1024,
        ["image/*"],
    )
    assert name in [b.name for b in client.list_buckets()]
    assert (
        client.update_bucket(name, {"public": False, "file_size_limit": 10})["message"]
        == "Successfully updated"
    )
    assert client.get_bucket(name).public is False
    with pytest.raises(StorageApiError) as duplicate:
        client.create_bucket(name)
    assert duplicate.value.status == "409"
    client.from_(name).upload("x.png", b"png", {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as not_empty:
        client.delete_bucket(name)
    assert not_empty.value.status == "409"
    assert client.empty_bucket(name)["message"] == "Successfully emptied"
    assert client.delete_bucket(name)["message"] == "Successfully deleted"
    with pytest.raises(StorageApiError) as missing:
        client.get_bucket(name)
    assert missing.value.status == "404"
    events = storage_stack.sql(
        "select event from audit.events where details->>'bucket_id' = %s order by id", (name,)
    )
    assert [e[0] for e in events] == [
        "storage_bucket_created",
        "storage_bucket_updated",
        "storage_bucket_deleted",
    ]


def test_upload_download_update_info_exists(
    client: SyncStorageClient, bucket: str, storage_stack: StorageStack
) -> None:
    files = client.from_(bucket)
    answer = files.upload(
        "docs/readme.txt", b"hello storage", {"content-type": "text/plain", "cache-control": "120"}
    )
    assert answer.path == "docs/readme.txt" and answer.full_path == f"{bucket}/docs/readme.txt"
    assert files.download("docs/readme.txt") == b"hello storage"
    with pytest.raises(StorageApiError) as duplicate:
        files.upload("docs/readme.txt", b"again")
    assert duplicate.value.status == "409" and duplicate.value.code == "Duplicate"
    files.upload("docs/readme.txt", b"upserted", {"upsert": "true"})
    assert files.download("docs/readme.txt") == b"upserted"
    files.update("docs/readme.txt", b"updated body", {"content-type": "text/markdown"})
    assert files.download("docs/readme.txt") == b"updated body"
    info = files.info("docs/readme.txt")
    assert info["size"] == len(b"updated body") and info["content_type"] == "text/markdown"
    assert files.exists("docs/readme.txt") is True
    assert files.exists("docs/missing.txt") is False
    with pytest.raises(StorageApiError) as missing:
        files.update("docs/missing.txt", b"x")
    assert missing.value.status == "404"
    rows = storage_stack.sql(
        "select metadata->>'size', metadata->>'mimetype', metadata->>'cacheControl' from storage.objects"
        " where bucket_id = %s and name = 'docs/readme.txt'",
        (bucket,),
    )
    assert rows == [(str(len(b"updated body")), "text/markdown", "max-age=3600")]
    # Overwrites leave one blob per object, not one per version.
    if storage_stack.backend == "local":
        versions = storage_stack.sql("select version from storage.objects where bucket_id = %s", (bucket,))
        on_disk = {p.name for p in storage_stack.blobs_on_disk()}
        assert {v[0] for v in versions} <= on_disk


def test_range_and_download_headers(
    client: SyncStorageClient, bucket: str, storage_stack: StorageStack
) -> None:
    body = bytes(range(256)) * 1000
    client.from_(bucket).upload("bin/data.bin", body, {"content-type": "application/octet-stream"})
    with storage_stack.http() as http:
        whole = http.get(f"/object/{bucket}/bin/data.bin")
        assert whole.status_code == 200 and whole.content == body
        assert whole.headers["accept-ranges"] == "bytes"
        part = http.get(f"/object/{bucket}/bin/data.bin", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == body[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(body)}"
        tail = http.get(f"/object/{bucket}/bin/data.bin", headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == body[-5:]
        bad = http.get(f"/object/{bucket}/bin/data.bin", headers={"Range": f"bytes={len(body)}-"})
        assert bad.status_code == 416 and bad.json()["statusCode"] == "416"
        attachment = http.get(f"/object/{bucket}/bin/data.bin?download=report.bin")
        assert attachment.headers["content-disposition"].startswith('attachment; filename="report.bin"')
        head = http.head(f"/object/{bucket}/bin/data.bin")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(body))
        assert head.content == b""


def test_active_content_is_never_served_inline(
    client: SyncStorageClient, bucket: str, storage_stack: StorageStack
) -> None:
    files = client.from_(bucket)
    for name, kind in (
        ("x.html", "text/html"),
        ("x.svg", "image/svg+xml"),
        ("x.js", "application/javascript"),
    ):
        files.upload(name, b"<script>alert(1)</script>", {"content-type": kind})
        with storage_stack.http() as http:
            response = http.get(f"/object/{bucket}/{name}")
        assert response.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
    files.upload("plain.txt", b"text", {"content-type": "text/plain"})
    with storage_stack.http() as http:
        response = http.get(f"/object/{bucket}/plain.txt")
    assert "content-disposition" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_list_folders_sort_search_paging(client: SyncStorageClient, bucket: str) -> None:
    files = client.from_(bucket)
    for name in ("a/one.txt", "a/two.txt", "a/deeper/three.txt", "b/four.txt", "root.txt", "rooty.txt"):
        files.upload(name, name.encode())
    top = files.list()
    assert [(e["name"], e["id"] is None) for e in top] == [
        ("a", True),
        ("b", True),
        ("root.txt", False),
        ("rooty.txt", False),
    ]
    folder = top[0]
    assert folder["metadata"] is None and folder["updated_at"] is None
    assert top[2]["metadata"]["size"] == len(b"root.txt")
    inside = files.list("a")
    assert [e["name"] for e in inside] == ["deeper", "one.txt", "two.txt"]
    assert [e["name"] for e in files.list("a/")] == ["deeper", "one.txt", "two.txt"]
    assert [e["name"] for e in files.list("a", {"limit": 1, "offset": 1})] == ["one.txt"]
    assert [e["name"] for e in files.list("a", {"sortBy": {"column": "name", "order": "desc"}})] == [
        "deeper",
        "two.txt",
        "one.txt",
    ]
    assert [e["name"] for e in files.list("", {"search": "root"})] == ["root.txt", "rooty.txt"]
    assert [e["name"] for e in files.list("", {"search": "rooty"})] == ["rooty.txt"]
    # LIKE wildcards in a search are literal characters.
    assert files.list("", {"search": "r%"}) == []


def test_move_copy_remove(client: SyncStorageClient, bucket: str, storage_stack: StorageStack) -> None:
    files = client.from_(bucket)
    files.upload("m/source.txt", b"moving bytes")
    assert files.move("m/source.txt", "m/target.txt")["message"] == "Successfully moved"
    assert files.download("m/target.txt") == b"moving bytes"
    assert files.exists("m/source.txt") is False
    copied = files.copy("m/target.txt", "m/copy.txt")
    assert copied["Key"] == f"{bucket}/m/copy.txt"
    assert files.download("m/copy.txt") == b"moving bytes"
    with pytest.raises(StorageApiError) as clash:
        files.move("m/copy.txt", "m/target.txt")
    assert clash.value.status == "409"
    with pytest.raises(StorageApiError) as gone:
        files.move("m/nothing.txt", "m/else.txt")
    assert gone.value.status == "404"
    removed = files.remove(["m/target.txt", "m/copy.txt", "m/never.txt"])
    assert sorted(r["name"] for r in removed) == ["m/copy.txt", "m/target.txt"]
    assert files.list("m") == []
    if storage_stack.backend == "local":
        left = storage_stack.sql("select version from storage.objects")
        assert {p.name for p in storage_stack.blobs_on_disk()} == {v[0] for v in left}


def test_signed_download_urls(client: SyncStorageClient, bucket: str, storage_stack: StorageStack) -> None:
    files = client.from_(bucket)
    files.upload("s/secret.txt", b"signed bytes")
    files.upload("s/other.txt", b"other bytes")
    signed = files.create_signed_url("s/secret.txt", 60)
    assert httpx.get(signed["signedURL"]).content == b"signed bytes"
    download = files.create_signed_url("s/secret.txt", 60, {"download": True})
    assert httpx.get(download["signedURL"]).headers["content-disposition"].startswith("attachment")
    token = signed["signedURL"].split("token=")[1]
    # The token is bound to its key: it opens nothing else.
    other = httpx.get(f"{storage_stack.storage_url}/object/sign/{bucket}/s/other.txt?token={token}")
    assert other.status_code == 400 and other.json()["error"] == "InvalidSignature"
    tampered = httpx.get(
        f"{storage_stack.storage_url}/object/sign/{bucket}/s/secret.txt?token={token[:-2]}xx"
    )
    assert tampered.status_code == 400
    many = files.create_signed_urls(["s/secret.txt", "s/missing.txt"], 60)
    assert many[0]["error"] is None and httpx.get(many[0]["signedURL"]).content == b"signed bytes"
    assert many[1]["error"] and many[1]["signedURL"] is None
    with pytest.raises(StorageApiError):
        files.create_signed_url("s/missing.txt", 60)
    short = files.create_signed_url("s/secret.txt", 1)
    time.sleep(2.1)
    expired = httpx.get(short["signedURL"])
    assert expired.status_code == 400 and expired.json()["error"] == "ExpiredToken"


def test_signed_upload_urls(client: SyncStorageClient, bucket: str, storage_stack: StorageStack) -> None:
    files = client.from_(bucket)
    grant = files.create_signed_upload_url("up/new.txt")
    answer = files.upload_to_signed_url("up/new.txt", grant["token"], b"via signed url")
    assert answer.full_path == f"{bucket}/up/new.txt"
    assert files.download("up/new.txt") == b"via signed url"
    with pytest.raises(StorageApiError):
        files.upload_to_signed_url("up/other.txt", grant["token"], b"wrong key")
    with pytest.raises(StorageApiError) as again:
        files.upload_to_signed_url("up/new.txt", grant["token"], b"no upsert in this token")
    assert again.value.status == "409"
    upsert = files.create_signed_upload_url("up/new.txt", CreateSignedUploadUrlOptions(upsert="true"))
    files.upload_to_signed_url("up/new.txt", upsert["token"], b"replaced")
    assert files.download("up/new.txt") == b"replaced"


def test_public_buckets(client: SyncStorageClient, storage_stack: StorageStack) -> None:
    name = f"pub{time.monotonic_ns()}"
    client.create_bucket(name, options={"public": True})
    client.from_(name).upload("logo.txt", b"public bytes")
    url = client.from_(name).get_public_url("logo.txt")
    assert httpx.get(url).content == b"public bytes"
    info = httpx.get(f"{storage_stack.storage_url}/object/info/public/{name}/logo.txt")
    assert info.json()["size"] == len(b"public bytes")
    client.update_bucket(name, {"public": False})
    assert httpx.get(f"{storage_stack.storage_url}/object/info/public/{name}/logo.txt").status_code == 400
    private = httpx.get(url)
    assert private.status_code == 400 and private.json()["statusCode"] == "404"
    client.empty_bucket(name)
    client.delete_bucket(name)


def test_limits_and_mime_types(client: SyncStorageClient, storage_stack: StorageStack) -> None:
    name = f"lim{time.monotonic_ns()}"
    client.create_bucket(
        name, options={"file_size_limit": 100, "allowed_mime_types": ["image/png", "text/*"]}
    )
    files = client.from_(name)
    files.upload("ok.png", b"x" * 100, {"content-type": "image/png"})
    with pytest.raises(StorageApiError) as large:
        files.upload("big.png", b"x" * 101, {"content-type": "image/png"})
    assert large.value.status == "413"
    with pytest.raises(StorageApiError) as mime:
        files.upload("doc.pdf", b"%PDF", {"content-type": "application/pdf"})
    assert mime.value.status == "415"
    files.upload("note.txt", b"text is allowed", {"content-type": "text/plain"})
    with storage_stack.http() as http:
        raw = http.post(f"/object/{name}/raw.png", content=b"y" * 500, headers={"content-type": "image/png"})
    assert raw.status_code == 413 and raw.json()["statusCode"] == "413"
    assert [e["name"] for e in files.list()] == ["note.txt", "ok.png"]
    client.empty_bucket(name)
    client.delete_bucket(name)


def test_version_and_health(storage_stack: StorageStack) -> None:
    with storage_stack.http(token=None) as http:
        assert http.get("/version").status_code == 200
        assert http.get("/status").json() == {"healthy": True}
    # The runbook's mount serves the same handlers.
    with httpx.Client(
        base_url=storage_stack.url + "/api/v1/storage", headers={"Authorization": f"Bearer {SERVICE_KEY}"}
    ) as http:
        assert isinstance(http.get("/bucket").json(), list)
        # The Go SDK's paths get a clear 404 naming the ones served.
        old = http.get("/buckets")
        assert old.status_code == 404 and "/object/{bucket}/{path}" in old.json()["message"]
