"""Admin routes for the database: tables, columns, policies and RLS; realtime on/off; the audited SQL runner.

These run as the database owner (the API roles cannot run DDL).  Policies
are created from SQL the administrator sees: the answer carries the exact
statement, built with quoted identifiers, and `dry_run` returns it without
running it.  Every change and every SQL run writes an activity row in the
same transaction (a failed run in one of its own) and an audit log line;
the SQL text is stored with its string literals blanked, so a password in
an `alter role` never reaches the log.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from fluxbase.admin_api.context import AdminContext, log_event, route
from fluxbase.admin_api.errors import database_error, outcome_error
from fluxbase.config import INTERNAL_SCHEMAS, is_internal_schema
from fluxbase.errors import HttpError, json_response
from fluxbase.request_json import json_object, text_field
from fluxbase.security.dashboard_auth import DashboardAdmin

MAX_ROWS = 1000
COMMANDS = ("all", "select", "insert", "update", "delete")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
# '...' (with '' inside), E'...', and $tag$...$tag$: what a secret would be written in.
_LITERALS = re.compile(r"(?s)[Ee]?'(?:[^'\\]|''|\\.)*'|(\$[A-Za-z_0-9]*\$).*?\1")

TABLES_SQL = """
select n.nspname as schema, c.relname as name, c.relrowsecurity as rls_enabled,
       c.relforcerowsecurity as rls_forced, c.reltuples::bigint as estimated_rows,
       exists (select from pg_catalog.pg_trigger t where t.tgrelid = c.oid and t.tgname = 'fluxbase_realtime')
         as realtime_enabled,
       (select count(*) from pg_catalog.pg_policy p where p.polrelid = c.oid) as policy_count
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and n.nspname <> all($1::text[]) and n.nspname !~ '^pg_'
 order by 1, 2
"""
COLUMNS_SQL = """
select a.attname as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type,
       not a.attnotnull as nullable,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default,
       coalesce((select true from pg_catalog.pg_index i where i.indrelid = a.attrelid and i.indisprimary
                 and a.attnum = any(i.indkey)), false) as primary_key
  from pg_catalog.pg_attribute a
  left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
 where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attnum
"""
POLICIES_SQL = """
select p.polname as name, case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update'
         when 'd' then 'delete' else 'all' end as command,
       p.polpermissive as permissive,
       coalesce((select pg_catalog.array_agg(
                          case r when 0 then 'public' else pg_catalog.pg_get_userbyid(r)::text end)
                   from pg_catalog.unnest(p.polroles) r), '{}') as roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) as using,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) as with_check
  from pg_catalog.pg_policy p where p.polrelid = $1 order by p.polname
"""


def redact_literals(query: str) -> str:
    return _LITERALS.sub("'…'", query)


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise HttpError(
            400, "validation_failed", f"{what} must be a plain SQL identifier (letters, digits, _)"
        )
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _table(request: web.Request) -> tuple[str, str]:
    schema = _identifier(request.match_info["schema"], "schema")
    table = _identifier(request.match_info["table"], "table")
    if is_internal_schema(schema):
        raise outcome_error("internal_schema")
    return schema, table


async def _oid(connection: asyncpg.Connection, schema: str, table: str) -> int:
    oid = await connection.fetchval("select to_regclass($1)::oid", f"{_quote(schema)}.{_quote(table)}")
    if oid is None:
        raise outcome_error("not_found", f"No table {schema}.{table}")
    return int(oid)


def _internal() -> list[str]:
    return sorted(INTERNAL_SCHEMAS)


async def list_tables(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    async with ctx.as_owner(read_only=True) as connection:
        rows = await connection.fetch(TABLES_SQL, _internal())
    return json_response([dict(r) for r in rows])


async def get_table(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    schema, table = _table(request)
    async with ctx.as_owner(read_only=True) as connection:
        oid = await _oid(connection, schema, table)
        summary = await connection.fetchrow(
            TABLES_SQL.replace("order by 1, 2", "and c.oid = $2"), _internal(), oid
        )
        columns = await connection.fetch(COLUMNS_SQL, oid)
        policies = await connection.fetch(POLICIES_SQL, oid)
    if summary is None:
        raise outcome_error("not_found")
    return json_response(
        {**dict(summary), "columns": [dict(c) for c in columns], "policies": [dict(p) for p in policies]}
    )


async def set_rls(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """{enabled: bool, force?: bool}."""
    schema, table = _table(request)
    body = await json_object(request)
    enabled = body.get("enabled")
    force = body.get("force")
    if not isinstance(enabled, bool) or (force is not None and not isinstance(force, bool)):
        raise HttpError(400, "validation_failed", "enabled (and force, if given) must be true or false")
    target = f"{_quote(schema)}.{_quote(table)}"
    statements = [f"alter table {target} {'enable' if enabled else 'disable'} row level security"]
    if force is not None:
        statements.append(f"alter table {target} {'force' if force else 'no force'} row level security")
    async with ctx.as_owner() as connection:
        await _oid(connection, schema, table)
        for statement in statements:
            await connection.fetch(statement)
        await log_event(
            connection,
            request,
            admin,
            "rls_changed",
            {"enabled": enabled, "force": force, "sql": statements},
            resource_type="table",
            resource_id=f"{schema}.{table}",
        )
    return json_response({"sql": statements, "rls_enabled": enabled})


def policy_sql(schema: str, table: str, body: dict[str, Any]) -> str:
    """The create policy statement for {name, command, permissive, roles, using, with_check}."""
    name = text_field(body, "name", max_length=63)
    assert name is not None
    command = str(body.get("command", "all")).lower()
    if command not in COMMANDS:
        raise HttpError(400, "validation_failed", f"command must be one of {', '.join(COMMANDS)}")
    roles = body.get("roles") or ["public"]
    if not isinstance(roles, list):
        raise HttpError(400, "validation_failed", "roles must be a list of role names")
    role_list = ", ".join("public" if r == "public" else _quote(_identifier(r, "a role")) for r in roles)
    using = text_field(body, "using", required=False, max_length=10_000)
    check = text_field(body, "with_check", required=False, max_length=10_000)
    if using is None and check is None:
        raise HttpError(400, "validation_failed", "using or with_check is required")
    kind = "permissive" if body.get("permissive", True) is not False else "restrictive"
    target = f"{_quote(schema)}.{_quote(table)}"
    sql = f"create policy {_quote(name)} on {target} as {kind} for {command} to {role_list}"
    if using is not None:
        sql += f" using ({using})"
    if check is not None:
        sql += f" with check ({check})"
    return sql


async def create_policy(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    schema, table = _table(request)
    body = await json_object(request)
    sql = policy_sql(schema, table, body)
    if body.get("dry_run") is True:
        return json_response({"sql": sql, "dry_run": True})
    async with ctx.as_owner() as connection:
        await _oid(connection, schema, table)
        # fetch() prepares the statement: one statement only, so an expression cannot smuggle a second.
        await connection.fetch(sql)
        await log_event(
            connection,
            request,
            admin,
            "policy_created",
            {"name": body["name"], "sql": redact_literals(sql)},
            resource_type="table",
            resource_id=f"{schema}.{table}",
        )
    return json_response({"sql": sql}, status=201)


async def drop_policy(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    schema, table = _table(request)
    name = request.match_info["name"]
    sql = f"drop policy {_quote(name)} on {_quote(schema)}.{_quote(table)}"
    async with ctx.as_owner() as connection:
        await _oid(connection, schema, table)
        await connection.fetch(sql)
        await log_event(
            connection,
            request,
            admin,
            "policy_dropped",
            {"name": name, "sql": sql},
            resource_type="table",
            resource_id=f"{schema}.{table}",
        )
    return json_response({"sql": sql})


async def realtime_tables(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    async with ctx.as_owner(read_only=True) as connection:
        rows = await connection.fetch(
            "select schema_name as schema, table_name as name from realtime.enabled_tables() order by 1, 2"
        )
    return json_response([dict(r) for r in rows])


async def _realtime(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin, schema: str, table: str, enable: bool
) -> web.StreamResponse:
    if is_internal_schema(schema):
        raise outcome_error("internal_schema")
    function = "realtime.enable" if enable else "realtime.disable"
    async with ctx.as_owner() as connection:
        oid = await _oid(connection, schema, table)
        await connection.fetch(f"select {function}($1::oid::regclass)", oid)
        await log_event(
            connection,
            request,
            admin,
            "realtime_enabled" if enable else "realtime_disabled",
            {},
            resource_type="table",
            resource_id=f"{schema}.{table}",
        )
    return json_response({"schema": schema, "name": table, "realtime_enabled": enable})


async def enable_realtime(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    """{schema, table}."""
    body = await json_object(request)
    schema = _identifier(body.get("schema", "public"), "schema")
    table = _identifier(body.get("table"), "table")
    return await _realtime(request, ctx, admin, schema, table, True)


async def disable_realtime(
    request: web.Request, ctx: AdminContext, admin: DashboardAdmin
) -> web.StreamResponse:
    schema, table = _table(request)
    return await _realtime(request, ctx, admin, schema, table, False)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict | str | int | float | bool) or value is None:
        return value
    return str(value)


async def execute_sql(request: web.Request, ctx: AdminContext, admin: DashboardAdmin) -> web.StreamResponse:
    """{query, read_only?}: one statement as the database owner; at most 1,000 rows come back."""
    body = await json_object(request)
    query = text_field(body, "query", max_length=1_000_000)
    assert query is not None
    read_only = body.get("read_only") is True
    details = {
        "sql": redact_literals(query)[:4000],
        "sha256": hashlib.sha256(query.encode()).hexdigest(),
        "read_only": read_only,
    }
    started = time.perf_counter()
    try:
        async with ctx.as_owner(read_only=read_only) as connection:
            statement = await connection.prepare(query)
            rows = await statement.fetch()
            status = statement.get_statusmsg()
            columns = [a.name for a in statement.get_attributes()]
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            await connection.execute("reset role")
            await log_event(
                connection,
                request,
                admin,
                "sql_executed",
                {**details, "status": status, "duration_ms": elapsed},
                resource_type="sql",
            )
    except asyncpg.PostgresError as error:
        async with ctx.as_service(request) as tx:
            await log_event(
                tx,
                request,
                admin,
                "sql_executed",
                {**details, "error": error.sqlstate},
                resource_type="sql",
                success=False,
            )
        raise database_error(error) from error
    return json_response(
        {
            "columns": columns,
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in rows[:MAX_ROWS]],
            "row_count": len(rows),
            "truncated": len(rows) > MAX_ROWS,
            "status": status,
            "duration_ms": elapsed,
        }
    )


def add_routes(app: web.Application) -> None:
    table = "{schema}/{table}"
    route(app, "GET", "/tables", list_tables)
    route(app, "GET", f"/tables/{table}", get_table)
    route(app, "POST", f"/tables/{table}/rls", set_rls)
    route(app, "POST", f"/tables/{table}/policies", create_policy)
    route(app, "DELETE", f"/tables/{table}/policies/{{name}}", drop_policy)
    route(app, "GET", "/realtime/tables", realtime_tables)
    route(app, "POST", "/realtime/tables", enable_realtime)
    route(app, "DELETE", f"/realtime/tables/{table}", disable_realtime)
    route(app, "POST", "/sql/execute", execute_sql)
