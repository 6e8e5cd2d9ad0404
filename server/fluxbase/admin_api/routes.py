"""Every /api/v1/admin route, and the context they share: what app.py installs."""

from __future__ import annotations

from aiohttp import web

from fluxbase.admin_api import database, keys, settings, users
from fluxbase.admin_api.context import ADMIN_API, PREFIX, AdminContext
from fluxbase.config import Config
from fluxbase.db.pool import Database


def add_routes(app: web.Application) -> None:
    users.add_routes(app)
    keys.add_routes(app)
    database.add_routes(app)
    settings.add_routes(app)


def make_context(config: Config, database_: Database, owner_dsn: str) -> AdminContext:
    assert config.auth.jwt_secret is not None
    return AdminContext(config, config.auth.jwt_secret, database_, owner_dsn)


__all__ = ["ADMIN_API", "PREFIX", "AdminContext", "add_routes", "make_context"]
