"""The admin API and API keys over real HTTP and PostgreSQL: deny by default, scopes, SQL, policies."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import psycopg
import pytest

from dashboard_support import PASSWORD, bearer, create_admin, login
from fluxbase.config import RateLimitConfig
from fluxbase.dashboard.handlers import PUBLIC_ROUTES
from realtime_support import SERVICE_KEY, user_token

ADMIN = "root@example.com"
PATH_VALUES = {
    "id": str(uuid.uuid4()),
    "session_id": str(uuid.uuid4()),
    "schema": "public",
    "table": "t",
    "name": "p",
}


@pytest.fixture
async def admin(dashboard_app, dashboard_dsn):
    """A client and an administrator's token; the admin exists once per module."""
    with psycopg.connect(dashboard_dsn) as conn:
        exists = conn.execute("select dashboard.find_user_by_email(%s)", (ADMIN,)).fetchone()
    if exists is None or exists[0] is None:
        create_admin(dashboard_dsn, ADMIN)
    client = await dashboard_app(api_key_refresh_interval=60.0)
    token = (await login(client, ADMIN))["access_token"]
    client.session.cookie_jar.clear()  # these tests authenticate by header; cookies have their own test
    return client, token


async def _sql(client, token: str, query: str, **extra) -> dict:
    response = await client.post(
        "/api/v1/admin/sql/execute", json={"query": query, **extra}, headers=bearer(token)
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def _key(client, token: str, **body) -> dict:
    response = await client.post(
        "/api/v1/admin/api-keys", json={"name": "test", **body}, headers=bearer(token)
    )
    assert response.status == 201, await response.text()
    return await response.json()


def _protected_routes(app) -> list[tuple[str, str]]:
    routes = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        admin = path.startswith(("/api/v1/admin/", "/api/v1/api-keys"))
        dashboard = (
            path.startswith("/dashboard/auth/") and path.removeprefix("/dashboard/auth") not in PUBLIC_ROUTES
        )
        if (admin or dashboard) and route.method != "HEAD":
            routes.append((route.method, path.format(**PATH_VALUES)))
    return routes


async def test_every_admin_and_dashboard_route_denies_by_default(admin) -> None:
    client, token = admin
    routes = _protected_routes(client.server.app)
    assert len(routes) >= 30
    plain_key = (await _key(client, token, scopes=["rest:read", "rest:write", "storage", "realtime"]))["key"]
    admin_key = (await _key(client, token, scopes=["admin"]))["key"]
    await asyncio.sleep(0)  # NOTIFY reloads the registry; the create also answered from this process
    await _reload(client)
    refused_credentials = {
        "nothing": {},
        "an app user's JWT": bearer(user_token(str(uuid.uuid4()))),
        "the service_role key": {"apikey": SERVICE_KEY, **bearer(SERVICE_KEY)},
        "an API key as apikey": {"apikey": plain_key},
        "an API key as Bearer": bearer(plain_key),
        "garbage": bearer("not-a-token"),
    }
    for method, path in routes:
        for what, headers in refused_credentials.items():
            response = await client.request(method, path, headers=headers, json={})
            assert response.status in (401, 403), (method, path, what, response.status)
            if what in ("nothing", "an app user's JWT", "the service_role key", "garbage"):
                assert response.status == 401, (method, path, what)
    # Half-authenticated: a 2FA challenge is 403 everywhere.
    from fluxbase.security.dashboard_auth import issue_challenge_token
    from harness import JWT_SECRET

    challenge = issue_challenge_token(
        JWT_SECRET, challenge_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), ttl=60, issuer="test"
    )
    for method, path in routes:
        response = await client.request(method, path, headers=bearer(challenge), json={})
        assert response.status == 403, (method, path, response.status)
        assert (await response.json())["code"] == "mfa_required"
    # An admin-scoped key never reaches the dashboard's own routes, key management or administrators.
    for method, path in routes:
        if path.startswith(
            (
                "/dashboard/auth/",
                "/api/v1/admin/api-keys",
                "/api/v1/api-keys",
                "/api/v1/admin/dashboard-users",
            )
        ):
            response = await client.request(method, path, headers=bearer(admin_key), json={})
            assert response.status in (401, 403), (method, path)
    settings = await client.get("/api/v1/admin/settings", headers={"apikey": admin_key})
    assert settings.status == 200


async def _reload(client) -> None:
    from fluxbase.app import DATABASE
    from fluxbase.security.authenticate import AUTHENTICATOR
    from fluxbase.security.key_registry import load_keys

    app = client.server.app
    await load_keys(app[DATABASE], app[AUTHENTICATOR].api_keys)


async def test_admin_token_is_refused_by_the_data_api_and_realtime(admin) -> None:
    client, token = admin
    rest = await client.get("/rest/v1/", headers={"apikey": token, **bearer(token)})
    assert rest.status == 401
    items = await client.get("/rest/v1/anything", headers={"apikey": token})
    assert items.status == 401
    socket = await client.get(f"/realtime/v1/websocket?apikey={token}&vsn=1.0.0")
    assert socket.status == 401


async def test_api_keys_scopes_on_rest_and_realtime_and_revocation(admin) -> None:
    client, token = admin
    await _sql(client, token, "create table public.gadgets (id int primary key, name text)")
    await _sql(client, token, "grant select, insert on public.gadgets to anon")
    await _sql(client, token, "insert into public.gadgets values (1, 'one')")
    reader = await _key(client, token, scopes=["rest:read"])
    writer = await _key(client, token, scopes=["rest:read", "rest:write", "realtime"])
    assert reader["key"].startswith("fbk_") and reader["key_prefix"] == reader["key"][:12]
    assert reader["role"] == "anon" and reader["rate_limit_per_minute"] == 1000
    # Shown once: never again in a listing.
    listing = await (await client.get("/api/v1/admin/api-keys", headers=bearer(token))).json()
    assert all("key" not in k for k in listing) and reader["key"] not in str(listing)
    # The Go Fluxbase's path lists the same keys, behind the same check.
    assert await (await client.get("/api/v1/api-keys", headers=bearer(token))).json() == listing
    assert (await client.get("/api/v1/api-keys")).status == 401

    for _ in range(50):  # the schema cache hears about the new table by NOTIFY
        read = await client.get("/rest/v1/gadgets", headers={"apikey": reader["key"]})
        if read.status == 200:
            break
        await asyncio.sleep(0.1)
    assert await read.json() == [{"id": 1, "name": "one"}]
    as_bearer = await client.get("/rest/v1/gadgets", headers=bearer(reader["key"]))
    assert as_bearer.status == 200
    write = await client.post(
        "/rest/v1/gadgets", json={"id": 2, "name": "two"}, headers={"apikey": reader["key"]}
    )
    assert write.status == 403
    assert "rest:write" in (await write.json())["message"]
    write = await client.post(
        "/rest/v1/gadgets", json={"id": 2, "name": "two"}, headers={"apikey": writer["key"]}
    )
    assert write.status == 201

    base = str(client.make_url("/realtime/v1/websocket"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{base}?apikey={reader['key']}&vsn=1.0.0")
        assert refused.value.status == 403
        socket = await session.ws_connect(f"{base}?apikey={writer['key']}&vsn=1.0.0")
        # Revoked while connected: the socket is closed within seconds.
        temporary = await _key(client, token, scopes=["realtime"])
        await _reload(client)
        held = await session.ws_connect(f"{base}?apikey={temporary['key']}&vsn=1.0.0")
        await client.post(f"/api/v1/admin/api-keys/{temporary['id']}/revoke", headers=bearer(token))
        closing = await asyncio.wait_for(held.receive(), timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and held.close_code == 1008
        await socket.close()

    revoked = await client.post(f"/api/v1/admin/api-keys/{reader['id']}/revoke", headers=bearer(token))
    assert revoked.status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # NOTIFY reloads this process's registry
        after = await client.get("/rest/v1/gadgets", headers={"apikey": reader["key"]})
        if after.status == 401:
            break
        await asyncio.sleep(0.05)
    assert after.status == 401

    regenerated = await client.post(
        f"/api/v1/admin/api-keys/{writer['id']}/regenerate", headers=bearer(token)
    )
    new_key = (await regenerated.json())["key"]
    await _reload(client)
    assert (await client.get("/rest/v1/gadgets", headers={"apikey": writer["key"]})).status == 401
    assert (await client.get("/rest/v1/gadgets", headers={"apikey": new_key})).status == 200
    used = await (await client.get(f"/api/v1/admin/api-keys/{writer['id']}", headers=bearer(token))).json()
    await _reload(client)  # writes last-used times back
    used = await (await client.get(f"/api/v1/admin/api-keys/{writer['id']}", headers=bearer(token))).json()
    assert used["last_used_at"] is not None


async def test_a_key_maps_to_its_role(admin) -> None:
    client, token = admin
    await _sql(client, token, "create table public.secrets (id int primary key)")
    await _sql(client, token, "alter table public.secrets enable row level security")
    await _sql(client, token, "grant select on public.secrets to anon")
    await _sql(client, token, "insert into public.secrets values (1)")
    anon = await _key(client, token, scopes=["rest:read"])
    service = await _key(client, token, scopes=["rest:read"], role="service_role")
    await _reload(client)
    for _ in range(50):
        response = await client.get("/rest/v1/secrets", headers={"apikey": service["key"]})
        if response.status == 200:
            break
        await asyncio.sleep(0.1)
    assert await response.json() == [{"id": 1}]  # service_role bypasses RLS
    assert await (await client.get("/rest/v1/secrets", headers={"apikey": anon["key"]})).json() == []
    bad = await client.post(
        "/api/v1/admin/api-keys",
        json={"name": "x", "role": "postgres", "scopes": ["rest:read"]},
        headers=bearer(token),
    )
    assert bad.status == 400
    bad = await client.post(
        "/api/v1/admin/api-keys", json={"name": "x", "scopes": ["root"]}, headers=bearer(token)
    )
    assert bad.status == 400


async def test_each_key_has_its_own_rate_limit(admin, dashboard_app) -> None:
    # Keys spend their own budget in the rate limiter's api_key tier, so limiting is on here.
    _, token = admin
    client = await dashboard_app(
        api_key_refresh_interval=60.0, rate_limit=RateLimitConfig(enabled=True, requests_per_minute=1000)
    )
    limited = await _key(client, token, scopes=["rest:read"], rate_limit_per_minute=3)
    other = await _key(client, token, scopes=["rest:read"], rate_limit_per_minute=3)
    await _reload(client)
    statuses = [(await client.get("/rest/v1/", headers={"apikey": limited["key"]})).status for _ in range(4)]
    assert statuses[:3] != [429] * 3 and statuses[3] == 429
    refused = await client.get("/rest/v1/", headers={"apikey": limited["key"]})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await client.get("/rest/v1/", headers={"apikey": other["key"]})).status != 429


async def test_sql_runner_policies_rls_and_realtime_are_audited(admin, dashboard_dsn) -> None:
    client, token = admin
    await _sql(client, token, "create table public.notes (id int primary key, owner uuid, secret text)")
    result = await _sql(client, token, "select 1 as one, 'hunter2'::text as pw")
    assert result["columns"] == ["one", "pw"] and result["rows"] == [{"one": 1, "pw": "hunter2"}]
    refused = await client.post(
        "/api/v1/admin/sql/execute",
        json={"query": "delete from public.notes", "read_only": True},
        headers=bearer(token),
    )
    assert refused.status == 400
    stacked = await client.post(
        "/api/v1/admin/sql/execute", json={"query": "select 1; select 2"}, headers=bearer(token)
    )
    assert stacked.status == 400

    rls = await client.post(
        "/api/v1/admin/tables/public/notes/rls", json={"enabled": True}, headers=bearer(token)
    )
    assert rls.status == 200
    policy = {
        "name": "own notes",
        "command": "select",
        "roles": ["authenticated"],
        "using": "owner = auth.uid()",
    }
    dry = await client.post(
        "/api/v1/admin/tables/public/notes/policies", json={**policy, "dry_run": True}, headers=bearer(token)
    )
    expected = (
        'create policy "own notes" on "public"."notes" as permissive for select to "authenticated"'
        " using (owner = auth.uid())"
    )
    assert (await dry.json())["sql"] == expected
    created = await client.post(
        "/api/v1/admin/tables/public/notes/policies", json=policy, headers=bearer(token)
    )
    assert created.status == 201 and (await created.json())["sql"] == expected
    smuggled = await client.post(
        "/api/v1/admin/tables/public/notes/policies",
        json={**policy, "name": "x", "using": "true); drop table public.notes; select (1"},
        headers=bearer(token),
    )
    assert smuggled.status == 400
    table = await (await client.get("/api/v1/admin/tables/public/notes", headers=bearer(token))).json()
    assert table["rls_enabled"] is True
    assert [c["name"] for c in table["columns"]] == ["id", "owner", "secret"]
    assert table["policies"][0]["name"] == "own notes" and table["policies"][0]["roles"] == ["authenticated"]
    tables = await (await client.get("/api/v1/admin/tables", headers=bearer(token))).json()
    assert {"schema": "public", "name": "notes"}.items() <= next(
        t for t in tables if t["name"] == "notes"
    ).items()
    assert not any(t["schema"] in ("auth", "dashboard", "audit") for t in tables)
    internal = await client.get("/api/v1/admin/tables/dashboard/users", headers=bearer(token))
    assert internal.status == 403

    on = await client.post("/api/v1/admin/realtime/tables", json={"table": "notes"}, headers=bearer(token))
    assert on.status == 200
    listed = await (await client.get("/api/v1/admin/realtime/tables", headers=bearer(token))).json()
    assert {"schema": "public", "name": "notes"} in listed
    off = await client.delete("/api/v1/admin/realtime/tables/public/notes", headers=bearer(token))
    assert off.status == 200
    dropped = await client.delete(
        "/api/v1/admin/tables/public/notes/policies/own notes", headers=bearer(token)
    )
    assert dropped.status == 200

    activity = await (
        await client.get("/api/v1/admin/activity?action=sql_executed&limit=50", headers=bearer(token))
    ).json()
    assert activity and all(a["action"] == "sql_executed" for a in activity)
    assert any(a["details"]["sql"] == "select 1 as one, '…'::text as pw" for a in activity)
    assert any(a["success"] is False for a in activity)
    with psycopg.connect(dashboard_dsn) as conn:
        events = {r[0] for r in conn.execute("select event from audit.events where event like 'dashboard.%'")}
        leaked = conn.execute(
            "select count(*) from audit.events where details::text like '%hunter2%'"
        ).fetchone()
    assert {
        "dashboard.sql_executed",
        "dashboard.policy_created",
        "dashboard.policy_dropped",
        "dashboard.rls_changed",
        "dashboard.realtime_enabled",
        "dashboard.realtime_disabled",
    } <= events
    assert leaked == (0,)


async def test_settings_mask_secrets(admin) -> None:
    client, token = admin
    settings = await (await client.get("/api/v1/admin/settings", headers=bearer(token))).json()
    assert settings["auth"]["jwt_secret"] == "********"
    assert settings["auth"]["smtp"]["password"] is None
    assert settings["dashboard"]["api_key_rate_limit"] == 1000
    assert "password" not in str(settings["database"]["url"])
    from fluxbase.admin_api.settings import masked
    from fluxbase.config import DatabaseConfig

    shown = masked(DatabaseConfig(url="postgresql://owner:s3cret@db.example:5432/app?sslmode=require"))
    assert shown["url"] == "postgresql://owner:********@db.example:5432/app?sslmode=require"


async def test_app_users_are_managed_through_the_auth_functions(admin, dashboard_app, dashboard_dsn) -> None:
    client, token = admin
    created = await client.post(
        "/api/v1/admin/users",
        json={"email": "app@example.com", "password": "app password 1"},
        headers=bearer(token),
    )
    assert created.status == 201
    user = await created.json()
    again = await client.post(
        "/api/v1/admin/users",
        json={"email": "app@example.com", "password": "app password 1"},
        headers=bearer(token),
    )
    assert again.status == 409
    found = await (await client.get("/api/v1/admin/users?search=APP@", headers=bearer(token))).json()
    assert [u["id"] for u in found["users"]] == [user["id"]]
    page = await (await client.get("/api/v1/admin/users?per_page=10", headers=bearer(token))).json()
    assert page["total"] >= 1

    signed_in = await client.post(
        "/auth/v1/token?grant_type=password", json={"email": "app@example.com", "password": "app password 1"}
    )
    assert signed_in.status == 200
    app_token = (await signed_in.json())["access_token"]
    assert (await client.get("/dashboard/auth/me", headers=bearer(app_token))).status == 401

    banned = await client.post(
        f"/api/v1/admin/users/{user['id']}/ban", json={"duration": "24h"}, headers=bearer(token)
    )
    assert banned.status == 200 and (await banned.json())["banned_until"]
    refused = await client.post(
        "/auth/v1/token?grant_type=password", json={"email": "app@example.com", "password": "app password 1"}
    )
    assert refused.status == 400
    assert (await client.post(f"/api/v1/admin/users/{user['id']}/ban", json={"duration": "none"},
                              headers=bearer(token))).status == 200  # fmt: skip
    deleted = await client.delete(f"/api/v1/admin/users/{user['id']}", headers=bearer(token))
    assert deleted.status == 204
    assert (await client.delete(f"/api/v1/admin/users/{user['id']}", headers=bearer(token))).status == 404
    with psycopg.connect(dashboard_dsn) as conn:
        actions = {
            r[0]
            for r in conn.execute(
                "select action from dashboard.activity_log where resource_type = 'app_user'"
            )
        }
    assert {"app_user_created", "app_user_banned", "app_user_unbanned", "app_user_deleted"} <= actions


async def test_a_viewer_may_only_read(admin, dashboard_dsn) -> None:
    client, _ = admin
    create_admin(dashboard_dsn, "viewer@example.com", role="dashboard_viewer")
    viewer = (await login(client, "viewer@example.com", PASSWORD))["access_token"]
    assert (await client.get("/api/v1/admin/settings", headers=bearer(viewer))).status == 200
    refused = await client.post(
        "/api/v1/admin/sql/execute", json={"query": "select 1"}, headers=bearer(viewer)
    )
    assert refused.status == 403


async def test_gotrue_admin_routes_need_the_admin_scope(admin) -> None:
    client, token = admin
    plain = await _key(client, token, scopes=["rest:read"], role="service_role")
    scoped = await _key(client, token, scopes=["admin"], role="service_role")
    await _reload(client)
    refused = await client.get(
        "/auth/v1/admin/users", headers={"apikey": plain["key"], **bearer(plain["key"])}
    )
    assert refused.status == 403
    allowed = await client.get(
        "/auth/v1/admin/users", headers={"apikey": scoped["key"], **bearer(scoped["key"])}
    )
    assert allowed.status == 200


async def test_send_reset_mails_an_app_user_a_recovery_link(dashboard_app, dashboard_dsn, smtp) -> None:
    inbox, port = smtp
    client = await dashboard_app(smtp_port=port)  # an administrator on an app that can send mail
    if not _admin_exists(dashboard_dsn):
        create_admin(dashboard_dsn, ADMIN)
    token = (await login(client, ADMIN))["access_token"]
    client.session.cookie_jar.clear()
    created = await client.post(
        "/api/v1/admin/users",
        json={"email": "reset-me@example.com", "password": "app password 1"},
        headers=bearer(token),
    )
    user_id = (await created.json())["id"]
    sent = await client.post(f"/api/v1/admin/users/{user_id}/send-reset", headers=bearer(token))
    assert sent.status == 200
    link = await inbox.link_for("reset-me@example.com")
    assert "/auth/v1/verify?" in link and "type=recovery" in link
    followed = await client.get(link[link.index("/auth/v1/verify") :], allow_redirects=False)
    assert followed.status in (302, 303) and "access_token=" in followed.headers["Location"]


def _admin_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select dashboard.find_user_by_email(%s)", (ADMIN,)).fetchone()
    return row is not None and row[0] is not None
