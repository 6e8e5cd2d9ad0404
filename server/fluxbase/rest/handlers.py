"""The data API's HTTP face: one request through parse -> plan -> query -> transaction -> response.

Mounted at /rest/v1 (Supabase's path) and /api/v1/tables + /api/v1/rpc
(Fluxbase's); the same handlers serve both.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import asyncpg
import orjson
from aiohttp import web

from fluxbase.config import ApiConfig
from fluxbase.db.errors import DatabaseUnavailable
from fluxbase.db.identifiers import quote_ident
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.rest import openapi
from fluxbase.rest.errors import (
    ApiError,
    TableNotFound,
    database_unavailable,
    from_postgres,
    max_affected_violation,
    media_type_error,
    openapi_disabled,
    pgrst_error,
    reason_phrase,
    schema_cache_not_loaded,
    singularity_error,
    unsupported_method,
)
from fluxbase.rest.plan import PlanSettings, ReadPlan, plan_call, plan_mutation, plan_read, resolve_table
from fluxbase.rest.query import (
    Statement,
    call_statement,
    explain_statement,
    function_call,
    mutation_statement,
    planned_count_statement,
    read_statement,
)
from fluxbase.rest.query.render import output_names
from fluxbase.rest.request.action import Action, PathKind
from fluxbase.rest.request.api_request import ApiRequest, check_profile, parse_request
from fluxbase.rest.request.body import csv_rows
from fluxbase.rest.request.media import MediaKind
from fluxbase.rest.request.preferences import CountPreference, HandlingPreference, TxPreference
from fluxbase.rest.request_cache import RequestCache, Shape, build_write_plan, write_signature
from fluxbase.rest.response import Reply, apply_response_settings, call_reply, read_reply, write_reply
from fluxbase.rest.schema import SchemaCache, Volatility
from fluxbase.security.authenticate import AuthenticationError, Caller, authenticate
from fluxbase.security.scopes import ScopeError, require_scope, rest_scope

MAX_URL_BYTES = 16 * 1024
WRITES = frozenset({Action.INSERT, Action.UPDATE, Action.UPSERT_ONE, Action.DELETE})
# PUT's plan compares the body's values with the filters: planned every time.
CACHED_WRITES = frozenset({Action.INSERT, Action.UPDATE, Action.DELETE})


class SchemaSource(Protocol):
    """Holds the process's current schema cache (rest/schema_cache.SchemaCacheHolder)."""

    @property
    def loaded(self) -> bool: ...

    @property
    def cache(self) -> SchemaCache: ...


@dataclass(frozen=True)
class RestContext:
    api: ApiConfig
    database: Database
    schema: SchemaSource
    base_url: str = "http://localhost:8080"  # server.base_url: the OpenAPI document's server
    shapes: RequestCache = field(default_factory=RequestCache)  # parses and read plans, per shape

    @property
    def plan_settings(self) -> PlanSettings:
        return PlanSettings(
            max_rows=self.api.max_rows,
            aggregates_enabled=self.api.aggregates_enabled,
            postgrest_version=self.api.postgrest_version,
        )


REST = web.AppKey("rest", RestContext)


class _Timer:
    """Collects the Server-Timing phases (parse, plan, transaction, render) of one request."""

    __slots__ = ("_last", "_text")

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._text = ""

    def lap(self, name: str) -> None:
        # The header is written as the phases end: no list, no second pass per request.
        now = time.perf_counter()
        entry = f"{name};dur={(now - self._last) * 1000:.1f}"
        self._text = f"{self._text}, {entry}" if self._text else entry
        self._last = now

    def header(self) -> str:
        return self._text


def _error_response(error: ApiError) -> web.Response:
    response = web.Response(
        body=orjson.dumps(error.body()),
        status=error.status,
        reason=reason_phrase(error),
        content_type="application/json",
    )
    for name, value in error.headers:
        response.headers.add(name, value)
    return response


def _caller(request: web.Request) -> Caller:
    try:
        caller = authenticate(request)
    except AuthenticationError as error:
        raise pgrst_error("PGRST301", error.reason) from error
    try:
        require_scope(caller, rest_scope(request.method))
    except ScopeError as error:
        raise ApiError(
            403, "42501", error.reason, hint="ask an administrator for a key with this scope"
        ) from error
    return caller


@functools.lru_cache(maxsize=64)  # a few exposed schemas per configuration: quoted once each
def _search_path(schema: str, api: ApiConfig) -> str:
    names = [schema, *(s for s in api.extra_search_path if s != schema)]
    return ", ".join(quote_ident(name) for name in names)


def _payload(api_request: ApiRequest, raw: bytes) -> tuple[object, bytes]:
    """The parsed body and the JSON bytes PostgreSQL receives (form bodies become one object)."""
    content_type = api_request.content_type
    if content_type is not None and content_type.kind == MediaKind.URLENCODED:
        payload: object = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return payload, orjson.dumps(payload)
    if content_type is not None and content_type.kind == MediaKind.CSV:
        payload = csv_rows(raw)
        return payload, orjson.dumps(payload)
    if content_type is not None and content_type.kind not in (MediaKind.JSON, MediaKind.ANY):
        raise pgrst_error("PGRST102", f"Content-Type {content_type.mime} is not supported for this request")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise pgrst_error("PGRST102", "Empty or invalid json", details=str(error)) from error
    if not isinstance(payload, dict | list):
        raise pgrst_error("PGRST102", "The body must be a JSON object or array")
    return payload, raw


def _options_reply(path_kind: PathKind, target: str, cache: SchemaCache, schema: str) -> Reply:
    """OPTIONS: the methods this relation or function accepts, in Allow."""
    if path_kind == "rpc":
        overloads = cache.function_overloads(schema, target)
        if not overloads:
            raise pgrst_error(
                "PGRST202", f"Could not find the function {schema}.{target} in the schema cache"
            )
        volatile = all(f.volatility == Volatility.VOLATILE for f in overloads)
        return Reply(200, {"Allow": "OPTIONS,POST" if volatile else "OPTIONS,GET,HEAD,POST"})
    table = resolve_table(cache, schema, target)
    methods = ["OPTIONS", "GET", "HEAD"]
    if table.insertable:
        methods.append("POST")
    if table.insertable and table.updatable:
        methods.append("PUT")
    if table.updatable:
        methods.append("PATCH")
    if table.deletable:
        methods.append("DELETE")
    return Reply(200, {"Allow": ",".join(methods)})


@dataclass
class _DataRequest:
    """One data API request on its way through plan, query, transaction and response."""

    http: web.Request
    rest: RestContext
    shape: Shape
    api: ApiRequest
    caller: Caller
    schema: str
    cache: SchemaCache
    timer: _Timer

    def nothing_runs_before(self) -> bool:
        """No statement precedes the request's own (a timezone, a pre-request function)."""
        return self.api.preferences.timezone is None and not self.rest.api.pre_request

    async def one_statement(self, statement: Statement, *, read_only: bool) -> asyncpg.Record:
        """The statement's row, the statement being its own transaction (Database.one_statement)."""
        context = _context(self.http, self.caller, self.schema, self.rest)
        row = await self.rest.database.one_statement(
            context, statement.sql, *statement.params, read_only=read_only
        )
        assert row is not None
        return row

    @asynccontextmanager
    async def transaction(self, *, read_only: bool) -> AsyncIterator[RoleSwitchedTransaction]:
        """The role-switched transaction plus what every data API request sets up first."""
        context = _context(self.http, self.caller, self.schema, self.rest)
        async with self.rest.database.transaction(context, read_only=read_only) as tx:
            timezone = self.api.preferences.timezone
            if timezone is not None:
                await tx.execute("select set_config('timezone', $1, true)", timezone)
            if self.rest.api.pre_request:
                await tx.execute(function_call(self.rest.api.pre_request))
            yield tx

    async def explain(self, statement: Statement, *, read_only: bool) -> Reply:
        """Accept: application/vnd.pgrst.plan: the statement's plan instead of its result."""
        media = self.api.accept
        json_format = media.plan_format != "text"
        explained = explain_statement(statement, json_format=json_format, options=tuple(media.plan_options))
        async with self.transaction(read_only=read_only) as tx:
            rows = await tx.fetch(explained.sql, *explained.params)
            tx.request_rollback()  # EXPLAIN ANALYZE of a write must not keep the write
        body = rows[0][0] if json_format else "\n".join(row[0] for row in rows)
        target = media.plan_for.mime if media.plan_for is not None else "application/json"
        kind = "json" if json_format else "text"
        content_type = f'application/vnd.pgrst.plan+{kind}; for="{target}"; charset=utf-8'
        return Reply(200, {"Content-Type": content_type}, body.encode())

    async def read(self) -> Reply:
        api, rest = self.api, self.rest
        count = api.preferences.count
        head = self.http.method == "HEAD"
        # The page is the whole result when nothing limits it: its size is then the total,
        # and the count query is skipped, as PostgREST does.
        counting = count in (CountPreference.EXACT, CountPreference.ESTIMATED)
        planned = self.shape.read_plan(self.cache)
        if planned is None:
            plan = plan_read(api, self.cache, self.schema, rest.plan_settings)
            body_kind = _body_kind(api, self.cache, head)
            whole = plan.page.offset == 0 and plan.page.limit is None
            statement = read_statement(
                plan,
                exact_count=counting and not whole,
                body=body_kind,
                geojson=self.cache.geojson_function,
            )
            self.shape.keep_read_plan(self.cache, plan, statement)
        else:
            plan, statement = planned
            whole = plan.page.offset == 0 and plan.page.limit is None
        self.timer.lap("plan")
        if api.accept.kind == MediaKind.PLAN:
            return await self.explain(statement, read_only=True)
        if count not in (CountPreference.PLANNED, CountPreference.ESTIMATED) and self.nothing_runs_before():
            row = await self.one_statement(statement, read_only=True)
            total = row["page_total"] if counting and whole else row["total"]
        else:
            row, total = await self._read_counting(plan, statement, counting and whole)
        self.timer.lap("transaction")
        reply = read_reply(
            page=plan.page,
            total=total,
            page_total=row["page_total"],
            body=row["body"],
            accept=api.accept,
            head=head,
            count_applied=count.value if count is not None else None,
            keys=output_names(plan),
            postgrest_version=rest.api.postgrest_version,
        )
        return apply_response_settings(reply, row["response_headers"], row["response_status"])

    async def _read_counting(
        self, plan: ReadPlan, statement: Statement, total_is_page: bool
    ) -> tuple[asyncpg.Record, int]:
        """The read in a transaction, with the planner's count when Prefer asks for it."""
        count = self.api.preferences.count
        async with self.transaction(read_only=True) as tx:
            row = await tx.fetchrow(statement.sql, *statement.params)
            assert row is not None
            total: int = row["page_total"] if total_is_page else row["total"]
            if count == CountPreference.PLANNED:
                total = await _planned_total(tx, planned_count_statement(plan))
            elif count == CountPreference.ESTIMATED:
                # Exact up to max_rows; past it (or with no max_rows) the planner's estimate
                # when larger, as PostgREST compares them.
                max_rows = self.rest.api.max_rows
                if max_rows is None or total > max_rows:
                    total = max(total, await _planned_total(tx, planned_count_statement(plan)))
        return row, total

    async def write(self) -> Reply:
        api, rest = self.api, self.rest
        payload: object = None
        body: bytes | None = None
        if api.action != Action.DELETE:
            payload, body = _payload(api, await self.http.read())
        single = api.accept.kind == MediaKind.SINGULAR
        signature = write_signature(payload, body is not None) if api.action in CACHED_WRITES else None
        kept = self.shape.write_plan(self.cache, signature) if signature is not None else None
        if kept is not None:
            plan, statement = kept.plan, kept.statement_for(body)
        else:
            plan = plan_mutation(api, self.cache, self.schema, rest.plan_settings, payload)
            statement = mutation_statement(plan, body, single=single)
            if signature is not None:
                built = build_write_plan(plan, body, functools.partial(mutation_statement, single=single))
                if built is not None:
                    self.shape.keep_write_plan(self.cache, signature, built)
        self.timer.lap("plan")
        if api.accept.kind == MediaKind.PLAN:
            return await self.explain(statement, read_only=False)
        preferences = api.preferences
        max_affected = preferences.max_affected if preferences.handling == HandlingPreference.STRICT else None
        singular = single and plan.representation is not None
        rollback = preferences.tx == TxPreference.ROLLBACK and rest.api.tx_override
        if max_affected is None and not singular and not rollback and self.nothing_runs_before():
            # No check may undo it: the one statement commits by itself.
            row = await self.one_statement(statement, read_only=False)
            affected = int(row["page_total"])
        else:
            async with self.transaction(read_only=False) as tx:
                row = await tx.fetchrow(statement.sql, *statement.params)
                assert row is not None
                affected = int(row["page_total"])
                if max_affected is not None and affected > max_affected:
                    raise max_affected_violation(affected)  # raised inside: the write is rolled back
                if singular and affected != 1:
                    raise singularity_error(affected, postgrest_version=rest.api.postgrest_version)
                if rollback:
                    tx.request_rollback()
        self.timer.lap("transaction")
        reply = write_reply(
            plan,
            api,
            affected=affected,
            body=row["body"],
            location=row["location"],
            inserted=row["inserted"],
            count_applied=preferences.count == CountPreference.EXACT,
            tx_applied=preferences.tx if rest.api.tx_override else None,
        )
        return apply_response_settings(reply, row["response_headers"], row["response_status"])

    async def call(self) -> Reply:
        api, rest = self.api, self.rest
        payload: object = None
        body: bytes | None = None
        if self.http.method == "POST":
            raw = await self.http.read()
            payload, body = _payload(api, raw) if raw.strip() else ({}, b"{}")
        plan = plan_call(api, self.cache, self.schema, rest.plan_settings, payload)
        single = api.accept.kind == MediaKind.SINGULAR
        count = api.preferences.count
        statement = call_statement(
            plan,
            body,
            from_query=self.http.method != "POST",
            exact_count=count == CountPreference.EXACT,
            single=single,
        )
        self.timer.lap("plan")
        if api.accept.kind == MediaKind.PLAN:
            return await self.explain(statement, read_only=plan.read_only)
        if plan.read_only and self.nothing_runs_before():
            # Nothing to roll back: the checks may come after the statement's own transaction.
            row = await self.one_statement(statement, read_only=True)
            self._check_call(row, single and plan.read is not None)
        else:
            async with self.transaction(read_only=plan.read_only) as tx:
                row = await tx.fetchrow(statement.sql, *statement.params)
                assert row is not None
                self._check_call(row, single and plan.read is not None)  # raised inside: rolled back
                if api.preferences.tx == TxPreference.ROLLBACK and rest.api.tx_override:
                    tx.request_rollback()
        self.timer.lap("transaction")
        reply = call_reply(
            plan,
            page=plan.page,
            total=row["total"],
            page_total=row["page_total"],
            body=row["body"],
            head=self.http.method == "HEAD",
            singular=single,
            count_applied=count == CountPreference.EXACT,
        )
        return apply_response_settings(reply, row["response_headers"], row["response_status"])

    def _check_call(self, row: asyncpg.Record, singular: bool) -> None:
        """Prefer: handling=strict with max-affected, and the singular media type's one row."""
        if singular and row["page_total"] != 1:
            raise singularity_error(row["page_total"], postgrest_version=self.rest.api.postgrest_version)
        preferences = self.api.preferences
        if (
            preferences.handling == HandlingPreference.STRICT
            and preferences.max_affected is not None
            and row["page_total"] > preferences.max_affected
        ):
            raise max_affected_violation(row["page_total"])


def _context(request: web.Request, caller: Caller, schema: str, rest: RestContext) -> RequestContext:
    return RequestContext(
        caller.role,
        caller.claims,
        request.method,
        request.path,
        {k.lower(): v for k, v in request.headers.items()},
        _search_path(schema, rest.api),
    )


def _body_kind(api: ApiRequest, cache: SchemaCache, head: bool) -> str:
    """How the statement renders the body: none, one object, a JSON array, CSV or GeoJSON."""
    kind = api.accept.kind
    if head:
        return "none"
    if kind == MediaKind.SINGULAR:
        return "single"
    if kind == MediaKind.CSV:
        return "csv"
    if kind == MediaKind.GEOJSON:
        if cache.geojson_function is None:  # no PostGIS: as PostgREST, the type is not available
            raise media_type_error([kind.value])
        return "geojson"
    return "json"


async def _planned_total(tx: Any, statement: Statement) -> int:
    explained = await tx.fetchval(statement.sql, *statement.params)
    plan = orjson.loads(explained) if isinstance(explained, str | bytes) else explained
    return int(plan[0]["Plan"]["Plan Rows"])


def _shape(request: web.Request, rest: RestContext, path_kind: PathKind, target: str) -> Shape:
    """The parsed request, from the shape cache when this shape was parsed before."""
    key = rest.shapes.key(request, path_kind, target)
    shape = rest.shapes.get(key) if key is not None else None
    if shape is None:
        api_request = parse_request(
            request.method,
            path_kind,
            target,
            list(request.query.items()),
            request.headers,
            plan_enabled=rest.api.plan_enabled,
        )
        shape = rest.shapes.put(key, api_request) if key is not None else Shape(api_request)
    return shape


def _endpoint(path_kind: PathKind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        rest = request.app[REST]
        timer = _Timer()
        try:
            if len(request.raw_path) > MAX_URL_BYTES:
                raise ApiError(414, "PGRST100", "URI too long")
            caller = _caller(request)
            target = request.match_info.get("name", "")
            shape = _shape(request, rest, path_kind, target)
            api_request = shape.api
            schema = check_profile(api_request.profile, rest.api.schemas)
            if not rest.schema.loaded:
                raise schema_cache_not_loaded()
            cache = rest.schema.cache
            timer.lap("parse")
            data = _DataRequest(request, rest, shape, api_request, caller, schema, cache, timer)
            if path_kind == "relation" and api_request.action == Action.READ:
                reply = await data.read()
            elif path_kind == "relation" and api_request.action in WRITES:
                reply = await data.write()
            elif api_request.action == Action.INFO:
                reply = _options_reply(path_kind, api_request.target, cache, schema)
            elif path_kind == "rpc" and api_request.action == Action.CALL:
                reply = await data.call()
            else:
                raise unsupported_method(request.method)
        except TableNotFound as error:
            return _error_response(await _hinted(error, request, caller, schema))
        except ApiError as error:
            return _error_response(error)
        except asyncpg.PostgresError as error:
            return _error_response(_from_database(error, caller_role=_role_or_anon(request)))
        except DatabaseUnavailable as error:
            # No connection, or it went away mid-statement: retryable, not a server bug.
            return _error_response(database_unavailable(error))
        response = web.Response(body=reply.body, status=reply.status, headers=reply.headers)
        timer.lap("render")
        response.headers["Server-Timing"] = timer.header()
        return response

    return handle


# Which of some relation names of a schema the current role may use at all.
_USABLE_RELATIONS = """
select name from unnest($2::text[]) as name
where has_table_privilege(format('%I.%I', $1::text, name), 'SELECT, INSERT, UPDATE, DELETE')
   or has_any_column_privilege(format('%I.%I', $1::text, name), 'SELECT, INSERT, UPDATE')
"""


async def _hinted(error: TableNotFound, request: web.Request, caller: Caller, schema: str) -> ApiError:
    """PGRST205 with its "Perhaps you meant" hint naming only a relation the caller may use."""
    if not error.candidates:
        return error.with_visible(())
    rest = request.app[REST]
    try:
        async with rest.database.transaction(_context(request, caller, schema, rest), read_only=True) as tx:
            rows = await tx.fetch(_USABLE_RELATIONS, schema, list(error.candidates))
    except (asyncpg.PostgresError, DatabaseUnavailable):
        return error.with_visible(())  # no hint rather than a guess
    return error.with_visible([row["name"] for row in rows])


def _openapi_endpoint(mount: openapi.Mount) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """GET/HEAD on the root: the OpenAPI description of the selected schema (rest/openapi.py)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        rest = request.app[REST]
        try:
            if rest.api.openapi_mode == openapi.DISABLED:
                raise openapi_disabled()
            caller = _caller(request)
            api_request = parse_request(
                request.method, "root", "", list(request.query.items()), request.headers
            )
            if api_request.action == Action.INFO:
                return web.Response(headers={"Allow": "OPTIONS,GET,HEAD"})
            schema = check_profile(api_request.profile, rest.api.schemas)
            if not rest.schema.loaded:
                raise schema_cache_not_loaded()
            cache = rest.schema.cache
            if rest.api.openapi_mode == openapi.IGNORE_PRIVILEGES:
                access = openapi.Access.everything(cache, schema)
            else:
                context = _context(request, caller, schema, rest)
                async with rest.database.transaction(context, read_only=True) as tx:
                    access = await openapi.load_access(tx, schema)
            document = openapi.build_openapi(cache, schema, access, base_url=rest.base_url, mount=mount)
        except ApiError as error:
            return _error_response(error)
        except asyncpg.PostgresError as error:
            return _error_response(_from_database(error, caller_role=_role_or_anon(request)))
        except DatabaseUnavailable as error:
            return _error_response(database_unavailable(error))
        # application/json when the client asked for it by any JSON name, else OpenAPI's own type.
        mime = "application/json" if api_request.accept.kind == MediaKind.JSON else MediaKind.OPENAPI.value
        return web.Response(body=orjson.dumps(document), headers={"Content-Type": f"{mime}; charset=utf-8"})

    return handle


def _role_or_anon(request: web.Request) -> str:
    try:
        return authenticate(request).role
    except AuthenticationError:
        return "anon"


def _from_database(error: asyncpg.PostgresError, *, caller_role: str) -> ApiError:
    return from_postgres(
        error.sqlstate or "",
        getattr(error, "message", None) or str(error),
        getattr(error, "detail", None),
        getattr(error, "hint", None),
        authenticated=caller_role != "anon",
    )


def add_routes(app: web.Application) -> None:
    relation = _endpoint("relation")
    rpc = _endpoint("rpc")
    for prefix in ("/rest/v1", "/api/v1/tables"):
        app.router.add_route("*", prefix + "/{name}", relation)
    for prefix in ("/rest/v1/rpc", "/api/v1/rpc"):
        app.router.add_route("*", prefix + "/{name}", rpc)
    for mount_path, mount in (("/rest/v1", openapi.REST_MOUNT), ("/api/v1/tables", openapi.TABLES_MOUNT)):
        root = _openapi_endpoint(mount)
        app.router.add_route("*", mount_path, root)
        app.router.add_route("*", mount_path + "/", root)
