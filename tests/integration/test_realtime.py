"""Realtime over a real socket and a real database: handshake, join, RLS-checked changes, no loss."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter

import aiohttp
import psycopg
import pytest

from fluxbase.observability import metrics
from fluxbase.realtime.handlers import REALTIME
from realtime_support import ALICE, ANON_KEY, BOB, SERVICE_KEY, Served, open_socket, serve, user_token

ITEMS = {"postgres_changes": [{"event": "*", "schema": "public", "table": "items"}]}
NOTES = {"postgres_changes": [{"event": "*", "schema": "public", "table": "notes"}]}


async def test_handshake_refuses_bad_tokens_before_upgrading(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        for url in (
            f"{served.http_url}/realtime/v1/websocket?vsn=1.0.0",
            served.ws_url(key="not-a-jwt"),
        ):
            async with session.get(url, headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
                assert r.status == 401
                assert "error" in await r.json()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(served.ws_url(vsn="3.0.0"))
        assert refused.value.status == 403


async def test_join_echoes_bindings_then_reports_subscribed(served: Served) -> None:
    bindings = [
        {"event": "INSERT", "schema": "public", "table": "items", "filter": "n=gt.5"},
        {"event": "*", "schema": "public", "table": "notes"},
    ]
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, served.ws_url())
        reply = await socket.join("realtime:room", {"postgres_changes": bindings})
        assert reply["status"] == "ok"
        echoed = reply["response"]["postgres_changes"]
        assert [{k: v for k, v in b.items() if k != "id"} for b in echoed] == bindings
        assert all(isinstance(b["id"], int) for b in echoed)
        system = await socket.expect("system", "realtime:room")
        assert system["payload"] == {
            "channel": "room",
            "extension": "postgres_changes",
            "message": "Subscribed to PostgreSQL",
            "status": "ok",
        }
        # Heartbeat on the phoenix topic.
        ref = await socket.push("phoenix", "heartbeat", {})
        assert await socket.reply(ref) == {"status": "ok", "response": {}}
        await socket.close()


async def test_tables_not_enabled_and_bad_filters_are_refused(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, served.ws_url())
        reply = await socket.join(
            "realtime:a", {"postgres_changes": [{"event": "*", "schema": "public", "table": "quiet"}]}
        )
        assert reply["status"] == "error"
        assert "not enabled for realtime" in reply["response"]["reason"]
        reply = await socket.join(
            "realtime:b",
            {"postgres_changes": [{"event": "*", "schema": "public", "table": "items", "filter": "n=gt.x"}]},
        )
        assert reply["status"] == "error" and "invalid filter" in reply["response"]["reason"]
        # Filtering on a column the subscriber cannot select would be an oracle.
        reply = await socket.join(
            "realtime:c",
            {
                "postgres_changes": [
                    {"event": "*", "schema": "public", "table": "notes", "filter": "secret=eq.x"}
                ]
            },
            access_token=user_token(ALICE),
        )
        assert reply["status"] == "error" and "permission denied" in reply["response"]["reason"]
        await socket.close()


async def test_insert_update_delete_payloads_and_filters(served: Served) -> None:
    served.sql("delete from public.items")
    async with aiohttp.ClientSession() as session:
        everything = await open_socket(session, served.ws_url())
        await everything.join("realtime:all", ITEMS)
        filtered = await open_socket(session, served.ws_url())
        await filtered.join(
            "realtime:big",
            {
                "postgres_changes": [
                    {"event": "*", "schema": "public", "table": "items", "filter": "n=gte.10"}
                ]
            },
        )
        served.sql("insert into public.items values (1, 5, 'small'), (2, 50, 'big')")
        served.sql("update public.items set label = 'bigger' where id = 2")
        served.sql("delete from public.items where id = 2")
        changes = await everything.changes(4)
        assert [c["data"]["type"] for c in changes] == ["INSERT", "INSERT", "UPDATE", "DELETE"]
        insert = changes[0]["data"]
        assert insert["schema"] == "public" and insert["table"] == "items"
        assert insert["record"] == {"id": 1, "n": 5, "label": "small"}
        assert insert["columns"] == [
            {"name": "id", "type": "int8"},
            {"name": "n", "type": "int4"},
            {"name": "label", "type": "text"},
        ]
        assert insert["errors"] is None and insert["commit_timestamp"].endswith("Z")
        assert "old_record" not in insert
        update = changes[2]["data"]
        assert update["record"]["label"] == "bigger" and update["old_record"] == {"id": 2}
        assert changes[3]["data"]["old_record"] == {"id": 2} and "record" not in changes[3]["data"]
        assert all(c["ids"] for c in changes)
        # The filter let only the row with n >= 10 through, in all three events.
        big = await filtered.changes(3)
        assert [
            (c["data"]["type"], (c["data"].get("record") or c["data"]["old_record"])["id"]) for c in big
        ] == [
            ("INSERT", 2),
            ("UPDATE", 2),
            ("DELETE", 2),
        ]
        assert await filtered.quiet(wait=0.7) == []
        await everything.close()
        await filtered.close()


async def test_rls_user_never_sees_another_users_rows_or_ungranted_columns(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        alice = await open_socket(session, served.ws_url())
        await alice.join("realtime:notes", NOTES, access_token=user_token(ALICE))
        bob = await open_socket(session, served.ws_url())
        await bob.join("realtime:notes", NOTES, access_token=user_token(BOB))
        service = await open_socket(session, served.ws_url(key=SERVICE_KEY))
        await service.join("realtime:notes", NOTES)

        # Under RLS a row is re-read when checked, so each step waits for the previous delivery.
        served.sql(
            "insert into public.notes (owner, title, secret) values (%s, 'alice private', 's3')", ALICE
        )
        seen_by_alice = await alice.changes(1)
        served.sql("update public.notes set title = 'still private' where owner = %s", ALICE)
        seen_by_alice += await alice.changes(1)
        served.sql("delete from public.notes where owner = %s", ALICE)
        seen_by_alice += await alice.changes(1)

        assert [c["data"]["type"] for c in seen_by_alice] == ["INSERT", "UPDATE", "DELETE"]
        record = seen_by_alice[0]["data"]["record"]
        assert record["title"] == "alice private" and "secret" not in record
        assert "secret" not in {c["name"] for c in seen_by_alice[0]["data"]["columns"]}
        assert set(seen_by_alice[2]["data"]["old_record"]) == {"id"}  # DELETE under RLS: key only

        seen_by_service = await service.changes(3)
        assert [c["data"]["type"] for c in seen_by_service] == ["INSERT", "UPDATE", "DELETE"]
        assert seen_by_service[0]["data"]["record"]["secret"] == "s3"
        assert await bob.quiet(wait=0.5) == []

        # A row that moves from Alice to Bob: Bob gets the UPDATE (he may see it now), never
        # the INSERT written while it was Alice's.
        served.sql("insert into public.notes (owner, title) values (%s, 'handed over')", ALICE)
        await alice.changes(1)
        served.sql("update public.notes set owner = %s where title = 'handed over'", BOB)
        [handed] = await bob.changes(1)
        assert handed["data"]["type"] == "UPDATE" and handed["data"]["record"]["owner"] == BOB
        served.sql("delete from public.notes where title = 'handed over'")
        [gone] = await bob.changes(1)
        assert gone["data"]["type"] == "DELETE"
        assert await bob.quiet(wait=0.5) == []
        for socket in (alice, bob, service):
            await socket.close()


async def test_a_100_kb_row_is_written_and_delivered(served: Served) -> None:
    blob = "x" * 100_000
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, served.ws_url())
        await socket.join(
            "realtime:wide", {"postgres_changes": [{"event": "INSERT", "schema": "public", "table": "wide"}]}
        )
        served.sql("delete from public.wide")
        served.sql("insert into public.wide values (1, %s)", blob)
        [change] = await socket.changes(1)
        assert change["data"]["record"]["blob"] == blob
        await socket.close()


async def test_no_change_is_lost_when_the_listener_connection_is_killed(served: Served) -> None:
    served.sql("delete from public.items")
    service = served.app[REALTIME]
    assert service.listener is not None
    async with aiohttp.ClientSession() as session:
        sockets = [await open_socket(session, served.ws_url()) for _ in range(3)]
        for socket in sockets:
            await socket.join(
                "realtime:items",
                {"postgres_changes": [{"event": "INSERT", "schema": "public", "table": "items"}]},
            )

        def write_and_kill() -> None:
            with psycopg.connect(served.dsn, autocommit=True) as conn:
                for start in range(0, 1000, 50):
                    with conn.transaction():
                        for i in range(start, start + 50):
                            conn.execute("insert into public.items values (%s, %s, 'bulk')", (i + 1000, i))
                    if start in (200, 600):
                        pid = service.listener.backend_pid if service.listener else None
                        if pid is not None:
                            conn.execute("select pg_terminate_backend(%s)", (pid,))

        drops_before = metrics.realtime_listener_drops_total._value.get()
        await asyncio.to_thread(write_and_kill)
        for socket in sockets:
            changes = await socket.changes(1000, timeout=20)
            ids = Counter(c["data"]["record"]["id"] for c in changes)
            assert set(ids) == set(range(1000, 2000))
            assert max(ids.values()) == 1
            assert await socket.quiet(wait=0.5) == []
            await socket.close()
        # The listener really was cut off (and came back) while the rows went in.
        assert metrics.realtime_listener_drops_total._value.get() >= drops_before + 1


async def test_slow_reader_is_closed_with_1008_and_others_are_unaffected(realtime_dsn: str) -> None:
    async for served in serve(realtime_dsn, send_queue_size=5):
        async with aiohttp.ClientSession() as session:
            healthy = await open_socket(session, served.ws_url())
            await healthy.join("realtime:calm", {})
            # A client that never reads: its socket buffer fills, then its queue of 5.
            slow_ws = await session.ws_connect(served.ws_url(), max_msg_size=0)
            await slow_ws.send_str(
                '{"topic":"realtime:flood","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}'
            )
            await asyncio.sleep(0.3)
            hub = served.app[REALTIME].hub
            [slow] = [channel.client for channel in hub.topics["realtime:flood"]]
            pausing = slow_ws._response.connection
            assert pausing is not None and pausing.protocol is not None
            pausing.protocol.pause_reading()
            for n in range(3000):
                await hub.broadcast("realtime:flood", "fill", {"n": n, "pad": "x" * 2000})
                if slow.closed:
                    break
            assert slow.closed, "the slow client was never cut off"
            pausing.protocol.resume_reading()
            message = await slow_ws.receive(timeout=5)
            while message.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                message = await slow_ws.receive(timeout=5)
            if message.type == aiohttp.WSMsgType.CLOSE:
                assert message.data == 1008
            ref = await healthy.push("phoenix", "heartbeat", {})
            assert (await healthy.reply(ref))["status"] == "ok"
            await healthy.close()


async def test_connection_and_subscription_caps(realtime_dsn: str) -> None:
    async for served in serve(realtime_dsn, max_connections_per_user=1, max_subscriptions_per_socket=2):
        before = metrics.realtime_connections._value.get()
        async with aiohttp.ClientSession() as session:
            first = await open_socket(session, served.ws_url(key=user_token(ALICE)))
            assert metrics.realtime_connections._value.get() == before + 1
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(served.ws_url(key=user_token(ALICE)))
            assert refused.value.status == 429
            # One channel with one binding is two subscriptions; a second channel is one too many.
            assert (await first.join("realtime:one", ITEMS))["status"] == "ok"
            reply = await first.join("realtime:two", {})
            assert reply["status"] == "error" and "too many subscriptions" in reply["response"]["reason"]
            await first.close()
        for _ in range(50):
            if metrics.realtime_connections._value.get() == before:
                break
            await asyncio.sleep(0.05)
        assert metrics.realtime_connections._value.get() == before


async def test_expired_token_closes_its_channels(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, served.ws_url())
        # Within the 30 s clock-skew allowance the token is still accepted; its exp is past.
        reply = await socket.join("realtime:exp", ITEMS, access_token=user_token(ALICE, lifetime=-1))
        assert reply["status"] == "ok"
        system = await socket.expect("system", "realtime:exp")
        while system["payload"]["extension"] != "system":
            system = await socket.expect("system", "realtime:exp")
        assert system["payload"]["status"] == "error" and "expired" in system["payload"]["message"]
        await socket.expect("phx_close", "realtime:exp")
        await socket.close()


async def test_rest_broadcast_reaches_subscribers(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        socket = await open_socket(session, served.ws_url())
        await socket.join("realtime:news", {})
        async with session.post(
            f"{served.http_url}/realtime/v1/api/broadcast",
            json={"messages": [{"topic": "news", "event": "flash", "payload": {"n": 1}}]},
            headers={"apikey": ANON_KEY},
        ) as response:
            assert response.status == 202
        message = await socket.expect("broadcast", "realtime:news")
        assert message["payload"] == {"type": "broadcast", "event": "flash", "payload": {"n": 1}}
        async with session.post(
            f"{served.http_url}/realtime/v1/api/broadcast", json={"messages": []}
        ) as response:
            assert response.status == 401
        for path in ("/realtime/v1/api/broadcast", "/realtime/v1/api/broadcast/news/events/flash"):
            async with session.post(
                f"{served.http_url}{path}", json={"messages": []}, headers={"apikey": "not-a-token"}
            ) as response:
                assert response.status == 401, path
        await socket.close()


async def test_two_replicas_both_deliver_changes_and_relay_broadcast_and_presence(realtime_dsn: str) -> None:
    served_b_iter = serve(realtime_dsn)
    async for served_a in serve(realtime_dsn):
        served_b = await served_b_iter.__anext__()
        try:
            async with aiohttp.ClientSession() as session:
                on_a = await open_socket(session, served_a.ws_url())
                on_b = await open_socket(session, served_b.ws_url())
                for socket in (on_a, on_b):
                    await socket.join("realtime:shared", ITEMS)
                served_a.sql("insert into public.items values (4242, 1, 'both') on conflict do nothing")
                for socket in (on_a, on_b):
                    [change] = await socket.changes(1)
                    assert change["data"]["record"]["id"] == 4242
                served_a.sql("delete from public.items where id = 4242")
                for socket in (on_a, on_b):
                    await socket.changes(1)
                await on_a.push(
                    "realtime:shared", "broadcast", {"type": "broadcast", "event": "e", "payload": {}}
                )
                message = await on_b.expect("broadcast", "realtime:shared")
                assert message["payload"]["event"] == "e"
                await on_a.push(
                    "realtime:shared", "presence", {"type": "presence", "event": "track", "payload": {"a": 1}}
                )
                diff = await on_b.expect("presence_diff", "realtime:shared")
                [(_key, entry)] = diff["payload"]["joins"].items()
                assert entry["metas"][0]["a"] == 1 and entry["metas"][0]["phx_ref"]
                await on_a.close()
                await on_b.close()
        finally:
            with contextlib.suppress(StopAsyncIteration):
                await served_b_iter.__anext__()


async def test_vsn_2_binary_broadcast_and_select(served: Served) -> None:
    from fluxbase.realtime import phoenix

    served.sql("delete from public.items where id = 77")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(served.ws_url(vsn="2.0.0"))
        bindings = [{"event": "INSERT", "schema": "public", "table": "items", "select": ["id", "label"]}]
        await ws.send_str(
            json.dumps(
                [
                    "1",
                    "1",
                    "realtime:v2",
                    "phx_join",
                    {"config": {"broadcast": {"self": True}, "postgres_changes": bindings}},
                ]
            )
        )
        reply = json.loads((await ws.receive(timeout=5)).data)
        assert reply[3] == "phx_reply" and reply[4]["status"] == "ok"
        # realtime-js 2.x sends broadcasts as binary kind 3; the sender (self) gets kind 4 back.
        topic, event = b"realtime:v2", b"ping"
        frame = bytes([3, 1, 1, len(topic), len(event), 0, 1]) + b"1" + b"2" + topic + event + b'{"x":1}'
        await ws.send_bytes(frame)
        served.sql("insert into public.items values (77, 7, 'seven')")
        got_broadcast = got_change = False
        while not (got_broadcast and got_change):
            message = await ws.receive(timeout=5)
            if message.type == aiohttp.WSMsgType.BINARY:
                assert message.data[0] == phoenix.KIND_USER_BROADCAST
                assert message.data.endswith(b'{"x":1}')
                got_broadcast = True
            else:
                decoded = json.loads(message.data)
                if decoded[3] == "postgres_changes":
                    assert decoded[4]["data"]["record"] == {"id": 77, "label": "seven"}
                    got_change = True
        await ws.close()


async def test_a_replica_started_later_learns_who_is_present(realtime_dsn: str) -> None:
    async for early in serve(realtime_dsn):
        async with aiohttp.ClientSession() as session:
            tracker = await open_socket(session, early.ws_url())
            await tracker.join("realtime:late", {"presence": {"key": "early-bird"}})
            ref = await tracker.push("realtime:late", "presence", {"event": "track", "payload": {"on": "a"}})
            assert (await tracker.reply(ref))["status"] == "ok"
            async for late in serve(realtime_dsn):
                watcher = await open_socket(session, late.ws_url())
                await watcher.join("realtime:late", {})
                state = await watcher.expect("presence_state", "realtime:late")
                if "early-bird" not in state["payload"]:
                    diff = await watcher.expect("presence_diff", "realtime:late")
                    assert diff["payload"]["joins"]["early-bird"]["metas"][0]["on"] == "a"
                # Untracking on the early replica reaches the late one.
                ref = await tracker.push("realtime:late", "presence", {"event": "untrack"})
                await tracker.reply(ref)
                diff = await watcher.expect("presence_diff", "realtime:late")
                assert list(diff["payload"]["leaves"]) == ["early-bird"]
                await watcher.close()
            await tracker.close()


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_cannot_read_the_change_log(realtime_dsn: str, role: str) -> None:
    with psycopg.connect(realtime_dsn, autocommit=True) as conn:
        conn.execute(f"set role {role}")
        for statement in (
            "select * from realtime.log",
            "select * from realtime.read_changes('0', '1', 0, 1)",
            "select realtime.prune('1 second')",
            "select realtime.enable('public.quiet')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


async def test_many_users_in_one_batch_each_see_only_their_rows_in_few_statements(served: Served) -> None:
    """60 distinct users (60 claims groups) and one batch: every user receives exactly their
    own rows, the service role all of them, and the whole batch is checked in a handful of
    statements (realtime.visible_changes checks many groups at once), not one per group."""
    users = [f"cccccccc-0000-0000-0000-{n:012d}" for n in range(60)]
    served.sql("delete from public.notes where owner = any(%s::uuid[])", users)
    async with aiohttp.ClientSession() as session:
        sockets = []
        for user in users:
            socket = await open_socket(session, served.ws_url())
            reply = await socket.join("realtime:notes", NOTES, access_token=user_token(user))
            assert reply["status"] == "ok"
            sockets.append(socket)
        service = await open_socket(session, served.ws_url(key=SERVICE_KEY))
        await service.join("realtime:notes", NOTES)
        statements_before = metrics.db_queries_ok._value.get()
        # One statement, one transaction: the listener reads all 120 rows as one batch.
        served.sql(
            "insert into public.notes (owner, title, secret) "
            "select u::uuid, 'row ' || n || ' of ' || u, 'hidden' "
            "from unnest(%s::text[]) u cross join generate_series(1, 2) n",
            users,
        )
        everything = await service.changes(120)
        statements = metrics.db_queries_ok._value.get() - statements_before
        assert len(everything) == 120
        assert {c["data"]["record"]["secret"] for c in everything} == {"hidden"}
        for user, socket in zip(users, sockets, strict=True):
            received = await socket.changes(2)
            assert sorted(c["data"]["record"]["title"] for c in received) == [
                f"row 1 of {user}",
                f"row 2 of {user}",
            ]
            assert all(c["data"]["record"]["owner"] == user for c in received)
            assert all("secret" not in c["data"]["record"] for c in received)
        for socket in sockets:
            assert await socket.quiet(wait=0.05) == []
        # One statement for the roles' grants, two visible_changes() calls for 60 groups (at
        # most 50 per call), a little slack for the listener; one check per group would be 60+.
        assert statements <= 10, statements
        for socket in (*sockets, service):
            await socket.close()
