"""Resumable uploads with the TUS 1.0 protocol at /upload/resumable (what supabase-js and uppy use).

POST creates an upload (Upload-Length, Upload-Metadata with bucketName,
objectName, contentType, cacheControl, metadata; x-upsert) after probing the
row's write as the caller, so RLS refuses before any byte; PATCH appends at
Upload-Offset; HEAD tells the offset; DELETE ends it.  The bytes received so
far are in a spool file on local disk (one per upload, fsynced after every
PATCH, also when the client drops the connection mid-PATCH), so a client
resumes from what was stored; the upload's row in storage.resumable_uploads
says who may continue it and where it goes.  When the last byte arrives the
spool file is streamed to the backend and the object row is written as the
caller, exactly as a one-shot upload (store.store_object).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import ClientPayloadError, web

from fluxbase.security.authenticate import Caller
from fluxbase.storage import errors, keys
from fluxbase.storage.backends.base import CHUNK_SIZE
from fluxbase.storage.bodies import DEFAULT_CONTENT_TYPE, base_type, check_mime, streamed_upload
from fluxbase.storage.store import (
    SERVICE,
    STORAGE,
    NewObject,
    bucket_settings,
    caller_of,
    probe_write,
    size_limit,
    store_object,
    transaction,
)

TUS_VERSION = "1.0.0"
EXPIRY = timedelta(hours=24)
EXTENSIONS = "creation,creation-with-upload,termination,expiration"


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _metadata(header: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        name, _, encoded = pair.partition(" ")
        try:
            values[name] = base64.b64decode(encoded.strip(), validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise errors.invalid_request(f"Upload-Metadata {name!r} is not base64") from exc
    return values


def spool_path(request: web.Request, upload_id: str) -> Path:
    try:
        uuid.UUID(hex=upload_id)
    except ValueError as exc:
        raise errors.no_such_upload() from exc
    return request.app[STORAGE].spool / f"{uuid.UUID(hex=upload_id).hex}.tus"


def _check_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise errors.StorageError(
            412, "TusError", "Unsupported TUS version", http_status=412, headers={"Tus-Version": TUS_VERSION}
        )


async def options(request: web.Request) -> web.Response:
    limit = request.app[STORAGE].config.max_file_size
    return web.Response(
        status=204,
        headers=_tus_headers(
            **{"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS, "Tus-Max-Size": str(limit)}
        ),
    )


async def create(request: web.Request) -> web.Response:
    _check_version(request)
    caller = caller_of(request)
    meta = _metadata(request.headers.get("Upload-Metadata", ""))
    bucket_id = keys.bucket_id(meta.get("bucketName", ""))
    key = keys.object_key(meta.get("objectName", ""))
    raw_length = request.headers.get("Upload-Length", "")
    if not raw_length.isdigit():
        raise errors.invalid_request("Upload-Length is required (deferred lengths are not supported)")
    length = int(raw_length)
    bucket = await bucket_settings(request, bucket_id)
    limit = size_limit(request.app[STORAGE], bucket)
    if length > limit:
        raise errors.entity_too_large(limit)
    content_type = meta.get("contentType") or DEFAULT_CONTENT_TYPE
    check_mime(content_type, bucket.allowed_mime_types)
    user_metadata = None
    if meta.get("metadata"):
        try:
            user_metadata = orjson.loads(meta["metadata"])
        except orjson.JSONDecodeError as exc:
            raise errors.invalid_request("metadata must be JSON") from exc
    upsert = request.headers.get("x-upsert", "").lower() == "true"
    cache_control = meta.get("cacheControl") or "3600"
    if cache_control.isdigit():
        cache_control = f"max-age={cache_control}"
    new = NewObject(bucket_id, key, content_type, cache_control, user_metadata, caller.user_id)
    await probe_write(request, caller, "upsert" if upsert else "insert", new)

    upload_id = uuid.uuid4().hex
    path = spool_path(request, upload_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    async with transaction(request, SERVICE, "tus.create") as tx:
        expires = await tx.fetchval(
            "insert into storage.resumable_uploads (id, bucket_id, name, upload_length, content_type,"
            " cache_control, user_metadata, upsert, role, owner_id, expires_at)"
            " values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, pg_catalog.now() + $11::interval)"
            " returning expires_at",
            upload_id,
            bucket_id,
            key,
            length,
            content_type,
            cache_control,
            orjson.dumps(user_metadata).decode() if user_metadata is not None else None,
            upsert,
            caller.role,
            caller.user_id,
            EXPIRY,
        )
    location = f"{request.path.rstrip('/')}/{upload_id}"
    headers = _tus_headers(
        Location=location, **{"Upload-Expires": expires.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    )
    if (
        request.can_read_body
        and base_type(request.headers.get("Content-Type", "")) == "application/offset+octet-stream"
    ):
        offset = await _append(request, caller, upload_id, 0)
        headers["Upload-Offset"] = str(offset)
    return web.Response(status=201, headers=headers)


async def _upload_row(request: web.Request, caller: Caller, upload_id: str) -> asyncpg.Record:
    spool_path(request, upload_id)
    async with transaction(request, SERVICE, "tus.get", read_only=True) as tx:
        row = await tx.fetchrow(
            "select * from storage.resumable_uploads where id = $1 and expires_at > pg_catalog.now()",
            upload_id,
        )
    # Another caller's upload is as good as missing: its id says nothing to them.
    if row is None or row["role"] != caller.role or row["owner_id"] != caller.user_id:
        raise errors.no_such_upload()
    return row


async def head(request: web.Request) -> web.Response:
    caller = caller_of(request)
    upload_id = request.match_info["upload_id"]
    row = await _upload_row(request, caller, upload_id)
    try:
        offset = spool_path(request, upload_id).stat().st_size
    except FileNotFoundError as exc:
        raise errors.no_such_upload() from exc
    return web.Response(
        status=200,
        headers=_tus_headers(**{"Upload-Offset": str(offset), "Upload-Length": str(row["upload_length"])}),
    )


async def _received(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_SIZE):
        yield chunk


async def _append(request: web.Request, caller: Caller, upload_id: str, expected: int | None) -> int:
    """Appends the request body at Upload-Offset; finishes the upload when it is complete."""
    row = await _upload_row(request, caller, upload_id)
    path = spool_path(request, upload_id)
    length = int(row["upload_length"])
    loop = asyncio.get_running_loop()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError as exc:
        raise errors.no_such_upload() from exc
    try:
        try:
            # One writer per upload, across workers: a second PATCH waits for nobody, it is refused.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise errors.StorageError(
                423, "ResourceLocked", "The upload is being written", http_status=423
            ) from exc
        offset = os.fstat(fd).st_size
        if expected is not None and expected != offset:
            raise errors.StorageError(
                409,
                "TusError",
                f"Upload-Offset is {offset}",
                http_status=409,
                headers={"Upload-Offset": str(offset)},
            )
        try:
            async for chunk in _received(request):
                if offset + len(chunk) > length:
                    raise errors.entity_too_large(length)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                offset += len(chunk)
        except (ClientPayloadError, ConnectionError):
            # The client went away mid-PATCH: keep what arrived, so it can resume from there
            # (HEAD tells it where).  Nobody is left to answer.
            await loop.run_in_executor(None, os.fsync, fd)
            return offset
        except asyncio.CancelledError:
            os.fsync(fd)
            raise
        await loop.run_in_executor(None, os.fsync, fd)
    finally:
        os.close(fd)
    if offset == length:
        await _finish(request, caller, row, path)
    return offset


async def _spooled(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


async def _finish(request: web.Request, caller: Caller, row: asyncpg.Record, path: Path) -> None:
    new = NewObject(
        row["bucket_id"],
        row["name"],
        row["content_type"] or DEFAULT_CONTENT_TYPE,
        row["cache_control"] or "max-age=3600",
        orjson.loads(row["user_metadata"]) if isinstance(row["user_metadata"], str) else row["user_metadata"],
        caller.user_id,
    )
    await store_object(
        request, caller, "upsert" if row["upsert"] else "insert", new, _spooled(path), row["upload_length"]
    )
    async with transaction(request, SERVICE, "tus.finish") as tx:
        await tx.execute("delete from storage.resumable_uploads where id = $1", row["id"])
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def patch(request: web.Request) -> web.Response:
    _check_version(request)
    caller = caller_of(request)
    if base_type(request.headers.get("Content-Type", "")) != "application/offset+octet-stream":
        raise errors.StorageError(
            415, "TusError", "Content-Type must be application/offset+octet-stream", http_status=415
        )
    raw_offset = request.headers.get("Upload-Offset", "")
    if not raw_offset.isdigit():
        raise errors.invalid_request("Upload-Offset is required")
    offset = await _append(request, caller, request.match_info["upload_id"], int(raw_offset))
    return web.Response(status=204, headers=_tus_headers(**{"Upload-Offset": str(offset)}))


async def terminate(request: web.Request) -> web.Response:
    caller = caller_of(request)
    upload_id = request.match_info["upload_id"]
    await _upload_row(request, caller, upload_id)
    async with transaction(request, SERVICE, "tus.delete") as tx:
        await tx.execute("delete from storage.resumable_uploads where id = $1", upload_id)
    with contextlib.suppress(FileNotFoundError):
        spool_path(request, upload_id).unlink()
    return web.Response(status=204, headers=_tus_headers())


def add_routes(router: web.UrlDispatcher, prefix: str, wrap: Any) -> None:
    base = f"{prefix}/upload/resumable"
    for path in (base, base + "/"):
        router.add_route("OPTIONS", path, wrap(options))
        router.add_post(path, streamed_upload(wrap(create)))
    one = base + "/{upload_id}"
    router.add_route("HEAD", one, wrap(head))
    router.add_patch(one, streamed_upload(wrap(patch)))
    router.add_delete(one, wrap(terminate))
    router.add_route("OPTIONS", one, wrap(options))
