"""RLS decides storage access: an owner-only folder policy (Supabase's documented example) keeps
user B from listing, reading, overwriting, moving, deleting, copying or signing user A's files,
and anon sees only public buckets."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from storage_support import ALICE, ANON_KEY, BOB, StorageStack, user_token

POLICIES = """
create policy own_folder_read on storage.objects for select to authenticated
  using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
create policy own_folder_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
create policy own_folder_update on storage.objects for update to authenticated
  using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text)
  with check (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
create policy own_folder_delete on storage.objects for delete to authenticated
  using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
create policy public_buckets_visible on storage.buckets for select to anon, authenticated
  using (public);
"""


@pytest.fixture(scope="module")
def stack(storage_stack: StorageStack) -> Iterator[StorageStack]:
    storage_stack.sql(POLICIES)
    with storage_stack.http() as service:
        assert service.post("/bucket", json={"name": "private"}).status_code == 200
        assert service.post("/bucket", json={"name": "open", "public": True}).status_code == 200
        service.post(
            "/object/open/hello.txt", content=b"public hello", headers={"content-type": "text/plain"}
        )
    with storage_stack.http(token=user_token(ALICE)) as alice:
        answer = alice.post(
            f"/object/private/{ALICE}/diary.txt", content=b"alice's", headers={"content-type": "text/plain"}
        )
        assert answer.status_code == 200, answer.text
    yield storage_stack


def _status(response: httpx.Response) -> str:
    return str(response.json()["statusCode"])


def test_owner_uses_own_folder(stack: StorageStack) -> None:
    with stack.http(token=user_token(ALICE)) as alice:
        assert alice.get(f"/object/private/{ALICE}/diary.txt").content == b"alice's"
        listed = alice.post("/object/list/private", json={"prefix": ALICE})
        assert [e["name"] for e in listed.json()] == ["diary.txt"]
        signed = alice.post(f"/object/sign/private/{ALICE}/diary.txt", json={"expiresIn": 60})
        assert signed.status_code == 200
        row = stack.sql("select owner_id from storage.objects where name = %s", (f"{ALICE}/diary.txt",))
        assert row == [(ALICE,)]
        # Not even the owner may write outside the folder the policy names.
        elsewhere = alice.post(f"/object/private/{BOB}/planted.txt", content=b"x")
        assert elsewhere.status_code == 400 and _status(elsewhere) == "403"


def test_other_user_cannot_touch(stack: StorageStack) -> None:
    key = f"{ALICE}/diary.txt"
    with stack.http(token=user_token(BOB)) as bob:
        assert bob.post("/object/list/private", json={"prefix": ALICE}).json() == []
        assert bob.post("/object/list/private", json={"prefix": ""}).json() == []
        read = bob.get(f"/object/private/{key}")
        assert read.status_code == 400 and _status(read) == "404"
        assert bob.head(f"/object/private/{key}").status_code == 400
        assert _status(bob.get(f"/object/info/private/{key}")) == "404"
        upsert = bob.post(f"/object/private/{key}", content=b"bob's", headers={"x-upsert": "true"})
        assert _status(upsert) == "403"
        overwrite = bob.put(f"/object/private/{key}", content=b"bob's")
        assert _status(overwrite) == "404"
        moved = bob.post(
            "/object/move",
            json={"bucketId": "private", "sourceKey": key, "destinationKey": f"{BOB}/stolen.txt"},
        )
        assert _status(moved) == "404"
        copied = bob.post(
            "/object/copy",
            json={"bucketId": "private", "sourceKey": key, "destinationKey": f"{BOB}/copy.txt"},
        )
        assert _status(copied) == "404"
        assert bob.request("DELETE", "/object/private", json={"prefixes": [key]}).json() == []
        assert _status(bob.delete(f"/object/private/{key}")) == "404"
        signed = bob.post(f"/object/sign/private/{key}", json={"expiresIn": 60})
        assert _status(signed) == "404"
        many = bob.post("/object/sign/private", json={"expiresIn": 60, "paths": [key]}).json()
        assert many[0]["signedURL"] is None
        upload_grant = bob.post(f"/object/upload/sign/private/{key}", headers={"x-upsert": "true"})
        assert _status(upload_grant) == "403"
        # Bob's own file may not be moved into Alice's folder either (the policy's WITH CHECK).
        assert bob.post(f"/object/private/{BOB}/mine.txt", content=b"bob's").status_code == 200
        into = bob.post(
            "/object/move",
            json={
                "bucketId": "private",
                "sourceKey": f"{BOB}/mine.txt",
                "destinationKey": f"{ALICE}/mine.txt",
            },
        )
        assert _status(into) == "403"
    # Nothing changed for Alice.
    with stack.http(token=user_token(ALICE)) as alice:
        assert alice.get(f"/object/private/{key}").content == b"alice's"
    assert stack.sql("select count(*) from storage.objects where name like %s", (f"{ALICE}/%",)) == [(1,)]


def test_anon_sees_only_public_buckets(stack: StorageStack) -> None:
    with stack.http(token=None) as anon:
        assert [b["name"] for b in anon.get("/bucket").json()] == ["open"]
        assert _status(anon.get("/bucket/private")) == "404"
        assert anon.get("/object/public/open/hello.txt").content == b"public hello"
        hidden = anon.get(f"/object/public/private/{ALICE}/diary.txt")
        assert hidden.status_code == 400 and _status(hidden) == "404"
        assert _status(anon.get(f"/object/private/{ALICE}/diary.txt")) == "404"
        assert anon.post("/object/list/private", json={"prefix": ALICE}).json() == []
        created = anon.post("/bucket", json={"name": "anons"})
        assert created.status_code == 400 and _status(created) == "403"
        assert _status(anon.post("/object/open/new.txt", content=b"x")) == "403"
    bad = httpx.get(
        stack.storage_url + "/bucket", headers={"apikey": ANON_KEY, "Authorization": "Bearer not-a-jwt"}
    )
    assert bad.status_code == 403 and bad.json()["error"] == "Unauthorized"
