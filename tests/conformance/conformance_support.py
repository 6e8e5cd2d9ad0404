"""Conformance harness: a real `fluxbase serve`, the real Supabase clients, PostgreSQL's own answer.

Each test module starts one server (fixture `stack`) on a database of its own,
migrated and loaded with `schema.sql`. A test asks the server through the
`supabase` / `postgrest` client libraries and asks PostgreSQL the same question
with psycopg, as the same role and JWT claims, inside a transaction that is
rolled back: the two answers must agree.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from postgrest import APIError, SyncPostgrestClient
from supabase import Client, ClientOptions, create_client

from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import (
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    PostgresServer,
    ServerProcess,
    server_env,
    start_server,
)

SCHEMA = Path(__file__).with_name("schema.sql")
ALICE = "aaaaaaaa-0000-0000-0000-00000000000a"
BOB = "bbbbbbbb-0000-0000-0000-00000000000b"
ANON_KEY = api_key(JWT_SECRET, "anon")
SERVICE_KEY = api_key(JWT_SECRET, "service_role")

# The fixed part of every user token; `sub` names the user.
USER_CLAIMS = {"role": "authenticated", "aud": "authenticated"}


def user_token(sub: str) -> str:
    return jwt.encode(
        {"sub": sub, **USER_CLAIMS, "exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256"
    )


@dataclass
class Stack:
    """One running server and the database behind it; `status` is the last HTTP status seen."""

    server: ServerProcess
    dsn: str
    responses: list[httpx.Response] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.responses[-1].status_code

    def _http(self) -> httpx.Client:
        # The clients hide the HTTP status; a response hook records it for the assertions.
        return httpx.Client(event_hooks={"response": [self.responses.append]})

    @property
    def url(self) -> str:
        return self.server.url

    # --- the clients -----------------------------------------------------------------------

    def supabase(self, *, user: str | None = None, service: bool = False) -> Client:
        """A supabase-py client with the anon (or service) key, signed in as `user` if given."""
        options = ClientOptions(httpx_client=self._http())
        client = create_client(self.url, SERVICE_KEY if service else ANON_KEY, options)
        if user is not None:
            client.postgrest.auth(user_token(user))
        return client

    def postgrest(self, *, user: str | None = None) -> SyncPostgrestClient:
        """A bare postgrest-py client, as an app that talks to the data API directly uses it."""
        token = user_token(user) if user is not None else ANON_KEY
        return SyncPostgrestClient(
            self.url + "/rest/v1",
            headers={"apikey": ANON_KEY, "Authorization": f"Bearer {token}"},
            http_client=self._http(),
        )

    # --- PostgreSQL's own answer -----------------------------------------------------------

    def _as_role(self, conn: psycopg.Connection[Any], role: str, user: str | None, read_only: bool) -> None:
        if read_only:
            conn.execute("set transaction read only")
        claims: dict[str, Any] = {"role": role}
        if user is not None:
            claims = {"sub": user, **USER_CLAIMS}
        conn.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (role, json.dumps(claims)),
        )

    def sql(
        self,
        query: str,
        params: tuple[Any, ...] | dict[str, Any] = (),
        *,
        role: str = "anon",
        user: str | None = None,
        read_only: bool = False,
    ) -> Any:
        """The rows of `query` as JSON (json_agg), run as `role` / `user` and rolled back."""
        if user is not None:
            role = "authenticated"
        with psycopg.connect(self.dsn) as conn:
            self._as_role(conn, role, user, read_only)
            wrapped = f"with q as ({query}) select coalesce(json_agg(q), '[]'::json) from q"
            row = conn.execute(wrapped, params or None).fetchone()  # type: ignore[arg-type]
            conn.rollback()
        assert row is not None
        return row[0]

    def sql_value(
        self, query: str, params: tuple[Any, ...] = (), *, role: str = "anon", user: str | None = None
    ) -> Any:
        """The single value `query` returns, as its JSON form (`to_json`), rolled back."""
        return self.sql(f"select to_json(({query})) as v", params, role=role, user=user)[0]["v"]

    def sql_error(
        self,
        query: str,
        params: tuple[Any, ...] = (),
        *,
        role: str = "anon",
        user: str | None = None,
        read_only: bool = False,
    ) -> psycopg.Error:
        """The error PostgreSQL raises for `query` as `role` / `user`."""
        if user is not None:
            role = "authenticated"
        with psycopg.connect(self.dsn) as conn:
            self._as_role(conn, role, user, read_only)
            try:
                conn.execute(query, params or None)  # type: ignore[arg-type]
            except psycopg.Error as error:
                return error
            finally:
                conn.rollback()
        raise AssertionError(f"PostgreSQL accepted: {query}")

    def owner(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        """Run and commit as the owner; returns the rows of a query as JSON."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else None


def assert_same_error(error: APIError, expected: psycopg.Error) -> None:
    """The client's APIError carries PostgreSQL's SQLSTATE, message, detail and hint."""
    diag = expected.diag
    assert error.code == expected.sqlstate, (error.json(), expected)
    assert error.message == diag.message_primary
    assert error.details == diag.message_detail
    assert error.hint == diag.message_hint


def expect_error(call: Callable[[], object]) -> APIError:
    """The APIError a client call raises (it must raise one)."""
    try:
        call()
    except APIError as error:
        return error
    raise AssertionError("the call succeeded")


def _wait_for_schema_cache(url: str, timeout: float = 30) -> None:
    """/health answers before the schema cache is loaded; the data API answers 503 until then."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(url + "/rest/v1/directors?limit=0", headers={"apikey": ANON_KEY})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def start_stack(postgres: PostgresServer, prefix: str) -> Iterator[Stack]:
    # A real collation (ICU en-US), as a deployment has: the answers are compared with what
    # the same database returns, so ordering and text comparisons are covered as they are.
    dsn = postgres.create_database(prefix, icu_locale="en-US")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())  # type: ignore[arg-type]
    server = start_server(server_env(dsn), "serve", "--no-migrate")
    try:
        _wait_for_schema_cache(server.url)
        yield Stack(server, dsn)
    finally:
        server.terminate()
        postgres.drop_database(dsn)
