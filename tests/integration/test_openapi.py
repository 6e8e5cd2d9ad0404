"""The OpenAPI description at the data API root, over HTTP against real PostgreSQL: what each role may use."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from fluxbase.app import Runtime, build_app
from fluxbase.config import ApiConfig, Config, ServerConfig
from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, ROOT, PostgresServer, make_config

Client = TestClient  # type: ignore[type-arg]
ANON = {"apikey": api_key(JWT_SECRET, "anon")}
SERVICE = {"apikey": api_key(JWT_SECRET, "service_role")}
WRITES = {"post", "patch", "delete", "put"}

# Beside the data API's fixture: views that do and do not accept writes, a table with
# column grants only, functions of each volatility, and a second exposed schema.
OPENAPI_FIXTURE = """
create view public.film_years as select id, year from public.films;
create view public.director_counts as
  select director_id, count(*) as films from public.films group by director_id;
create table public.profiles (id int primary key, name text not null, secret_note text);
comment on table public.profiles is 'People';
comment on column public.profiles.name is 'Display name';
grant select (id, name) on public.profiles to anon;
grant select on public.film_years to anon;
grant all on public.film_years, public.director_counts, public.profiles to service_role;

create function public.bump() returns void language sql volatile as 'select';
revoke execute on function public.bump() from public;
grant execute on function public.bump() to authenticated, service_role;
create function public.films_since(since int) returns setof public.films
  language sql stable as 'select * from public.films where year >= since';
comment on function public.films_since(int) is 'Films from a year on';

-- Internal schemas, readable by everyone: only the exposed-schema rule keeps them out.
create schema if not exists auth;
create schema if not exists storage;
create table auth.secret_sessions (id int primary key, token text);
create table storage.secret_objects (id int primary key, path text);
create function auth.secret_fn() returns int language sql as 'select 1';
grant usage on schema auth, storage to anon, service_role;
grant select on auth.secret_sessions, storage.secret_objects to anon, service_role;

create schema api;
grant usage on schema api to anon, authenticated, service_role;
create table api.notes (id int primary key, body text);
grant select on api.notes to anon;
"""

PUBLIC_RELATIONS = """
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
"""
# Every function the fixture defines in public (the rule for which ones appear is tested below).
PUBLIC_FUNCTIONS = """
select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'public' and p.prokind = 'f'
"""
INTERNAL_RELATIONS = """
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('auth', 'storage', 'realtime', 'audit', 'dashboard', 'extensions')
  and c.relkind in ('r', 'v', 'm', 'f', 'p')
"""


def user_headers() -> dict[str, str]:
    token = jwt.encode(
        {"sub": "aaaaaaaa-0000-0000-0000-000000000001", "role": "authenticated", "aud": "authenticated",
         "exp": int(time.time()) + 600},
        JWT_SECRET,
        algorithm="HS256",
    )  # fmt: skip
    return {**ANON, "Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def openapi_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("openapi")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((ROOT / "tests" / "fixtures" / "rest_schema.sql").read_text())  # type: ignore[arg-type]
        conn.execute(OPENAPI_FIXTURE)  # type: ignore[arg-type]
    return dsn


def app_config(dsn: str, **api: Any) -> Config:
    config = make_config(dsn, server=ServerConfig(base_url="https://data.example.org"))
    return dataclasses.replace(config, api=ApiConfig(schemas=("public", "api"), **api))


@pytest.fixture
async def api(openapi_dsn: str) -> AsyncIterator[Client]:
    app = build_app(app_config(openapi_dsn), Runtime(openapi_dsn, AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as client:
        yield client


async def describe(api: Client, headers: dict[str, str], path: str = "/rest/v1/") -> dict[str, Any]:
    response = await api.get(path, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/openapi+json; charset=utf-8"
    document: dict[str, Any] = await response.json(content_type=None)
    validate(document)
    return document


def relations(document: dict[str, Any]) -> dict[str, set[str]]:
    """Relation path -> its methods."""
    return {
        path.lstrip("/"): set(operations)
        for path, operations in document["paths"].items()
        if path != "/" and not path.startswith("/rpc/")
    }


def functions(document: dict[str, Any]) -> dict[str, set[str]]:
    return {
        path.removeprefix("/rpc/"): set(operations)
        for path, operations in document["paths"].items()
        if path.startswith("/rpc/")
    }


def rows(dsn: str, query: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute(query)}  # type: ignore[arg-type]


async def test_anon_sees_only_what_it_was_granted(api: Client, openapi_dsn: str) -> None:
    document = await describe(api, ANON)
    assert document["servers"] == [{"url": "https://data.example.org/rest/v1"}]
    assert relations(document) == {
        "directors": {"get"},
        "films": {"get"},
        "actors": {"get"},
        "roles": {"get"},
        "technical_specs": {"get"},
        "film_years": {"get"},
        "profiles": {"get"},
    }
    # EXECUTE goes to PUBLIC by default, unless revoked as for bump().
    anon_functions = functions(document)
    assert set(anon_functions) == rows(openapi_dsn, PUBLIC_FUNCTIONS) - {"bump"}
    assert anon_functions["add"] == anon_functions["films_since"] == {"get", "post"}
    profiles = document["components"]["schemas"]["profiles"]
    assert profiles["description"] == "People"
    assert profiles["properties"] == {
        "id": {"type": "integer", "format": "int32", "description": "Note:\nThis is a Primary Key.<pk/>"},
        "name": {"type": "string", "description": "Display name"},
    }  # secret_note is not granted to anon
    assert profiles["required"] == ["id", "name"]


async def test_an_authenticated_user_sees_its_writes(api: Client) -> None:
    document = await describe(api, user_headers())
    methods = relations(document)
    assert methods["films"] == {"get", *WRITES}
    assert methods["directors"] == {"get", *WRITES}
    assert methods["todos"] == {"get", *WRITES}  # RLS limits rows, not the description
    assert methods["actors"] == {"get"}
    assert "film_years" not in methods
    assert functions(document)["bump"] == {"post"}  # VOLATILE: POST only


async def test_service_role_sees_the_whole_exposed_schema(api: Client, openapi_dsn: str) -> None:
    document = await describe(api, SERVICE)
    methods = relations(document)
    assert set(methods) == rows(openapi_dsn, PUBLIC_RELATIONS)
    # Auto-updatable, with films' primary key traced through the view: PUT too.
    assert methods["film_years"] == {"get", *WRITES}
    assert methods["director_counts"] == {"get"}  # GROUP BY: not updatable
    assert set(functions(document)) == rows(openapi_dsn, PUBLIC_FUNCTIONS)
    films_since = document["paths"]["/rpc/films_since"]["get"]
    assert films_since["summary"] == "Films from a year on"
    assert films_since["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/films"},
    }
    films = document["components"]["schemas"]["films"]["properties"]
    assert films["rating"] == {"type": "number", "nullable": True}
    assert films["tags"] == {"type": "array", "items": {"type": "string"}}
    assert films["released"] == {"type": "string", "format": "date", "nullable": True}
    assert films["tsv"]["readOnly"] is True
    assert "Foreign Key to `directors.id`" in films["director_id"]["description"]
    todos = document["components"]["schemas"]["todos"]
    assert todos["properties"]["user_id"] == {"type": "string", "format": "uuid"}
    assert todos["required"] == ["title"]  # id is an identity, user_id and done have defaults


@pytest.mark.parametrize("headers", [ANON, SERVICE], ids=["anon", "service_role"])
async def test_internal_schemas_never_appear(api: Client, openapi_dsn: str, headers: dict[str, str]) -> None:
    document = await describe(api, headers)
    internal = rows(openapi_dsn, INTERNAL_RELATIONS) - rows(openapi_dsn, PUBLIC_RELATIONS)
    assert {"secret_sessions", "secret_objects"} <= internal  # granted to the caller, all the same
    assert not internal & set(relations(document))
    assert not internal & set(document["components"]["schemas"])
    assert "secret_fn" not in functions(document)
    for schema in ("auth", "storage", "pg_catalog"):
        response = await api.get("/rest/v1/", headers={**headers, "Accept-Profile": schema})
        assert response.status == 406
        assert (await response.json())["code"] == "PGRST106"


async def test_accept_profile_chooses_the_schema(api: Client) -> None:
    document = await describe(api, {**ANON, "Accept-Profile": "api"})
    assert relations(document) == {"notes": {"get"}}
    assert functions(document) == {}
    assert "`api`" in document["info"]["description"]


async def test_every_mount_and_spelling_of_the_root(api: Client) -> None:
    with_slash = await describe(api, ANON, "/rest/v1/")
    without = await describe(api, ANON, "/rest/v1")
    assert with_slash == without
    tables = await describe(api, ANON, "/api/v1/tables/")
    assert tables == await describe(api, ANON, "/api/v1/tables")
    assert tables["servers"] == [{"url": "https://data.example.org/api/v1"}]
    assert "/tables/films" in tables["paths"]
    assert "/rpc/add" in tables["paths"]
    # The described paths answer: the server URL plus a path is a real route.
    response = await api.get("/api/v1/tables/films?select=id&id=eq.1", headers=ANON)
    assert await response.json() == [{"id": 1}]


async def test_media_types_head_and_methods(api: Client) -> None:
    response = await api.get("/rest/v1/", headers={**ANON, "Accept": "application/json"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    response = await api.get("/rest/v1/", headers={**ANON, "Accept": "text/csv"})
    assert response.status == 406
    assert (await response.json())["code"] == "PGRST107"
    response = await api.head("/rest/v1/", headers=ANON)
    assert response.status == 200
    assert await response.read() == b""
    response = await api.post("/rest/v1/", headers=ANON, json={})
    assert response.status == 405
    assert (await response.json())["code"] == "PGRST117"
    response = await api.get("/rest/v1/", headers={"Authorization": "Bearer not-a-token"})
    assert response.status == 401


async def test_a_grant_shows_at_once(api: Client, openapi_dsn: str) -> None:
    assert "todos" not in relations(await describe(api, ANON))
    with psycopg.connect(openapi_dsn, autocommit=True) as conn:
        conn.execute("grant select (id, title) on public.todos to anon")
    try:
        document = await describe(api, ANON)
        assert relations(document)["todos"] == {"get"}
        assert set(document["components"]["schemas"]["todos"]["properties"]) == {"id", "title"}
    finally:
        with psycopg.connect(openapi_dsn, autocommit=True) as conn:
            conn.execute("revoke select (id, title) on public.todos from anon")


@pytest.mark.parametrize("mode", ["ignore-privileges", "disabled"])
async def test_openapi_mode(openapi_dsn: str, mode: str) -> None:
    app = build_app(app_config(openapi_dsn, openapi_mode=mode), Runtime(openapi_dsn, AUTHENTICATOR_PASSWORD))
    async with TestClient(TestServer(app)) as client:
        if mode == "disabled":
            response = await client.get("/rest/v1/", headers=SERVICE)
            assert response.status == 404
            assert (await response.json())["code"] == "PGRST126"
            return
        document = await describe(client, ANON)
        assert relations(document)["todos"] == {"get", *WRITES}
        assert "bump" in functions(document)
