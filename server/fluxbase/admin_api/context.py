"""The admin API's shared state and router: every route is added through `route`, which authenticates first.

Deny by default: there is no way to add an /api/v1/admin route that skips
the check.  No credential or an app credential: 401; a 2FA challenge: 403;
a `dashboard_viewer` may only read; an API key with the `admin` scope may
act for the administrator who created it, except on key management.
Schema changes and the SQL runner run as the database owner, on a small
pool of its own: the API roles cannot create policies or run DDL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from fluxbase.admin_api.errors import database_error
from fluxbase.config import Config
from fluxbase.db.errors import CONNECTION_ERRORS, ConnectionLost, DatabaseUnreachable, PoolTimeout
from fluxbase.db.fair_pool import create_fair_pool
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.errors import HttpError
from fluxbase.observability.logging import audit
from fluxbase.request_json import MAX_BODY, client_inet
from fluxbase.security import dashboard_auth as da
from fluxbase.security.request_limits import caps_body

log = logging.getLogger("fluxbase.admin_api")
PREFIX = "/api/v1/admin"
SERVICE = RequestContext("service_role", {"role": "service_role"})


@dataclass
class AdminContext:
    config: Config
    secret: str
    database: Database
    owner_dsn: str
    _owner_pool: asyncpg.Pool | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending_mail: set[asyncio.Task[None]] = field(default_factory=set)

    async def owner_pool(self) -> asyncpg.Pool:
        # Opened on first use: most processes never serve an admin's DDL.
        async with self._lock:
            if self._owner_pool is None:
                timeout = str(int(self.config.database.statement_timeout * 1000))
                self._owner_pool = await create_fair_pool(
                    self.owner_dsn,
                    min_size=0,
                    max_size=2,
                    timeout=self.config.database.acquire_timeout,  # to open a connection
                    server_settings={"application_name": "fluxbase-admin", "statement_timeout": timeout},
                )
            return self._owner_pool

    @asynccontextmanager
    async def as_owner(self, *, read_only: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as the database owner (DDL, policies, the SQL runner)."""
        try:
            pool = await self.owner_pool()
            connection = await pool.acquire(timeout=self.config.database.acquire_timeout)
        except TimeoutError as exc:
            raise PoolTimeout("no owner connection became free") from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnreachable(str(exc)) from exc
        try:
            async with connection.transaction(readonly=read_only):
                yield connection
        except CONNECTION_ERRORS as exc:
            raise ConnectionLost(str(exc)) from exc
        finally:
            await pool.release(connection)

    @asynccontextmanager
    async def as_service(
        self, request: web.Request, *, read_only: bool = False
    ) -> AsyncIterator[RoleSwitchedTransaction]:
        context = RequestContext("service_role", {"role": "service_role"}, request.method, request.path)
        async with self.database.transaction(context, read_only=read_only) as tx:
            yield tx

    async def close(self) -> None:
        if self.pending_mail:
            await asyncio.wait(self.pending_mail, timeout=10)
        if self._owner_pool is not None:
            await self._owner_pool.close()


ADMIN_API = web.AppKey("admin_api", AdminContext)
ADMIN = web.RequestKey("dashboard_admin", da.DashboardAdmin)
AdminHandler = Callable[[web.Request, AdminContext, da.DashboardAdmin], Awaitable[web.StreamResponse]]


def route(
    app: web.Application,
    method: str,
    path: str,
    handler: AdminHandler,
    *,
    api_keys: bool = True,
    prefix: str = PREFIX,
) -> None:
    """Registers an admin route behind the administrator check (api_keys: admin-scoped keys allowed)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        ctx = request.app[ADMIN_API]
        try:
            admin = await da.authenticate_admin(request, ctx.database, ctx.secret, allow_api_key=api_keys)
        except da.DashboardAuthError as error:
            audit(
                "admin.denied", success=False, ip=client_inet(request), path=request.path, reason=error.code
            )
            raise HttpError(error.status, error.code, error.message) from error
        if admin.read_only and method not in da.SAFE_METHODS:
            raise HttpError(403, "read_only_admin", "This administrator may only read")
        request[ADMIN] = admin
        try:
            return await handler(request, ctx, admin)
        except asyncpg.PostgresError as error:
            raise database_error(error) from error

    # Admin bodies are JSON objects (request_json): refused past its limit while reading.
    app.router.add_route(method, prefix + path, caps_body(MAX_BODY)(guarded))


async def log_event(
    target: RoleSwitchedTransaction | asyncpg.Connection,
    request: web.Request,
    admin: da.DashboardAdmin,
    action: str,
    details: dict[str, Any],
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    success: bool = True,
) -> None:
    """An activity row and its audit.events twin (in `target`'s transaction) and the audit log line."""
    key_id = admin.api_key.id if admin.api_key is not None else None
    await target.execute(
        "select dashboard.log_event($1, $2::uuid, $3::inet, $4, $5::jsonb, $6, $7, $8::uuid)",
        action,
        admin.user_id,
        client_inet(request),
        success,
        orjson.dumps(details).decode(),
        resource_type,
        resource_id,
        key_id,
    )
    audit(
        f"admin.{action}",
        success=success,
        user_id=admin.user_id,
        api_key_id=key_id,
        ip=client_inet(request),
        resource_type=resource_type,
        resource_id=resource_id,
    )
