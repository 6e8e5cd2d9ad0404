"""Realtime as Supabase Realtime behaves, round two (issue 11): TRUNCATE events, presence of a replica
that died, broadcasts larger than a NOTIFY payload."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from realtime_support import ALICE, BOB, SERVICE_KEY, Served, open_socket, serve, user_token


def _binding(event: str, table: str, **extra: str) -> dict[str, list[dict[str, str]]]:
    return {"postgres_changes": [{"event": event, "schema": "public", "table": table, **extra}]}


async def test_truncate_reaches_star_and_truncate_bindings_with_no_row_data(served: Served) -> None:
    served.sql(
        """
        create table if not exists public.ledger (id bigint primary key, owner uuid, amount int);
        alter table public.ledger enable row level security;
        drop policy if exists ledger_owner on public.ledger;
        create policy ledger_owner on public.ledger for select to authenticated using (owner = auth.uid());
        grant select on public.ledger to authenticated;
        revoke all on public.ledger from anon;
        select realtime.enable('public.ledger');
        """
    )
    served.sql("insert into public.ledger values (1, %s, 10), (2, %s, 20)", ALICE, BOB)
    async with aiohttp.ClientSession() as session:
        alice = await open_socket(session, served.ws_url())
        assert (await alice.join("realtime:l", _binding("*", "ledger"), user_token(ALICE)))["status"] == "ok"
        only_truncate = await open_socket(session, served.ws_url())
        reply = await only_truncate.join("realtime:l", _binding("TRUNCATE", "ledger"), user_token(BOB))
        assert reply["status"] == "ok"
        assert reply["response"]["postgres_changes"][0]["event"] == "TRUNCATE"
        filtered = await open_socket(session, served.ws_url())
        reply = await filtered.join(
            "realtime:l", _binding("*", "ledger", filter="amount=gt.100"), user_token(BOB)
        )
        assert reply["status"] == "ok"
        inserts = await open_socket(session, served.ws_url())
        assert (await inserts.join("realtime:l", _binding("INSERT", "ledger"), user_token(ALICE)))[
            "status"
        ] == "ok"
        service = await open_socket(session, served.ws_url(key=SERVICE_KEY))
        assert (await service.join("realtime:l", _binding("*", "ledger")))["status"] == "ok"
        # anon may not select the key: it hears of nothing on this table, truncates included.
        anon = await open_socket(session, served.ws_url())
        await anon.join("realtime:l", _binding("*", "ledger"))

        served.sql("truncate public.ledger")
        for socket in (alice, only_truncate, filtered, service):
            [change] = await socket.changes(1)
            # The seed rows were logged after the server started; under load the listener may
            # deliver their INSERTs once these channels have joined. They come before the truncate.
            while change["data"]["type"] == "INSERT" and change["data"]["record"]["id"] in (1, 2):
                [change] = await socket.changes(1)
            data = change["data"]
            assert data["type"] == "TRUNCATE"
            assert (data["schema"], data["table"]) == ("public", "ledger")
            assert data["commit_timestamp"].endswith("Z") and data["errors"] is None
            assert "record" not in data and "old_record" not in data and data["columns"] == []
            assert change["ids"]
        late = await inserts.quiet(wait=0.5)
        assert all(c["data"]["type"] == "INSERT" and c["data"]["record"]["id"] in (1, 2) for c in late)
        assert await anon.quiet(wait=0.1) == []
        # Row events keep flowing after a truncate, in log order.
        served.sql("insert into public.ledger values (3, %s, 30)", ALICE)
        [after] = await alice.changes(1)
        assert after["data"]["type"] == "INSERT" and after["data"]["record"]["id"] == 3
        for socket in (alice, only_truncate, filtered, inserts, service, anon):
            await socket.close()


async def test_broadcasts_larger_than_notify_reach_every_replica_in_order(realtime_dsn: str) -> None:
    big = {"blob": "x" * 200_000}
    async for served_a in serve(realtime_dsn, max_message_size=300_000):
        async for served_b in serve(realtime_dsn, max_message_size=300_000):
            async with aiohttp.ClientSession() as session:
                sender = await open_socket(session, served_a.ws_url())
                # No `self`: the echo could arrive before the ack, which RawSocket.reply would skip.
                await sender.join("realtime:big", {"broadcast": {"ack": True}})
                receiver = await open_socket(session, served_b.ws_url())
                await receiver.join("realtime:big", {})
                ref = await sender.push(
                    "realtime:big", "broadcast", {"type": "broadcast", "event": "large", "payload": big}
                )
                assert (await sender.reply(ref))["status"] == "ok"
                await sender.push(
                    "realtime:big", "broadcast", {"type": "broadcast", "event": "small", "payload": {}}
                )
                first = await receiver.expect("broadcast", "realtime:big")
                assert first["payload"]["event"] == "large" and first["payload"]["payload"] == big
                second = await receiver.expect("broadcast", "realtime:big")
                assert second["payload"]["event"] == "small"
                # Over realtime.max_message_size: a clear error, nothing relayed.
                too_big = {"messages": [{"topic": "big", "event": "huge", "payload": {"b": "y" * 310_000}}]}
                async with session.post(
                    f"{served_a.http_url}/realtime/v1/api/broadcast",
                    json=too_big,
                    headers={"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"},
                ) as response:
                    assert response.status == 413
                    body = await response.json()
                    assert "realtime.max_message_size" in str(body)
                assert await receiver.quiet("broadcast", wait=0.5) == []
                await sender.close()
                await receiver.close()


def _notify_presence(served: Served, node: str, topic: str, key: str, ref: str) -> None:
    message = {
        "k": "p",
        "t": topic,
        "n": node,
        "key": key,
        "join": {ref: {"who": key, "phx_ref": ref}},
        "leave": {},
    }
    served.sql("select pg_notify('fluxbase_broadcast', %s)", json.dumps(message))


async def test_presence_of_a_replica_that_stops_heartbeating_is_removed_after_its_lease(
    realtime_dsn: str,
) -> None:
    async for served_a in serve(realtime_dsn, presence_lease=1.0):
        async for served_b in serve(realtime_dsn, presence_lease=1.0):
            async with aiohttp.ClientSession() as session:
                watcher = await open_socket(session, served_a.ws_url())
                await watcher.join("realtime:room", {})
                await watcher.expect("presence_state", "realtime:room")
                # A live replica (b) tracks a member and keeps heartbeating.
                tracker = await open_socket(session, served_b.ws_url())
                await tracker.join("realtime:room", {"presence": {"key": "alive"}})
                ref = await tracker.push(
                    "realtime:room", "presence", {"event": "track", "payload": {"on": "b"}}
                )
                assert (await tracker.reply(ref))["status"] == "ok"
                diff = await watcher.expect("presence_diff", "realtime:room")
                assert list(diff["payload"]["joins"]) == ["alive"]
                # A replica that crashed: it tracked a member, then was never heard from again.
                _notify_presence(served_a, "dead-node", "realtime:room", "ghost", "dead-1")
                diff = await watcher.expect("presence_diff", "realtime:room")
                assert list(diff["payload"]["joins"]) == ["ghost"]
                started = asyncio.get_running_loop().time()
                diff = await watcher.expect("presence_diff", "realtime:room", timeout=5.0)
                assert diff["payload"]["leaves"] == {
                    "ghost": {"metas": [{"who": "ghost", "phx_ref": "dead-1"}]}
                }
                assert diff["payload"]["joins"] == {}
                # Within the lease plus one heartbeat period, and not before the lease.
                assert 0.5 <= asyncio.get_running_loop().time() - started <= 2.5
                # The live replica's member stays; a late joiner sees it and not the ghost.
                late = await open_socket(session, served_a.ws_url())
                await late.join("realtime:room", {})
                state = await late.expect("presence_state", "realtime:room")
                assert set(state["payload"]) == {"alive"}
                assert await watcher.quiet("presence_diff", wait=1.5) == []
                for socket in (watcher, tracker, late):
                    await socket.close()


async def test_rls_insert_then_delete_delivers_both_as_written(served: Served) -> None:
    """A row version the subscriber could read when it was written is delivered, even if it is
    gone (or changed) by delivery time; a version it could not read never is."""
    async with aiohttp.ClientSession() as session:
        alice = await open_socket(session, served.ws_url())
        notes = _binding("*", "notes")
        assert (await alice.join("realtime:n", notes, user_token(ALICE)))["status"] == "ok"
        bob = await open_socket(session, served.ws_url())
        assert (await bob.join("realtime:n", notes, user_token(BOB)))["status"] == "ok"
        # Three transactions back to back: usually one batch, read after the row is gone.
        served.sql("insert into public.notes (owner, title) values (%s, 'fleeting')", ALICE)
        served.sql("update public.notes set owner = %s where title = 'fleeting'", BOB)
        served.sql("delete from public.notes where title = 'fleeting'")
        seen = await alice.changes(1)
        assert [(c["data"]["type"], c["data"]["record"]["title"]) for c in seen] == [("INSERT", "fleeting")]
        # Bob could read the row as the UPDATE wrote it, and its deletion.
        bobs = await bob.changes(2)
        assert [c["data"]["type"] for c in bobs] == ["UPDATE", "DELETE"]
        assert bobs[0]["data"]["record"]["owner"] == BOB
        # Alice could not read the UPDATE's version (Bob's row) nor, by the policy on the deleted
        # row (Bob's), its deletion.
        assert await alice.quiet(wait=0.7) == []
        assert await bob.quiet(wait=0.1) == []
        await alice.close()
        await bob.close()
