"""Builds the aiohttp application: middleware order, routes, start-up and shutdown.

Request path: request id + access log -> metrics -> errors -> CORS -> client IP
-> per-API-key rate limit -> rate limit -> CSRF -> handler (security headers are added to every response
as it is prepared).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase import ops
from fluxbase.admin_api import routes as admin_routes
from fluxbase.auth import context as auth_context
from fluxbase.auth import routes as auth_routes
from fluxbase.config import Config
from fluxbase.dashboard import handlers as dashboard_handlers
from fluxbase.dashboard import setup as dashboard_setup
from fluxbase.dashboard_ui import add_routes as add_dashboard_ui
from fluxbase.db.migrate import read_plan
from fluxbase.db.pool import Database, ReadinessProbe, authenticator_dsn
from fluxbase.errors import error_middleware
from fluxbase.observability.history import MetricsHistory
from fluxbase.observability.http import metrics_middleware, request_context_middleware
from fluxbase.realtime import handlers as realtime_handlers
from fluxbase.rest import handlers as rest_handlers
from fluxbase.rest.schema_cache import SchemaCacheHolder
from fluxbase.security.authenticate import AUTHENTICATOR, Authenticator
from fluxbase.security.client_ip import client_ip_middleware, parse_networks
from fluxbase.security.cors import cors_middleware
from fluxbase.security.csrf import csrf_middleware
from fluxbase.security.headers import install_security_headers
from fluxbase.security.key_registry import ApiKeyRegistry, ApiKeyWatcher, api_key_rate_limit_middleware
from fluxbase.security.ratelimit import RateLimiter, ip_rate_limit_middleware
from fluxbase.security.signing_keys import load_signing_keys

log = logging.getLogger("fluxbase.app")

DATABASE = web.AppKey("database", Database)


@dataclass(frozen=True)
class Runtime:
    """What a worker needs besides the configuration: where and as whom to connect."""

    database_url: str  # the owner's URL (DATABASE_URL or the embedded cluster's)
    authenticator_password: str | None


def build_app(config: Config, runtime: Runtime) -> web.Application:
    api_keys = ApiKeyRegistry()
    middlewares: list[Middleware] = [
        request_context_middleware,
        metrics_middleware,
        error_middleware,
        cors_middleware(config.security.cors.allowed_origins),
        client_ip_middleware(parse_networks(config.security.trusted_proxies)),
        api_key_rate_limit_middleware(api_keys),
    ]
    if config.security.rate_limit.enabled:
        limiter = RateLimiter(config.security.rate_limit.requests_per_minute, 60.0)
        middlewares.append(ip_rate_limit_middleware(limiter))
    if config.security.csrf.enabled:
        middlewares.append(csrf_middleware(config.security.csrf.cookie_secure))

    if config.auth.jwt_secret is None:
        raise ValueError("build_app needs a JWT secret: call ensure_jwt_secret() first")
    app = web.Application(middlewares=middlewares, client_max_size=config.server.body_limit)
    keys = load_signing_keys(config.auth.jwt_algorithm, config.auth.jwt_private_key, config.auth.jwt_key_id)
    app[AUTHENTICATOR] = Authenticator(config.auth.jwt_secret, signing_keys=keys, api_keys=api_keys)
    install_security_headers(app, hsts=config.server.base_url.startswith("https://"))
    ops.add_routes(app)
    rest_handlers.add_routes(app)
    auth_routes.add_routes(app)
    dashboard_handlers.add_routes(app)
    dashboard_setup.add_routes(app)
    admin_routes.add_routes(app)
    add_dashboard_ui(app)  # after dashboard_handlers: its catch-all must not shadow /dashboard/auth
    if config.realtime.enabled:
        realtime_handlers.add_routes(app)
    history = app[admin_routes.HISTORY] = MetricsHistory()

    dsn = authenticator_dsn(runtime.database_url, runtime.authenticator_password)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[ops.READINESS] = ReadinessProbe(dsn, [c.name for c in read_plan()])
        app[DATABASE] = await Database.connect(dsn, config.database)
        schema_cache = SchemaCacheHolder(dsn, config.api.schemas)
        await schema_cache.start()
        app[rest_handlers.REST] = rest_handlers.RestContext(
            config.api, app[DATABASE], schema_cache, base_url=config.server.base_url
        )
        auth = auth_context.make_context(
            config.auth, config.server.base_url, app[DATABASE], app[AUTHENTICATOR]
        )
        session_watcher = await auth_context.start(app, auth)
        secret = config.auth.jwt_secret or ""
        dashboard = app[dashboard_handlers.DASHBOARD] = dashboard_handlers.make_context(
            config.dashboard, config.auth.smtp, config.server.base_url, secret, app[DATABASE]
        )
        admin = app[admin_routes.ADMIN_API] = admin_routes.make_context(
            config, app[DATABASE], runtime.database_url
        )
        key_watcher = ApiKeyWatcher(dsn, api_keys, config.dashboard.api_key_refresh_interval)
        await key_watcher.start()
        history.start()
        yield
        await history.stop()
        await key_watcher.stop()
        await admin.close()
        await dashboard_handlers.stop(dashboard)
        await auth_context.stop(auth, session_watcher)
        await schema_cache.close()
        with contextlib.suppress(Exception):
            await app[ops.READINESS].close()
        await app[DATABASE].close()

    app.cleanup_ctx.append(resources)
    if config.realtime.enabled:
        # After `resources`: the listener reads through the pool, and stops before it closes.
        app.cleanup_ctx.append(realtime_handlers.realtime_context(config.realtime, dsn, DATABASE))
    return app
