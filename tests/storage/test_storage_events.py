"""Storage events reach realtime: storage.objects is enabled like any table, and subscribers
see uploads and deletes that their SELECT policies let them see."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp
import psycopg
from aiohttp.test_utils import TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.config import StorageConfig
from fluxbase.db.migrate import Migrator
from harness import AUTHENTICATOR_PASSWORD, PostgresServer, make_config
from realtime_support import open_socket
from storage_support import ALICE, BOB, SERVICE_KEY, user_token

SETUP = """
select realtime.enable('storage.objects');
create policy own_objects on storage.objects for select to authenticated
  using ((storage.foldername(name))[1] = auth.uid()::text);
insert into storage.buckets (id, name) values ('events', 'events');
"""
CHANGES = {"postgres_changes": [{"event": "*", "schema": "storage", "table": "objects"}]}


async def test_uploads_and_deletes_reach_subscribers(postgres: PostgresServer, tmp_path: Path) -> None:
    dsn = postgres.create_database("storage_events")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
    config = dataclasses.replace(make_config(dsn), storage=StorageConfig(local_path=str(tmp_path)))
    server = TestServer(build_app(config, Runtime(dsn, AUTHENTICATOR_PASSWORD)))
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        ws = f"{base}/realtime/v1/websocket?apikey={SERVICE_KEY}&vsn=1.0.0"
        async with aiohttp.ClientSession() as session:
            alice = await open_socket(session, ws)
            bob = await open_socket(session, ws)
            assert (await alice.join("realtime:files", CHANGES, access_token=user_token(ALICE)))[
                "status"
            ] == "ok"
            assert (await bob.join("realtime:files", CHANGES, access_token=user_token(BOB)))["status"] == "ok"
            service = {"Authorization": f"Bearer {SERVICE_KEY}"}
            uploaded = await session.post(
                f"{base}/storage/v1/object/events/{ALICE}/photo.png",
                data=b"png bytes",
                headers={**service, "Content-Type": "image/png"},
            )
            assert uploaded.status == 200, await uploaded.text()
            [insert] = await alice.changes(1)
            data = insert["data"]
            assert data["type"] == "INSERT" and data["table"] == "objects" and data["schema"] == "storage"
            assert data["record"]["name"] == f"{ALICE}/photo.png"
            assert data["record"]["metadata"]["mimetype"] == "image/png"
            deleted = await session.delete(
                f"{base}/storage/v1/object/events/{ALICE}/photo.png", headers=service
            )
            assert deleted.status == 200
            [delete] = await alice.changes(1)
            assert delete["data"]["type"] == "DELETE"
            # Bob's policy hides Alice's folder: no INSERT for him (DELETEs carry only the key).
            assert [m for m in await bob.quiet(wait=1.0) if m["payload"]["data"]["type"] == "INSERT"] == []
            await alice.close()
            await bob.close()
    finally:
        await server.close()
        postgres.drop_database(dsn)
