"""The real Python `realtime` client (what supabase-py uses) against a served Fluxbase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from realtime_support import ALICE, ANON_KEY, Served, user_token


@pytest.fixture
async def rt(served: Served) -> AsyncIterator[AsyncRealtimeClient]:
    client = AsyncRealtimeClient(f"{served.http_url}/realtime/v1", ANON_KEY, auto_reconnect=False)
    await client.connect()
    yield client
    await client.close()


async def subscribed(channel: Any) -> None:
    states: list[RealtimeSubscribeStates] = []
    await channel.subscribe(lambda state, _error: states.append(state))
    assert states[-1] == RealtimeSubscribeStates.SUBSCRIBED, states


async def next_item(queue: asyncio.Queue[Any], timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_postgres_changes_with_and_without_filter(rt: AsyncRealtimeClient, served: Served) -> None:
    served.sql("delete from public.items")
    every: asyncio.Queue[Any] = asyncio.Queue()
    big: asyncio.Queue[Any] = asyncio.Queue()
    channel = rt.channel("items")
    channel.on_postgres_changes("*", every.put_nowait, table="items", schema="public")
    channel.on_postgres_changes("INSERT", big.put_nowait, table="items", filter="n=gt.10")
    await subscribed(channel)

    served.sql("insert into public.items values (1, 1, 'one'), (2, 20, 'two')")
    served.sql("update public.items set label = 'uno' where id = 1")
    served.sql("delete from public.items where id = 1")
    received = [await next_item(every) for _ in range(4)]
    assert [p["data"]["type"] for p in received] == ["INSERT", "INSERT", "UPDATE", "DELETE"]
    assert received[0]["data"]["record"] == {"id": 1, "n": 1, "label": "one"}
    assert received[2]["data"]["record"]["label"] == "uno"
    assert received[2]["data"]["old_record"] == {"id": 1}
    assert received[3]["data"]["old_record"] == {"id": 1}
    [filtered] = [await next_item(big)]
    assert filtered["data"]["record"]["id"] == 2
    await asyncio.sleep(0.5)
    assert big.empty()


async def test_broadcast_with_self_and_ack(rt: AsyncRealtimeClient, served: Served) -> None:
    other = AsyncRealtimeClient(f"{served.http_url}/realtime/v1", ANON_KEY, auto_reconnect=False)
    await other.connect()
    try:
        mine: asyncio.Queue[Any] = asyncio.Queue()
        theirs: asyncio.Queue[Any] = asyncio.Queue()
        sender = rt.channel("chat", {"config": {"broadcast": {"self": True, "ack": True}}})
        sender.on_broadcast("message", mine.put_nowait)
        await subscribed(sender)
        receiver = other.channel("chat")
        receiver.on_broadcast("message", theirs.put_nowait)
        await subscribed(receiver)

        acked: asyncio.Queue[Any] = asyncio.Queue()
        push = await sender.push(
            "broadcast", {"type": "broadcast", "event": "message", "payload": {"t": "hi"}}
        )
        push.receive("ok", acked.put_nowait)
        await next_item(acked)
        assert (await next_item(mine))["payload"] == {"t": "hi"}
        assert (await next_item(theirs))["payload"] == {"t": "hi"}

        # Without self, the sender does not hear itself.
        await receiver.send_broadcast("message", {"t": "back"})
        assert (await next_item(mine))["payload"] == {"t": "back"}
        await asyncio.sleep(0.3)
        assert theirs.empty()
    finally:
        await other.close()


async def test_presence_sync_track_and_untrack(rt: AsyncRealtimeClient, served: Served) -> None:
    other = AsyncRealtimeClient(f"{served.http_url}/realtime/v1", ANON_KEY, auto_reconnect=False)
    await other.connect()
    try:
        synced: asyncio.Queue[None] = asyncio.Queue()
        watcher = other.channel("lobby", {"config": {"presence": {"key": "watcher", "enabled": True}}})
        watcher.on_presence_sync(lambda: synced.put_nowait(None))
        await subscribed(watcher)
        await next_item(synced)  # presence_state after join

        walker = rt.channel("lobby", {"config": {"presence": {"key": "walker", "enabled": True}}})
        walker.on_presence_sync(lambda: None)
        await subscribed(walker)
        await walker.track({"status": "online"})
        for _ in range(5):
            await next_item(synced)
            state = watcher.presence_state()
            if "walker" in state:
                break
        assert [meta["status"] for meta in state["walker"]] == ["online"]

        await walker.untrack()
        for _ in range(5):
            await next_item(synced)
            if "walker" not in watcher.presence_state():
                break
        assert "walker" not in watcher.presence_state()
    finally:
        await other.close()


async def test_token_refresh_with_access_token(rt: AsyncRealtimeClient, served: Served) -> None:
    notes: asyncio.Queue[Any] = asyncio.Queue()
    channel = rt.channel("mine")
    channel.on_postgres_changes("INSERT", notes.put_nowait, table="notes")
    await subscribed(channel)

    # As anon nothing of notes is visible.
    served.sql("insert into public.notes (owner, title) values (%s, 'before')", ALICE)
    await asyncio.sleep(1.0)
    assert notes.empty()

    await rt.set_auth(user_token(ALICE))
    await asyncio.sleep(0.3)
    served.sql("insert into public.notes (owner, title) values (%s, 'after')", ALICE)
    change = await next_item(notes)
    assert change["data"]["record"]["title"] == "after"
