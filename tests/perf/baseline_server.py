"""The benchmark's baseline: the least a hand-written aiohttp + asyncpg server does for the same requests.

Per request it verifies the JWT with pyjwt, opens a transaction on a pooled
connection (logged in as `authenticator`), runs Fluxbase's own role-switch
statement, runs one hand-written SQL statement that builds the JSON body,
commits and returns the bytes. No parsing beyond `id=eq.N`, no schema cache,
no middlewares, no logs: whatever Fluxbase spends above this is its overhead.

    python baseline_server.py --port P --dsn AUTHENTICATOR_DSN --jwt-secret S [--workers N] [--pool-size K]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import asyncpg
import jwt
import orjson
import uvloop
from aiohttp import web

# The very statement Fluxbase runs (role, claims, method, path, headers, search_path, request
# id): the comparison is only fair if the baseline pays for the same settings.
from fluxbase.db.transaction import SET_REQUEST_CONTEXT

SEARCH_PATH = '"public"'
# The same JSON PostgreSQL builds for Fluxbase's statements, column for column.
READ_ONE = (
    "select coalesce(json_agg(t), '[]')::text from "
    "(select id, user_id, project_id, title, done from public.todos where id = $1) as t"
)
READ_WITH_PROJECT = (
    "select coalesce(json_agg(t), '[]')::text from "
    "(select t.id, t.title, t.done, "
    "(select row_to_json(p) from (select id, name from public.projects where id = t.project_id) as p) "
    "as projects from public.todos as t where t.id = $1) as t"
)
INSERT_ONE = (
    "with inserted as (insert into public.todos (project_id, title) "
    "select project_id, title from json_populate_record(null::public.todos, $1::json) returning *) "
    "select coalesce(json_agg(inserted), '[]')::text from inserted"
)
CALL_TODO_TITLE = "select to_json(public.todo_title(($1::json->>'todo_id')::bigint))::text"
# GET /auth/v1/user: the account as GoTrue shows it, read by the SECURITY DEFINER function as
# service_role, the way Fluxbase's auth service does.
USER_JSON = "select auth.user_json($1::uuid)::text"
POOL = web.AppKey("pool", asyncpg.Pool)
SECRET = web.AppKey("secret", str)


def caller_claims(request: web.Request) -> dict[str, Any]:
    """The verified claims of the Bearer token; a hand-written server needs at least this."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise web.HTTPUnauthorized()
    try:
        claims: dict[str, Any] = jwt.decode(
            token, request.app[SECRET], algorithms=["HS256"], audience="authenticated"
        )
    except jwt.InvalidTokenError as error:
        raise web.HTTPUnauthorized() from error
    if claims.get("role") != "authenticated":
        raise web.HTTPUnauthorized()
    return claims


async def run(request: web.Request, sql: str, argument: object, *, read_only: bool) -> str:
    claims = caller_claims(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return await in_transaction(
        request,
        sql,
        argument,
        read_only,
        ("authenticated", orjson.dumps(claims).decode(), headers, SEARCH_PATH),
    )


async def in_transaction(
    request: web.Request,
    sql: str,
    argument: object,
    read_only: bool,
    who: tuple[str, str, object, str | None],
) -> str:
    role, claims, headers, search_path = who
    async with request.app[POOL].acquire() as connection, connection.transaction(readonly=read_only):
        await connection.fetchrow(
            SET_REQUEST_CONTEXT,
            role,
            claims,
            request.method,
            request.path,
            orjson.dumps(headers).decode(),
            search_path,
            request.headers.get("X-Request-ID", ""),
        )
        body: str = await connection.fetchval(sql, argument)
    return body


def todo_id(request: web.Request) -> int:
    operator, _, value = request.query.get("id", "").partition(".")
    if operator != "eq" or not value.isdigit():
        raise web.HTTPBadRequest()
    return int(value)


async def read(request: web.Request) -> web.Response:
    sql = READ_WITH_PROJECT if "select" in request.query else READ_ONE
    body = await run(request, sql, todo_id(request), read_only=True)
    return web.Response(body=body.encode(), content_type="application/json")


async def insert(request: web.Request) -> web.Response:
    body = await run(request, INSERT_ONE, (await request.read()).decode(), read_only=False)
    return web.Response(status=201, body=body.encode(), content_type="application/json")


async def call_todo_title(request: web.Request) -> web.Response:
    body = await run(request, CALL_TODO_TITLE, (await request.read()).decode(), read_only=True)
    return web.Response(body=body.encode(), content_type="application/json")


async def auth_user(request: web.Request) -> web.Response:
    # As Fluxbase's auth: the user's token verified, then service_role reads the account.
    claims = caller_claims(request)
    body = await in_transaction(
        request, USER_JSON, claims["sub"], True, ("service_role", '{"role":"service_role"}', {}, None)
    )
    return web.Response(body=body.encode(), content_type="application/json")


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(options: argparse.Namespace) -> None:
    app = web.Application()
    app[SECRET] = options.jwt_secret
    app.router.add_get("/health", health)
    app.router.add_get("/rest/v1/todos", read)
    app.router.add_post("/rest/v1/todos", insert)
    app.router.add_post("/rest/v1/rpc/todo_title", call_todo_title)
    app.router.add_get("/auth/v1/user", auth_user)

    async def pool(app: web.Application) -> Any:
        app[POOL] = await asyncpg.create_pool(
            options.dsn, min_size=options.pool_size, max_size=options.pool_size
        )
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", options.port, reuse_port=True, backlog=1024).start()
    print(f"listening {os.getpid()}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="as authenticator")
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=10)
    options = parser.parse_args()
    if options.workers == 1:
        uvloop.run(serve(options))
        return
    # Forked workers that each bind the port with SO_REUSEPORT, as `fluxbase serve --workers N`.
    children = []
    for _ in range(options.workers):
        pid = os.fork()
        if pid == 0:
            uvloop.run(serve(options))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(child, signal.SIGTERM) for child in children])
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
