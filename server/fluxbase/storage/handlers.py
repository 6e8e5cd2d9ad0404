"""Storage's HTTP surface: the same handlers at /storage/v1 (what supabase-js calls) and
/api/v1/storage (the runbook's mount), and the storage context's start-up and shutdown."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from fluxbase import __version__
from fluxbase.background import stop_tasks
from fluxbase.config import Config
from fluxbase.db.pool import Database
from fluxbase.errors import json_response
from fluxbase.storage import buckets, errors, objects, tus
from fluxbase.storage.backends import make_backend
from fluxbase.storage.errors import guarded
from fluxbase.storage.reaper import run_reaper
from fluxbase.storage.signing import UrlSigner
from fluxbase.storage.store import STORAGE, StorageContext

PREFIXES = ("/storage/v1", "/api/v1/storage")
_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.I)


async def version(request: web.Request) -> web.Response:
    return web.Response(text=__version__, content_type="text/plain")


async def status(request: web.Request) -> web.Response:
    return json_response({"healthy": True})


async def not_found(request: web.Request) -> web.Response:
    # yarl folds `..` segments out of a path before routing, so a traversal attempt lands here
    # rather than on an object route: say what it was.
    if _DOT_SEGMENT.search(request.raw_path.split("?", 1)[0]):
        raise errors.invalid_key(request.raw_path, "'.' and '..' segments are not allowed")
    message = "Route not found"
    if request.path.startswith("/api/v1/storage/"):
        # The runbook's Go SDK called /buckets, /{bucket}/{path}, /{bucket}/sign/...: name the new paths.
        message += (
            "; /api/v1/storage serves Supabase Storage's API: /bucket, /object/{bucket}/{path},"
            " /object/list/{bucket}, /object/sign/{bucket}/{path}, /upload/resumable"
        )
    raise errors.StorageError(404, "not_found", message, http_status=404)


def add_routes(app: web.Application) -> None:
    wrap: Callable[[Any], Any] = guarded
    for prefix in PREFIXES:
        app.router.add_get(f"{prefix}/version", wrap(version))
        app.router.add_get(f"{prefix}/status", wrap(status))
        app.router.add_get(f"{prefix}/health", wrap(status))
        buckets.add_routes(app.router, prefix, wrap)
        tus.add_routes(app.router, prefix, wrap)
        objects.add_routes(app.router, prefix, wrap)
        app.router.add_route("*", prefix + "/{tail:[\\s\\S]*}", wrap(not_found))


def storage_root(config: Config) -> Path:
    return Path(config.storage.local_path) if config.storage.local_path else config.data_dir / "storage"


def storage_context(
    config: Config, database_key: web.AppKey[Database]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: the backend and the reaper live as long as the app."""

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        if config.auth.jwt_secret is None:
            raise ValueError("storage needs the JWT secret to sign URLs")
        root = storage_root(config)
        spool = root / "uploads"
        backend = make_backend(config.storage, root)
        await backend.start()
        app[STORAGE] = StorageContext(
            config.storage, app[database_key], backend, UrlSigner(config.auth.jwt_secret), spool
        )
        reaper = asyncio.create_task(run_reaper(app[database_key], backend, spool))
        yield
        await stop_tasks([reaper])
        await backend.close()

    return lifespan
