"""The storage core that every route shares: who is asking, bucket settings, and writes and reads
of an object where its row and its bytes go together.

Every object operation is a role-switched transaction (db.transaction) as
the caller, so PostgreSQL's policies on storage.objects decide: SELECT to
read, list and sign; INSERT to upload; UPDATE to overwrite and move; DELETE
to remove.  A write first probes its statement in a transaction that is
rolled back, so no byte is accepted that RLS would refuse; then the bytes
go to a fresh blob (temp file, fsync, rename, or an S3 upload); then the
row is written in a second transaction, and the blob is removed again if
that fails.  The object therefore appears with its row or not at all; a
blob left behind by a crash between the two has no row and is removed by
the reaper.  Bucket settings (limits, public flag) are read as service_role,
as Supabase reads them, so that uploaders need no SELECT on buckets.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from fluxbase.config import StorageConfig
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext, RoleSwitchedTransaction
from fluxbase.security.authenticate import AuthenticationError, Caller, authenticate
from fluxbase.security.scopes import STORAGE as STORAGE_SCOPE
from fluxbase.security.scopes import ScopeError, require_scope
from fluxbase.storage import errors
from fluxbase.storage.backends.base import Backend, BackendUnavailable, BlobNotFound, new_blob_name
from fluxbase.storage.bodies import (
    ACTIVE_TYPES,
    SANDBOX_CSP,
    base_type,
    content_disposition,
    parse_range,
)
from fluxbase.storage.signing import UrlSigner

log = logging.getLogger("fluxbase.storage")

SERVICE = Caller("service_role", {"role": "service_role"})


@dataclass
class StorageContext:
    config: StorageConfig
    database: Database
    backend: Backend
    signer: UrlSigner
    spool: Path  # resumable uploads' bytes so far, one file per upload


STORAGE = web.AppKey("storage", StorageContext)


@dataclass(frozen=True)
class Bucket:
    id: str
    public: bool
    file_size_limit: int | None
    allowed_mime_types: list[str] | None


@dataclass(frozen=True)
class NewObject:
    """What a write stores besides the bytes."""

    bucket: str
    key: str
    content_type: str
    cache_control: str
    user_metadata: dict[str, Any] | None
    owner: str | None  # the writer's `sub`


def caller_of(request: web.Request) -> Caller:
    """The verified caller; an API key must carry the `storage` scope (403 otherwise)."""
    try:
        caller = authenticate(request)
    except AuthenticationError as error:
        raise errors.invalid_jwt(error.reason) from error
    try:
        require_scope(caller, STORAGE_SCOPE)
    except ScopeError as error:
        raise errors.access_denied(error.reason) from error
    return caller


def context(request: web.Request, caller: Caller, operation: str) -> RequestContext:
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower() not in ("authorization", "apikey")
    }
    headers["x-storage-operation"] = operation
    return RequestContext(caller.role, caller.claims, request.method, request.path, headers)


@contextlib.asynccontextmanager
async def transaction(
    request: web.Request, caller: Caller, operation: str, *, read_only: bool = False
) -> AsyncIterator[RoleSwitchedTransaction]:
    ctx = request.app[STORAGE]
    async with ctx.database.transaction(context(request, caller, operation), read_only=read_only) as tx:
        yield tx


async def bucket_settings(request: web.Request, bucket_id: str) -> Bucket:
    async with transaction(request, SERVICE, "bucket.settings", read_only=True) as tx:
        row = await tx.fetchrow(
            "select id, public, file_size_limit, allowed_mime_types from storage.buckets where id = $1",
            bucket_id,
        )
    if row is None:
        raise errors.no_such_bucket()
    return Bucket(row["id"], row["public"], row["file_size_limit"], row["allowed_mime_types"])


def size_limit(ctx: StorageContext, bucket: Bucket) -> int:
    limit = ctx.config.max_file_size
    if bucket.file_size_limit is not None:
        limit = min(limit, bucket.file_size_limit)
    return limit


def _owner_uuid(owner: str | None) -> uuid.UUID | None:
    if owner is None:
        return None
    try:
        return uuid.UUID(owner)
    except ValueError:
        return None


def object_metadata(content_type: str, cache_control: str, size: int, etag: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "eTag": etag,
        "size": size,
        "mimetype": content_type,
        "cacheControl": cache_control,
        "lastModified": now.isoformat().replace("+00:00", "Z"),
        "contentLength": size,
        "httpStatusCode": 200,
    }


_INSERT = """
insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, version)
values ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)
returning id
"""
_UPSERT = (
    _INSERT.replace("returning id", "")
    + """on conflict (bucket_id, name) do update
   set owner = excluded.owner, owner_id = excluded.owner_id, metadata = excluded.metadata,
       user_metadata = excluded.user_metadata, version = excluded.version,
       last_accessed_at = pg_catalog.now()
returning id
"""
)
_UPDATE = """
update storage.objects
   set owner = $3, owner_id = $4, metadata = $5::jsonb, user_metadata = $6::jsonb, version = $7,
       last_accessed_at = pg_catalog.now()
 where bucket_id = $1 and name = $2
returning id
"""


async def write_row(
    tx: RoleSwitchedTransaction, mode: str, new: NewObject, metadata: dict[str, Any] | None, blob: str
) -> tuple[uuid.UUID, str | None]:
    """Writes the row (mode insert | upsert | update); returns its id and the blob it replaced."""
    previous = (
        await tx.fetchval(
            "select version from storage.objects where bucket_id = $1 and name = $2 for update",
            new.bucket,
            new.key,
        )
        if mode != "insert"
        else None
    )
    args = (
        new.bucket,
        new.key,
        _owner_uuid(new.owner),
        new.owner,
        orjson.dumps(metadata).decode() if metadata is not None else None,
        orjson.dumps(new.user_metadata).decode() if new.user_metadata is not None else None,
        blob,
    )
    statement = {"insert": _INSERT, "upsert": _UPSERT, "update": _UPDATE}[mode]
    try:
        object_id = await tx.fetchval(statement, *args)
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise errors.duplicate() from exc
    if object_id is None:
        raise errors.no_such_key()
    return object_id, previous


async def probe_write(request: web.Request, caller: Caller, mode: str, new: NewObject) -> None:
    """Runs the row's write as the caller and rolls it back: RLS and conflicts speak before any byte."""
    async with transaction(request, caller, f"object.{mode}.probe") as tx:
        await write_row(tx, mode, new, None, new_blob_name())
        tx.request_rollback()


async def store_object(
    request: web.Request,
    caller: Caller,
    mode: str,
    new: NewObject,
    chunks: AsyncIterator[bytes],
    size_hint: int | None,
) -> uuid.UUID:
    """Bytes to a fresh blob, then the row as the caller; the blob goes again if the row fails."""
    ctx = request.app[STORAGE]
    blob = new_blob_name()
    try:
        written = await ctx.backend.write(blob, chunks, size_hint)
    except BackendUnavailable as exc:
        raise errors.backend_unavailable() from exc
    metadata = object_metadata(new.content_type, new.cache_control, written.size, written.etag)
    try:
        async with transaction(request, caller, f"object.{mode}") as tx:
            object_id, previous = await write_row(tx, mode, new, metadata, blob)
    except BaseException:
        with contextlib.suppress(Exception):
            await ctx.backend.delete([blob])
        raise
    if previous:
        await remove_blobs(ctx, [previous])
    return object_id


async def remove_blobs(ctx: StorageContext, blobs: list[str]) -> None:
    """Best effort after a commit: what fails here is an orphan, which the reaper removes later."""
    blobs = [b for b in blobs if b]
    if not blobs:
        return
    try:
        await ctx.backend.delete(blobs)
    except Exception:
        log.warning("could not remove replaced blobs; the reaper will", extra={"count": len(blobs)})


async def read_object_row(request: web.Request, caller: Caller, bucket_id: str, key: str) -> asyncpg.Record:
    async with transaction(request, caller, "object.get", read_only=True) as tx:
        row = await tx.fetchrow(
            "select id, name, bucket_id, version, metadata, user_metadata, created_at, updated_at,"
            " last_accessed_at from storage.objects where bucket_id = $1 and name = $2",
            bucket_id,
            key,
        )
    if row is None:
        raise errors.no_such_key()
    return row


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


# How often a download reads the row again when the blob it named was replaced meanwhile.
READ_ATTEMPTS = 5


class _BlobGone(Exception):
    """The row named a blob that was no longer there when opened."""


async def serve_object(request: web.Request, caller: Caller, bucket_id: str, key: str) -> web.StreamResponse:
    """Reads the object's row as `caller`, then serves its bytes.

    An overwrite that commits between reading the row and opening the blob removes the old
    blob: the row is read again and the new version served. Back-to-back overwrites can do
    that again before the next read, so a few attempts are made before answering "not found".
    """
    for attempt in range(1, READ_ATTEMPTS + 1):
        row = await read_object_row(request, caller, bucket_id, key)
        try:
            return await _serve_row(request, row, head=request.method == "HEAD")
        except _BlobGone as exc:
            if attempt == READ_ATTEMPTS:
                log.warning("object row without its blob", extra={"bucket": bucket_id})
                raise errors.no_such_key() from exc
    raise AssertionError("unreachable")


async def _serve_row(request: web.Request, row: asyncpg.Record, *, head: bool) -> web.StreamResponse:
    """The object's bytes (or a range of them) with its stored headers, streamed from the backend."""
    ctx = request.app[STORAGE]
    metadata = _json(row["metadata"]) or {}
    size = int(metadata.get("size", 0))
    etag = str(metadata.get("eTag", ""))
    content_type = str(metadata.get("mimetype") or "application/octet-stream")
    headers = {
        "Content-Type": content_type,
        "Cache-Control": str(metadata.get("cacheControl") or "no-cache"),
        "ETag": etag,
        "Last-Modified": format_datetime(row["updated_at"].astimezone(UTC), usegmt=True),
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    filename = str(row["name"]).rsplit("/", 1)[-1]
    download = request.query.get("download")
    active = base_type(content_type) in ACTIVE_TYPES
    if download is not None or active:
        headers["Content-Disposition"] = content_disposition(
            filename, attachment=True, download_name=download or None
        )
    if active:
        headers["Content-Security-Policy"] = SANDBOX_CSP
    if etag and request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    span = parse_range(request.headers.get("Range"), size) if size else None
    start, end = span if span is not None else (0, size - 1)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    if head:
        empty = web.Response(status=status, headers=headers)
        # aiohttp would recompute Content-Length for an empty body; HEAD keeps the object's.
        empty.headers["Content-Length"] = str(length)
        return empty
    chunks: AsyncIterator[bytes] | None = None
    if length:
        try:
            chunks = await ctx.backend.read(str(row["version"]), start, end)
        except BlobNotFound as exc:
            raise _BlobGone from exc
        except BackendUnavailable as exc:
            raise errors.backend_unavailable() from exc
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(request)
    if chunks is not None:
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            return response  # the client went away; nothing more to say
    await response.write_eof()
    return response


def object_info(row: asyncpg.Record) -> dict[str, Any]:
    metadata = _json(row["metadata"]) or {}
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "version": row["version"],
        "bucket_id": row["bucket_id"],
        "size": metadata.get("size"),
        "content_type": metadata.get("mimetype"),
        "cache_control": metadata.get("cacheControl"),
        "etag": metadata.get("eTag"),
        "metadata": _json(row["user_metadata"]),
        "last_modified": row["updated_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }
