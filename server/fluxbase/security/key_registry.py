"""Dashboard-issued API keys (`fbk_...`): which are live, what each may do, how fast it may go.

Each process keeps the live keys (by sha256 digest, never the key) in
memory, so verifying one costs a hash and a dict lookup.  The table is
reloaded when the database sends NOTIFY fluxbase_api_keys (every create,
revoke, regenerate, update, delete does) and every
`dashboard.api_key_refresh_interval` in case a notification was missed:
a revoked key stops working on every replica within that interval, and
usually at once.  Last-used times are written back in batches, never per
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase.background import stop_tasks
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext
from fluxbase.errors import HttpError

log = logging.getLogger("fluxbase.api_keys")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

KEY_PREFIX: Final = "fbk_"
CHANNEL: Final = "fluxbase_api_keys"
SERVICE: Final = RequestContext("service_role", {"role": "service_role"})
# What a key may be allowed; `admin` opens the admin APIs (never key management).
SCOPES: Final = ("rest:read", "rest:write", "storage", "realtime", "admin")
ADMIN_SCOPE: Final = "admin"
# GoTrue's admin endpoints take any service_role credential; a service_role key needs `admin` too.
# (The auth handlers do not check scopes themselves yet, so the check sits here, before them.)
AUTH_ADMIN_PREFIXES: Final = ("/auth/v1/admin", "/api/v1/auth/admin")


def key_digest(key: str) -> str:
    """The sha256 hex the database stores for a key (auth.token_hash)."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_dashboard_key(token: str | None) -> bool:
    return token is not None and token.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class ApiKeyGrant:
    """What a live key allows: its database role, scopes and rate limit."""

    id: str
    role: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    expires_at: float | None
    created_by: str | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class UnknownApiKey(Exception):
    """An fbk_ key that is not live here: never issued, revoked, regenerated or expired."""


class ApiKeyRegistry:
    """The live keys of this process, the per-key rate limiters and pending last-used times."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_digest: dict[str, ApiKeyGrant] = {}
        self._used: dict[str, float] = {}
        self._live_ids: set[str] = set()
        self.loaded_at: float | None = None

    def replace(self, grants: dict[str, ApiKeyGrant]) -> None:
        self._by_digest = grants
        self._live_ids = {grant.id for grant in grants.values()}
        self.loaded_at = self._clock()

    def is_live(self, key_id: str) -> bool:
        """False once a key is revoked, regenerated away, deleted or expired (as of the last reload)."""
        return key_id in self._live_ids

    def lookup(self, key: str) -> ApiKeyGrant:
        grant = self._by_digest.get(key_digest(key))
        if grant is None or grant.expired(self._clock()):
            raise UnknownApiKey
        self._used[grant.id] = self._clock()
        return grant

    def take_used(self) -> dict[str, float]:
        used, self._used = self._used, {}
        return used


def _epoch(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


class _Queries(Protocol):
    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...


async def _load(queries: _Queries, registry: ApiKeyRegistry) -> None:
    used = registry.take_used()
    if used:
        await queries.execute(
            "select dashboard.touch_api_keys($1::uuid[], $2::timestamptz[])",
            list(used),
            [dt.datetime.fromtimestamp(at, dt.UTC) for at in used.values()],
        )
    rows = await queries.fetch(
        "select id::text, key_hash, role, scopes, rate_limit_per_minute, expires_at, created_by::text"
        " from dashboard.active_api_keys()"
    )
    registry.replace(
        {
            row["key_hash"]: ApiKeyGrant(
                row["id"],
                row["role"],
                frozenset(row["scopes"]),
                row["rate_limit_per_minute"],
                _epoch(row["expires_at"]),
                row["created_by"],
            )
            for row in rows
        }
    )


async def load_keys(database: Database, registry: ApiKeyRegistry) -> None:
    """Reloads the live keys through the pool and writes back the last-used times gathered since."""
    async with database.transaction(SERVICE) as tx:
        await _load(tx, registry)


class ApiKeyWatcher:
    """Keeps a registry current over a connection of its own: LISTEN, and a reload every interval regardless.

    Its own connection (as service_role) rather than the pool: the reloads are the
    server's housekeeping, they must not wait behind requests nor count as request queries.
    """

    def __init__(self, dsn: str, registry: ApiKeyRegistry, interval: float) -> None:
        self._dsn = dsn
        self._registry = registry
        self._interval = interval
        self._wake = asyncio.Event()
        self._connection: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._reload()
        except Exception as exc:
            # Serve anyway: every fbk_ key is refused until a reload succeeds.
            log.warning("API keys not loaded", extra={"reason": str(exc)})
            await self._drop()
        self._task = asyncio.create_task(self._run())

    async def _reload(self) -> None:
        if self._connection is None or self._connection.is_closed():
            connection = await asyncpg.connect(
                self._dsn, timeout=10, server_settings={"application_name": "fluxbase-api-keys"}
            )
            await connection.execute("set role service_role; set statement_timeout = '10s'")
            await connection.add_listener(CHANNEL, lambda *_args: self._wake.set())
            self._connection = connection
        async with self._connection.transaction():
            await _load(self._connection, self._registry)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self._reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Kept going: a database blip must not end revocation for good.
                log.warning("API key reload failed", extra={"reason": str(exc)})
                await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def stop(self) -> None:
        await stop_tasks([self._task])
        # The last uses since the previous reload still count.
        with contextlib.suppress(Exception):
            if self._connection is not None and not self._connection.is_closed():
                async with self._connection.transaction():
                    await _load(self._connection, self._registry)
                await asyncio.wait_for(self._connection.close(), 2)


def presented_key(request: web.Request) -> str | None:
    """The fbk_ key a request carries (apikey header, Bearer, or a WebSocket's ?apikey=), if any."""
    candidates = (
        request.headers.get("apikey"),
        request.headers.get("Authorization", "").partition(" ")[2].strip() or None,
        request.query.get("apikey"),
    )
    return next((c for c in candidates if is_dashboard_key(c)), None)


class AdminScopeCheck:
    """GoTrue's admin routes need a key's `admin` scope (the auth handlers check no scopes).

    A key's own rate limit (its rate_limit_per_minute) is spent in the rate limit's api_key
    tier, in the shared store. An unknown key passes here; the service's authentication
    refuses it in its own words.
    """

    def __init__(self, registry: ApiKeyRegistry) -> None:
        self._registry = registry

    def check(self, request: web.Request) -> None:
        """Raises 403 when a known key without the admin scope calls an admin route."""
        if not request.path.startswith(AUTH_ADMIN_PREFIXES):
            return  # only GoTrue's admin routes ask for the scope: other requests pay nothing here
        key = presented_key(request)
        if key is None:
            return
        try:
            grant = self._registry.lookup(key)
        except UnknownApiKey:
            return
        if ADMIN_SCOPE not in grant.scopes:
            raise HttpError(
                403, "insufficient_scope", f"this API key does not have the {ADMIN_SCOPE!r} scope"
            )


def api_key_admin_scope_middleware(registry: ApiKeyRegistry) -> Middleware:
    """The admin-scope step alone (request_path.py runs it inside the one composed middleware)."""
    scope = AdminScopeCheck(registry)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope.check(request)
        return await handler(request)

    return middleware
