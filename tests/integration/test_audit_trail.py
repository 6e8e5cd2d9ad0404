"""Audit trails by trigger, through the data API: who changed which row in which request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import Runtime, build_app
from fluxbase.db.audit_retention import AuditRetention
from fluxbase.db.migrate import Migrator
from fluxbase.db.pool import authenticator_dsn
from fluxbase.db.sqitch_plan import script_body
from harness import AUTHENTICATOR_PASSWORD, ROOT, PostgresServer, make_config
from rest_support import ANON, SERVICE, user

Client = TestClient  # type: ignore[type-arg]
ADA = "aaaaaaaa-0000-0000-0000-00000000000a"
BOB = "bbbbbbbb-0000-0000-0000-00000000000b"
JSON = {"Content-Type": "application/json", "Prefer": "return=representation"}


@pytest.fixture(scope="module")
def audit_dsn(postgres: PostgresServer) -> str:
    """The example todo app, tracked, with two users."""
    dsn = postgres.create_database("audit")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script_body(ROOT / "examples" / "db" / "deploy" / "todos.sql"))
        conn.execute(
            "insert into auth.users (id, email) values (%s, 'ada@example.com'), (%s, 'bob@example.com')",
            (ADA, BOB),
        )
        conn.execute("select audit.enable_tracking('public.todos')")
    return dsn


@pytest.fixture
async def api(audit_dsn: str) -> AsyncIterator[Client]:
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute("truncate audit.record_changes")
    app = build_app(make_config(audit_dsn), Runtime(audit_dsn, AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as client:
        yield client


def trail(dsn: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute(
            "select op, table_schema, table_name, record_id, record, old_record, actor_id::text, actor_role, "
            "api_key_id, request_id from audit.record_changes order by id"
        )
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


async def write(
    api: Client, method: str, path: str, who: dict[str, str], request_id: str, **body: Any
) -> Any:
    response = await api.request(
        method, path, headers={**who, **JSON, "X-Request-ID": request_id}, json=body or None
    )
    assert response.status in (200, 201), await response.text()
    assert response.headers["X-Request-ID"] == request_id
    return await response.json()


async def test_every_write_of_two_users_lands_with_its_actor_and_request(api: Client, audit_dsn: str) -> None:
    [ada_row] = await write(api, "POST", "/rest/v1/todos", user(ADA), "req-ada-insert", task="Ada's")
    [bob_row] = await write(api, "POST", "/rest/v1/todos", user(BOB), "req-bob-insert", task="Bob's")
    await write(api, "PATCH", f"/rest/v1/todos?id=eq.{ada_row['id']}", user(ADA), "req-ada-update",
                is_complete=True)  # fmt: skip
    await write(api, "DELETE", f"/rest/v1/todos?id=eq.{bob_row['id']}", user(BOB), "req-bob-delete")
    # RLS: Bob's update of Ada's row changes nothing, so nothing is recorded.
    assert await write(api, "PATCH", f"/rest/v1/todos?id=eq.{ada_row['id']}", user(BOB), "req-bob-nothing",
                       task="mine now") == []  # fmt: skip

    rows = trail(audit_dsn)
    assert [(r["op"], r["actor_id"], r["request_id"]) for r in rows] == [
        ("INSERT", ADA, "req-ada-insert"),
        ("INSERT", BOB, "req-bob-insert"),
        ("UPDATE", ADA, "req-ada-update"),
        ("DELETE", BOB, "req-bob-delete"),
    ]
    assert {(r["table_schema"], r["table_name"], r["actor_role"], r["api_key_id"]) for r in rows} == {
        ("public", "todos", "authenticated", None)
    }
    insert, _, update, delete = rows
    assert insert["record_id"] == {"id": ada_row["id"]} and insert["old_record"] is None
    assert insert["record"]["task"] == "Ada's" and insert["record"]["user_id"] == ADA
    assert update["old_record"]["is_complete"] is False and update["record"]["is_complete"] is True
    assert delete["record"] is None and delete["old_record"]["task"] == "Bob's"


async def test_a_generated_request_id_and_the_service_role_key(api: Client, audit_dsn: str) -> None:
    response = await api.post("/rest/v1/todos", headers={**SERVICE, **JSON}, json={"task": "by the admin"})
    assert response.status == 201
    [row] = trail(audit_dsn)
    assert row["request_id"] == response.headers["X-Request-ID"]  # the id the client and the log got
    assert (row["actor_id"], row["actor_role"], row["api_key_id"]) == (None, "service_role", "service_role")


async def test_a_rolled_back_request_leaves_nothing(api: Client, audit_dsn: str) -> None:
    asked = await api.post(
        "/rest/v1/todos",
        headers={**user(ADA), **JSON, "Prefer": "return=representation,tx=rollback"},
        json={"task": "never kept"},
    )
    assert asked.status == 201
    failed = await api.post(
        "/rest/v1/todos",
        headers={**user(ADA), **JSON},
        json=[{"task": "fine"}, {"task": ""}],  # check fails
    )
    assert failed.status == 400, await failed.text()
    forbidden = await api.post(
        "/rest/v1/todos", headers={**user(ADA), **JSON}, json={"task": "x", "user_id": BOB}
    )
    assert forbidden.status == 403
    assert trail(audit_dsn) == []


async def test_anon_and_authenticated_cannot_read_the_trail(api: Client, audit_dsn: str) -> None:
    await write(api, "POST", "/rest/v1/todos", user(ADA), "req-1", task="something to read")
    for who in (ANON, user(ADA), SERVICE):
        # The audit schema is never exposed, whatever the caller asks for.
        refused = await api.get("/rest/v1/record_changes", headers={**who, "Accept-Profile": "audit"})
        assert refused.status == 406 and (await refused.json())["code"] == "PGRST106"
        rpc = await api.post("/rest/v1/rpc/read_record_changes", headers=who, json={})
        assert rpc.status == 404
    with psycopg.connect(audit_dsn) as conn:
        for role in ("anon", "authenticated"):
            for query in ("select * from audit.record_changes", "select * from audit.read_record_changes()"):
                with conn.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"set local role {role}")
                    conn.execute(query)
        with conn.transaction():
            conn.execute("set local role service_role")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("select * from audit.record_changes")  # the table itself: nobody
            rows = conn.execute(
                "select op, request_id from audit.read_record_changes('public', 'todos', %s::uuid)", (ADA,)
            ).fetchall()
            assert rows == [("INSERT", "req-1")]


async def test_retention_deletes_what_is_older(audit_dsn: str) -> None:
    with psycopg.connect(audit_dsn, autocommit=True) as conn:
        conn.execute("truncate audit.record_changes")
        conn.execute("insert into public.todos (task) values ('old'), ('new')")
        conn.execute(
            "update audit.record_changes set at = now() - interval '31 days' where record->>'task' = 'old'"
        )
    pool = await asyncpg.create_pool(
        authenticator_dsn(audit_dsn, AUTHENTICATOR_PASSWORD), min_size=1, max_size=1
    )
    try:
        assert await AuditRetention(pool, retention=30 * 86400, interval=3600).prune() == 1
    finally:
        await pool.close()
    assert [r["record"]["task"] for r in trail(audit_dsn)] == ["new"]
