"""Realtime and ended sessions (issue 10 item 6): a signed-out token stops receiving; the per-user cap
counts every user a socket acts for, not only the one of its handshake."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import jwt
import psycopg
import pytest

from realtime_support import ALICE, ANON_KEY, BOB, Served, open_socket, serve, user_token

NOTES = {"postgres_changes": [{"event": "*", "schema": "public", "table": "notes"}]}
PASSWORD = "correct horse battery"


async def _sign_up(served: Served, session: aiohttp.ClientSession) -> dict[str, Any]:
    async with session.post(
        f"{served.http_url}/auth/v1/signup",
        json={"email": f"rt-{uuid.uuid4().hex[:10]}@example.org", "password": PASSWORD},
        headers={"apikey": ANON_KEY},
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


async def _closed_with_system_error(socket: Any, topic: str) -> str:
    while True:
        system = await socket.expect("system", topic)
        if system["payload"]["extension"] == "system":
            break
    assert system["payload"]["status"] == "error"
    await socket.expect("phx_close", topic)
    return str(system["payload"]["message"])


@pytest.mark.parametrize("how", ["logout", "ended elsewhere"])
async def test_a_channel_of_an_ended_session_is_closed_and_receives_nothing(
    realtime_dsn: str, how: str
) -> None:
    async for served in serve(realtime_dsn, auth={"autoconfirm": True, "session_check_interval": 0.3}):
        async with aiohttp.ClientSession() as http:
            signed_in = await _sign_up(served, http)
            user_id, token = signed_in["user"]["id"], signed_in["access_token"]
            socket = await open_socket(http, served.ws_url())
            assert (await socket.join("realtime:mine", NOTES, access_token=token))["status"] == "ok"
            served.sql("insert into public.notes (owner, title) values (%s, 'before')", user_id)
            [change] = await socket.changes(1)
            assert change["data"]["record"]["title"] == "before"

            if how == "logout":
                async with http.post(
                    f"{served.http_url}/auth/v1/logout",
                    headers={"apikey": ANON_KEY, "Authorization": f"Bearer {token}"},
                ) as response:
                    assert response.status == 204
            else:
                # Another replica or an admin ended it: this process learns at the next check.
                session_id = jwt.decode(token, options={"verify_signature": False})["session_id"]
                with psycopg.connect(realtime_dsn, autocommit=True) as conn:
                    conn.execute("delete from auth.sessions where id = %s", (session_id,))
            message = await _closed_with_system_error(socket, "realtime:mine")
            assert "session" in message.lower()
            served.sql("insert into public.notes (owner, title) values (%s, 'after')", user_id)
            assert await socket.quiet(wait=1.0) == []
            # Joining again with the same token is refused.
            reply = await socket.join("realtime:again", NOTES, access_token=token)
            assert reply["status"] == "error" and "Unauthorized" in reply["response"]["reason"]
            await socket.close()


async def test_per_user_cap_counts_the_users_of_joins_and_token_refreshes(realtime_dsn: str) -> None:
    async for served in serve(realtime_dsn, max_connections_per_user=1):
        async with aiohttp.ClientSession() as http:
            # Opened with the anon key, acting for Alice through a join.
            first = await open_socket(http, served.ws_url())
            assert (await first.join("realtime:a", {}, access_token=user_token(ALICE)))["status"] == "ok"
            # A second socket may not act for Alice too: not by its handshake...
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(served.ws_url(key=user_token(ALICE)))
            assert refused.value.status == 429
            # ...nor by a join.
            second = await open_socket(http, served.ws_url())
            reply = await second.join("realtime:b", {}, access_token=user_token(ALICE))
            assert reply["status"] == "error" and "too many connections" in reply["response"]["reason"]
            # ...nor by refreshing a channel's token to Alice's.
            assert (await second.join("realtime:c", {}, access_token=user_token(BOB)))["status"] == "ok"
            await second.push("realtime:c", "access_token", {"access_token": user_token(ALICE)})
            assert "too many connections" in await _closed_with_system_error(second, "realtime:c")
            # The same socket acting for Alice on a second channel counts once.
            assert (await first.join("realtime:d", {}, access_token=user_token(ALICE)))["status"] == "ok"
            # Once the first socket no longer acts for Alice, another may.
            await first.push("realtime:a", "phx_leave", {})
            await first.expect("phx_close", "realtime:a")
            await first.push("realtime:d", "phx_leave", {})
            await first.expect("phx_close", "realtime:d")
            reply = await second.join("realtime:e", {}, access_token=user_token(ALICE))
            assert reply["status"] == "ok"
            await first.close()
            await second.close()
