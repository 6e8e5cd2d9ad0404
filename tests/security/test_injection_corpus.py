"""Issue 10's standing matrix: a corpus of hostile strings in every parameter, path and header position
of /rest/v1, /auth/v1 and /storage/v1. No answer is a 5xx, none is slow (a `pg_sleep` that reached SQL
would show), and the test tables hold exactly what they held before."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import psycopg
import pytest
from yarl import URL

from rest_support import ANON, SERVICE, Client, user

pytestmark = pytest.mark.usefixtures("rest_dsn")

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
SLOW = 3.0  # seconds: far above any honest answer here, below the corpus's pg_sleep(5)
CORPUS = [
    "'",
    '"',
    "id'; drop table public.films;--",
    'id"; drop table public.films;--',
    "1; select pg_sleep(5)",
    "select pg_sleep(5)",
    "1) or pg_sleep(5) is null or (1",
    "$1",
    "$1::text",
    "id\x00",
    "\x00",
    "../../etc/passwd",
    "..%2f..%2fauth.users",
    "auth.users",
    '{"a":1}',
    '"}]],;{',
    "\u02bbüñíçødé \U0001f642 \u0661\u0662\u0663 \u202e",
    "x" * 5000,
    "id,title)),(select",
    "*,auth.users(*)",
    "id.desc.nullsfirst,pg_sleep(5)",
    "\\",
    "%",
    "id::text;--",
]
TABLES = ["directors", "films", "actors", "roles", "technical_specs", "todos"]


def checksum(dsn: str) -> str:
    """One digest over every row of the test tables (and the user count): any write changes it."""
    parts = [
        f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from public.{name} t"
        for name in TABLES
    ]
    with psycopg.connect(dsn) as conn:
        digests = [str(conn.execute(sql).fetchone()) for sql in parts]  # type: ignore[arg-type]
        digests.append(str(conn.execute("select count(*) from auth.users").fetchone()))
        digests.append(str(conn.execute("select count(*) from storage.objects").fetchone()))
    return ";".join(digests)


def _q(value: str) -> str:
    return quote(value, safe="")


def _header_safe(value: str) -> bool:
    # A client cannot put NUL or non-Latin-1 text in a header at all; the rest goes in as is.
    return value.isprintable() and all(ord(c) < 256 for c in value)


class Prober:
    """Sends raw (already encoded) URLs; records every 5xx and every slow answer."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.base = str(client.make_url("")).rstrip("/")
        self.problems: list[str] = []
        self.count = 0

    async def send(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        json: object = None,
        data: bytes | None = None,
    ) -> None:
        url = URL(self.base + target, encoded=True)
        started = time.monotonic()
        try:
            async with asyncio.timeout(SLOW * 2):
                async with self.client.session.request(
                    method, url, headers=headers, json=json, data=data, allow_redirects=False
                ) as response:
                    await response.read()
                    status = response.status
        except TimeoutError:
            self.problems.append(f"{method} {target[:120]}: no answer in {SLOW * 2}s")
            return
        elapsed = time.monotonic() - started
        self.count += 1
        if status >= 500:
            self.problems.append(f"{method} {target[:120]} {list(headers)}: {status}")
        elif elapsed > SLOW:
            self.problems.append(f"{method} {target[:120]}: {elapsed:.1f}s")


async def test_hostile_strings_in_every_rest_position(api: Client, rest_dsn: str) -> None:
    before = checksum(rest_dsn)
    probe = Prober(api)
    alice = user(ALICE)
    for raw in CORPUS:
        s = _q(raw)
        for headers in (ANON, alice, SERVICE):
            for query in (
                f"select={s}",
                f"select=id,{s}",
                f"select=id,directors({s})",
                f"order={s}",
                f"{s}=eq.1",
                f"id=eq.{s}",
                f"title=eq.{s}",
                f"title=like.{s}",
                f"id=in.({s})",
                f"tags=cs.{{{s}}}",
                f"data->>{s}=eq.1",
                f"or=({s})",
                f"or=(id.eq.{s},title.eq.{s})",
                f"title=fts.{s}",
                f"limit={s}",
                f"offset={s}",
                f"directors.order={s}",
            ):
                await probe.send("GET", f"/rest/v1/films?{query}", headers)
            await probe.send("GET", f"/rest/v1/{s}", headers)
            await probe.send("GET", f"/rest/v1/{s}?select=*", headers)
            await probe.send("POST", f"/rest/v1/rpc/{s}", headers, json={})
        # Writes as the service role, aimed so that none could succeed: the row exists, the filters
        # match nothing, the names are not columns.
        existing = {"id": 1, "last_name": "Kubrick"}
        await probe.send("POST", f"/rest/v1/directors?on_conflict={s}", SERVICE, json=existing)
        await probe.send(
            "POST",
            f"/rest/v1/directors?on_conflict={s}",
            {**SERVICE, "Prefer": "resolution=merge-duplicates"},
            json={"id": 1, "last_name": raw},
        )
        await probe.send("POST", f"/rest/v1/directors?columns={s}", SERVICE, json=existing)
        await probe.send(
            "POST", "/rest/v1/directors", SERVICE, json={raw: 1, "id": 1, "last_name": "Kubrick"}
        )
        await probe.send(
            "PATCH", f"/rest/v1/directors?last_name=eq.{s}", SERVICE, json={"last_name": "changed"}
        )
        await probe.send("PATCH", f"/rest/v1/directors?{s}=eq.1", SERVICE, json={"last_name": "changed"})
        await probe.send("PATCH", "/rest/v1/directors?id=eq.999", SERVICE, json={raw: "changed"})
        await probe.send("DELETE", f"/rest/v1/directors?last_name=eq.{s}", SERVICE)
        await probe.send("DELETE", f"/rest/v1/films?{s}=is.null", SERVICE)
        await probe.send(
            "POST", "/rest/v1/directors", {**SERVICE, "Content-Type": "application/json"}, data=raw.encode()
        )
        if _header_safe(raw):
            for name in ("Prefer", "Accept", "Range", "Accept-Profile", "Range-Unit"):
                await probe.send("GET", "/rest/v1/films?select=id", {**SERVICE, name: raw})
            for name in ("Prefer", "Content-Profile", "Content-Type"):
                await probe.send("POST", "/rest/v1/directors", {**SERVICE, name: raw}, json=existing)
            await probe.send(
                "PATCH", "/rest/v1/directors?id=eq.999", {**SERVICE, "Prefer": raw}, json={"last_name": "x"}
            )
            await probe.send("GET", "/rest/v1/films", {"apikey": raw})
            await probe.send("GET", "/rest/v1/films", {**ANON, "Authorization": f"Bearer {raw}"})
    assert not probe.problems, probe.problems[:20]
    assert probe.count > 1000
    assert checksum(rest_dsn) == before


async def test_hostile_strings_on_auth_and_storage(api: Client, rest_dsn: str) -> None:
    before = checksum(rest_dsn)
    probe = Prober(api)
    alice = user(ALICE)
    for raw in CORPUS:
        s = _q(raw)
        for grant in ("password", "refresh_token", s):
            body = {"email": raw, "password": raw, "refresh_token": raw}
            await probe.send("POST", f"/auth/v1/token?grant_type={grant}", ANON, json=body)
        await probe.send("POST", "/auth/v1/verify", ANON, json={"type": raw, "token": raw, "email": raw})
        await probe.send("GET", f"/auth/v1/verify?type={s}&token={s}&redirect_to={s}", ANON)
        await probe.send("POST", "/auth/v1/otp", ANON, json={"email": raw})
        await probe.send("POST", "/auth/v1/recover", ANON, json={"email": raw})
        await probe.send("PUT", "/auth/v1/user", alice, json={"data": {raw: raw}, "email": raw})
        await probe.send("GET", f"/auth/v1/{s}", ANON)
        await probe.send("GET", f"/auth/v1/admin/users/{s}", SERVICE)
        await probe.send("GET", f"/auth/v1/admin/users?page={s}&per_page={s}", SERVICE)
        await probe.send("GET", f"/auth/v1/authorize?provider={s}&redirect_to={s}", ANON)
        await probe.send("GET", f"/storage/v1/bucket/{s}", SERVICE)
        await probe.send("GET", f"/storage/v1/object/{s}/{s}", SERVICE)
        await probe.send("GET", f"/storage/v1/object/public/{s}/{s}", ANON)
        await probe.send("GET", f"/storage/v1/object/info/{s}/{s}", alice)
        await probe.send("POST", f"/storage/v1/object/list/{s}", SERVICE, json={"prefix": raw, "search": raw})
        await probe.send("POST", f"/storage/v1/object/sign/{s}/{s}", SERVICE, json={"expiresIn": 60})
        await probe.send("GET", f"/storage/v1/object/sign/{s}/{s}?token={s}", ANON)
        await probe.send("DELETE", f"/storage/v1/object/{s}", SERVICE, json={"prefixes": [raw]})
        await probe.send("POST", "/storage/v1/bucket", alice, json={"name": raw, "id": raw})
        await probe.send("PUT", f"/storage/v1/bucket/{s}", alice, json={"public": True})
    assert not probe.problems, probe.problems[:20]
    assert checksum(rest_dsn) == before


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_a_filter_on_an_absent_embed_is_refused_not_dropped(
    api: Client, rest_dsn: str, method: str
) -> None:
    """Found by the corpus: `?auth.users=eq.1` was read as a filter on an embed named `auth`, which a
    mutation never checked, so the filter vanished and the PATCH or DELETE reached every row."""
    before = checksum(rest_dsn)
    response = await api.request(
        method, "/rest/v1/directors?auth.users=eq.1", headers=SERVICE, json={"last_name": "changed"}
    )
    assert response.status == 400
    assert (await response.json())["code"] == "PGRST108"
    assert checksum(rest_dsn) == before
