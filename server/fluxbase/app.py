"""Builds the aiohttp application: the request path, routes, start-up and shutdown.

Request path (request_path.py, one middleware): request id + access log ->
metrics -> errors -> CORS -> client IP -> API-key admin scope -> rate limit (per
user, API key or IP) -> CSRF -> request limits (body size and JSON depth, URL
length) -> handler (security headers are added to every response as it is
prepared).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from fluxbase import ops
from fluxbase.admin_api import routes as admin_routes
from fluxbase.auth import context as auth_context
from fluxbase.auth import mailbox
from fluxbase.auth import routes as auth_routes
from fluxbase.config import Config
from fluxbase.dashboard import handlers as dashboard_handlers
from fluxbase.dashboard import setup as dashboard_setup
from fluxbase.dashboard_ui import add_routes as add_dashboard_ui
from fluxbase.db.audit_retention import AuditRetention
from fluxbase.db.migrate import read_plan
from fluxbase.db.pool import Database, ReadinessProbe, authenticator_dsn
from fluxbase.observability.history import MetricsHistory
from fluxbase.realtime import handlers as realtime_handlers
from fluxbase.request_path import RequestPath
from fluxbase.rest import handlers as rest_handlers
from fluxbase.rest.schema_cache import SchemaCacheHolder
from fluxbase.security.authenticate import AUTHENTICATOR, Authenticator
from fluxbase.security.headers import install_security_headers
from fluxbase.security.key_registry import ApiKeyRegistry, ApiKeyWatcher
from fluxbase.security.ratelimit_store import LimitStore, make_store
from fluxbase.security.signing_keys import load_signing_keys
from fluxbase.storage import handlers as storage_handlers

log = logging.getLogger("fluxbase.app")

DATABASE = web.AppKey("database", Database)


@dataclass(frozen=True)
class Runtime:
    """What a worker needs besides the configuration: where and as whom to connect."""

    database_url: str  # the owner's URL (DATABASE_URL or the embedded cluster's)
    authenticator_password: str | None


def build_app(config: Config, runtime: Runtime) -> web.Application:
    api_keys = ApiKeyRegistry()
    limits = config.security.rate_limit
    store: LimitStore | None = None
    if limits.enabled:
        store = make_store(limits.backend, limits.redis_url, limits.redis_timeout)

    if config.auth.jwt_secret is None:
        raise ValueError("build_app needs a JWT secret: call ensure_jwt_secret() first")
    # One middleware runs every step (request_path.py): a frame per request, not one per step.
    request_path = RequestPath(config, store, api_keys)
    app = web.Application(middlewares=[request_path.middleware], client_max_size=config.server.body_limit)
    keys = load_signing_keys(config.auth.jwt_algorithm, config.auth.jwt_private_key, config.auth.jwt_key_id)
    app[AUTHENTICATOR] = Authenticator(config.auth.jwt_secret, signing_keys=keys, api_keys=api_keys)
    install_security_headers(app, hsts=config.server.base_url.startswith("https://"))
    if store is not None:
        app[ops.LIMIT_STORE] = store
    ops.add_routes(app)
    rest_handlers.add_routes(app)
    auth_routes.add_routes(app)
    if mailbox.active(config):
        mailbox.add_routes(app)
    dashboard_handlers.add_routes(app)
    dashboard_setup.add_routes(app)
    admin_routes.add_routes(app)
    add_dashboard_ui(app)  # after dashboard_handlers: its catch-all must not shadow /dashboard/auth
    if config.realtime.enabled:
        realtime_handlers.add_routes(app)
    storage_handlers.add_routes(app)
    history = app[admin_routes.HISTORY] = MetricsHistory()

    dsn = authenticator_dsn(runtime.database_url, runtime.authenticator_password)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[ops.READINESS] = ReadinessProbe(dsn, [c.change_id for c in read_plan().changes])
        app[DATABASE] = await Database.connect(dsn, config.database)
        audit_retention = AuditRetention(
            app[DATABASE].pool, config.audit.retention, config.audit.prune_interval
        )
        audit_retention.start()
        schema_cache = SchemaCacheHolder(dsn, config.api.schemas)
        await schema_cache.start()
        app[rest_handlers.REST] = rest_handlers.RestContext(
            config.api, app[DATABASE], schema_cache, base_url=config.server.base_url
        )
        auth = auth_context.make_context(
            config.auth, config.server.base_url, app[DATABASE], app[AUTHENTICATOR]
        )
        if store is not None:
            auth = _share_auth_limits(auth, store, config)
        if mailbox.active(config):
            app[mailbox.MAILBOX] = mailbox.LocalMailbox(app[DATABASE])
            auth.mailer.use_local_outbox(app[mailbox.MAILBOX])
            log.info(
                "no SMTP server: auth mail goes to the local mailbox",
                extra={"url": config.server.base_url.rstrip("/") + mailbox.PATH},
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
        await audit_retention.stop()
        await schema_cache.close()
        with contextlib.suppress(Exception):
            await app[ops.READINESS].close()
        await app[DATABASE].close()
        if store is not None:
            await store.close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(storage_handlers.storage_context(config, DATABASE))
    if config.realtime.enabled:
        # After `resources`: the listener reads through the pool, and stops before it closes.
        app.cleanup_ctx.append(realtime_handlers.realtime_context(config.realtime, dsn, DATABASE))
    return app


def _share_auth_limits(
    auth: auth_context.AuthContext, store: LimitStore, config: Config
) -> auth_context.AuthContext:
    """The sign-in, sign-up, recover and OTP limits counted in the same store as the request tiers."""
    limits = config.auth.rate_limit
    return dataclasses.replace(
        auth,
        sign_in_by_ip=store.sync_limiter("auth_sign_in_ip", limits.sign_in_attempts, limits.sign_in_window),
        sign_in_by_account=store.sync_limiter(
            "auth_sign_in_account", limits.sign_in_attempts, limits.sign_in_window
        ),
        mail_by_ip=store.sync_limiter("auth_mail_ip", limits.emails_per_hour, 3600.0),
        mail_by_address=store.sync_limiter("auth_mail_address", limits.emails_per_hour, 3600.0),
    )
