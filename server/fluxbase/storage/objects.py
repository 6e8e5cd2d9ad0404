"""Object routes with Supabase Storage's shapes: upload, update, download, info, list, move, copy,
delete, and signed download and upload URLs.  Each runs as the caller through store.py, so the
policies on storage.objects decide; signed URLs were checked when they were signed."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
from aiohttp import web

from fluxbase.errors import json_response
from fluxbase.security.authenticate import Caller
from fluxbase.storage import errors, keys
from fluxbase.storage.backends.base import BackendUnavailable, BlobNotFound, new_blob_name
from fluxbase.storage.bodies import check_mime, json_body, open_upload, streamed_upload
from fluxbase.storage.signing import UPLOAD_EXPIRES_IN, expires_in
from fluxbase.storage.store import (
    SERVICE,
    STORAGE,
    NewObject,
    bucket_settings,
    caller_of,
    object_info,
    probe_write,
    read_object_row,
    remove_blobs,
    serve_object,
    size_limit,
    store_object,
    transaction,
    write_row,
)

MAX_LIST_LIMIT = 1000
MAX_DELETE = 1000


def _target(request: web.Request) -> tuple[str, str]:
    return keys.bucket_id(request.match_info["bucket"]), keys.object_key(request.match_info["key"])


def _upsert(request: web.Request) -> bool:
    return request.headers.get("x-upsert", "").strip().lower() == "true"


def _str_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise errors.invalid_request(f"body must have required property '{name}'")
    return value


def signed_path(kind: str, bucket: str, key: str, token: str) -> str:
    return f"/object/{kind}/{quote(bucket, safe='')}/{quote(key, safe='/')}?token={token}"


async def _upload(request: web.Request, caller: Caller, mode: str, bucket_id: str, key: str) -> web.Response:
    ctx = request.app[STORAGE]
    bucket = await bucket_settings(request, bucket_id)
    body = await open_upload(request, size_limit(ctx, bucket))
    check_mime(body.content_type, bucket.allowed_mime_types)
    new = NewObject(bucket_id, key, body.content_type, body.cache_control, body.user_metadata, caller.user_id)
    await probe_write(request, caller, mode, new)
    object_id = await store_object(request, caller, mode, new, body.chunks, body.declared_size)
    return json_response({"Id": str(object_id), "Key": f"{bucket_id}/{key}"})


async def upload(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    return await _upload(request, caller, "upsert" if _upsert(request) else "insert", bucket_id, key)


async def update(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    return await _upload(request, caller, "update", bucket_id, key)


async def download(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    return await serve_object(request, caller, bucket_id, key)


async def public_download(request: web.Request) -> web.StreamResponse:
    bucket_id, key = _target(request)
    bucket = await bucket_settings(request, bucket_id)
    if not bucket.public:
        raise errors.no_such_bucket()
    return await serve_object(request, SERVICE, bucket_id, key)


async def info(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    return json_response(object_info(await read_object_row(request, caller, bucket_id, key)))


async def public_info(request: web.Request) -> web.Response:
    bucket_id, key = _target(request)
    if not (await bucket_settings(request, bucket_id)).public:
        raise errors.no_such_bucket()
    return json_response(object_info(await read_object_row(request, SERVICE, bucket_id, key)))


async def list_objects(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    body = await json_body(request)
    prefix = keys.key_prefix(str(body.get("prefix") or ""))
    limit, offset = body.get("limit", 100), body.get("offset", 0)
    if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
        raise errors.invalid_request("limit must be a positive integer and offset not negative")
    sort = body.get("sortBy") or {}
    if not isinstance(sort, dict):
        raise errors.invalid_request("sortBy must be an object")
    search = body.get("search") or ""
    if not isinstance(search, str) or "/" in search:
        raise errors.invalid_request("search must be a name fragment without '/'")
    async with transaction(request, caller, "object.list", read_only=True) as tx:
        rows = await tx.fetch(
            "select name, id, updated_at, created_at, last_accessed_at, metadata"
            " from storage.search($1, $2, $3, $4, $5, $6, $7, $8)",
            prefix,
            bucket_id,
            min(limit, MAX_LIST_LIMIT),
            prefix.count("/") + 1,
            offset,
            search,
            str(sort.get("column") or "name"),
            str(sort.get("order") or "asc"),
        )
    return json_response(
        [
            {
                "name": r["name"],
                "id": str(r["id"]) if r["id"] is not None else None,
                "updated_at": r["updated_at"],
                "created_at": r["created_at"],
                "last_accessed_at": r["last_accessed_at"],
                "metadata": orjson.loads(r["metadata"]) if isinstance(r["metadata"], str) else r["metadata"],
            }
            for r in rows
        ]
    )


def _source_and_destination(body: dict[str, Any]) -> tuple[str, str, str, str]:
    source_bucket = keys.bucket_id(_str_field(body, "bucketId"))
    destination_bucket = body.get("destinationBucket") or source_bucket
    if not isinstance(destination_bucket, str):
        raise errors.invalid_request("destinationBucket must be a string")
    return (
        source_bucket,
        keys.object_key(_str_field(body, "sourceKey")),
        keys.bucket_id(destination_bucket),
        keys.object_key(_str_field(body, "destinationKey")),
    )


async def move(request: web.Request) -> web.Response:
    caller = caller_of(request)
    source_bucket, source_key, bucket_id, key = _source_and_destination(await json_body(request))
    if bucket_id != source_bucket:
        await bucket_settings(request, bucket_id)
    async with transaction(request, caller, "object.move") as tx:
        try:
            moved = await tx.fetchval(
                "update storage.objects set bucket_id = $3, name = $4, last_accessed_at = pg_catalog.now()"
                " where bucket_id = $1 and name = $2 returning id",
                source_bucket,
                source_key,
                bucket_id,
                key,
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise errors.duplicate() from exc
    if moved is None:
        raise errors.no_such_key()
    return json_response({"message": "Successfully moved"})


async def copy(request: web.Request) -> web.Response:
    ctx = request.app[STORAGE]
    caller = caller_of(request)
    body = await json_body(request)
    source_bucket, source_key, bucket_id, key = _source_and_destination(body)
    row = await read_object_row(request, caller, source_bucket, source_key)
    if bucket_id != source_bucket:
        await bucket_settings(request, bucket_id)
    metadata = orjson.loads(row["metadata"]) if isinstance(row["metadata"], str) else (row["metadata"] or {})
    user_metadata = row["user_metadata"]
    if body.get("copyMetadata") is False or "metadata" in body:
        user_metadata = body.get("metadata")
    elif isinstance(user_metadata, str):
        user_metadata = orjson.loads(user_metadata)
    new = NewObject(
        bucket_id,
        key,
        str(metadata.get("mimetype") or "application/octet-stream"),
        str(metadata.get("cacheControl") or "max-age=3600"),
        user_metadata if isinstance(user_metadata, dict) else None,
        caller.user_id,
    )
    mode = "upsert" if _upsert(request) else "insert"
    await probe_write(request, caller, mode, new)

    blob = new_blob_name()
    try:
        await ctx.backend.copy(str(row["version"]), blob)
    except BlobNotFound as exc:
        raise errors.no_such_key() from exc
    except BackendUnavailable as exc:
        raise errors.backend_unavailable() from exc
    try:
        async with transaction(request, caller, "object.copy") as tx:
            object_id, previous = await write_row(tx, mode, new, metadata, blob)
    except BaseException:
        await remove_blobs(ctx, [blob])
        raise
    if previous:
        await remove_blobs(ctx, [previous])
    return json_response({"Id": str(object_id), "Key": f"{bucket_id}/{key}"})


async def _delete(
    request: web.Request, caller: Caller, bucket_id: str, names: list[str]
) -> list[dict[str, Any]]:
    async with transaction(request, caller, "object.delete") as tx:
        rows = await tx.fetch(
            "delete from storage.objects where bucket_id = $1 and name = any($2::text[])"
            " returning id, name, bucket_id, owner, owner_id, version, metadata, user_metadata,"
            " created_at, updated_at, last_accessed_at",
            bucket_id,
            names,
        )
    await remove_blobs(request.app[STORAGE], [r["version"] for r in rows])
    return [
        {
            "id": str(r["id"]),
            "name": r["name"],
            "bucket_id": r["bucket_id"],
            "owner": str(r["owner"]) if r["owner"] else None,
            "owner_id": r["owner_id"],
            "version": r["version"],
            "metadata": orjson.loads(r["metadata"]) if isinstance(r["metadata"], str) else r["metadata"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "last_accessed_at": r["last_accessed_at"],
        }
        for r in rows
    ]


async def delete_many(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    prefixes = (await json_body(request)).get("prefixes")
    if not isinstance(prefixes, list) or not prefixes or len(prefixes) > MAX_DELETE:
        raise errors.invalid_request(f"prefixes must be a list of 1 to {MAX_DELETE} keys")
    names = [keys.object_key(p) if isinstance(p, str) else keys.object_key("") for p in prefixes]
    return json_response(await _delete(request, caller, bucket_id, names))


async def delete_one(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    if not await _delete(request, caller, bucket_id, [key]):
        raise errors.no_such_key()
    return json_response({"message": "Successfully deleted"})


async def sign(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    seconds = expires_in((await json_body(request)).get("expiresIn"))
    await read_object_row(request, caller, bucket_id, key)
    token = request.app[STORAGE].signer.sign(bucket_id, key, "download", seconds)
    return json_response({"signedURL": signed_path("sign", bucket_id, key, token)})


async def sign_many(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    body = await json_body(request)
    seconds = expires_in(body.get("expiresIn"))
    paths = body.get("paths")
    if not isinstance(paths, list) or not paths or len(paths) > MAX_DELETE:
        raise errors.invalid_request(f"paths must be a list of 1 to {MAX_DELETE} keys")
    names = [keys.object_key(p) if isinstance(p, str) else keys.object_key("") for p in paths]
    async with transaction(request, caller, "object.sign", read_only=True) as tx:
        found = {
            r["name"]
            for r in await tx.fetch(
                "select name from storage.objects where bucket_id = $1 and name = any($2::text[])",
                bucket_id,
                names,
            )
        }
    signer = request.app[STORAGE].signer
    return json_response(
        [
            {
                "error": None,
                "path": name,
                "signedURL": signed_path(
                    "sign", bucket_id, name, signer.sign(bucket_id, name, "download", seconds)
                ),
            }
            if name in found
            else {
                "error": "Either the object does not exist or you do not have access to it",
                "path": name,
                "signedURL": None,
            }
            for name in names
        ]
    )


async def signed_download(request: web.Request) -> web.StreamResponse:
    bucket_id, key = _target(request)
    request.app[STORAGE].signer.verify(request.query.get("token", ""), bucket_id, key, "download")
    return await serve_object(request, SERVICE, bucket_id, key)


async def sign_upload(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id, key = _target(request)
    upsert = _upsert(request)
    await bucket_settings(request, bucket_id)
    new = NewObject(bucket_id, key, "application/octet-stream", "max-age=3600", None, caller.user_id)
    await probe_write(request, caller, "upsert" if upsert else "insert", new)
    token = request.app[STORAGE].signer.sign(
        bucket_id, key, "upload", UPLOAD_EXPIRES_IN, owner=caller.user_id, upsert=upsert
    )
    return json_response({"url": signed_path("upload/sign", bucket_id, key, token), "token": token})


async def signed_upload(request: web.Request) -> web.Response:
    bucket_id, key = _target(request)
    grant = request.app[STORAGE].signer.verify(request.query.get("token", ""), bucket_id, key, "upload")
    owner_claims = {"role": "service_role", **({"sub": grant.owner} if grant.owner else {})}
    uploader = Caller("service_role", owner_claims)
    response = await _upload(request, uploader, "upsert" if grant.upsert else "insert", bucket_id, key)
    return response


def add_routes(router: web.UrlDispatcher, prefix: str, wrap: Any) -> None:
    """Specific routes first: aiohttp tries dynamic routes in the order they were added."""
    p = prefix + "/object"
    key = "{bucket}/{key:[\\s\\S]+}"  # any character: a key with a newline must get its 400 too
    router.add_post(f"{p}/list/{{bucket}}", wrap(list_objects))
    router.add_post(f"{p}/move", wrap(move))
    router.add_post(f"{p}/copy", wrap(copy))
    router.add_get(f"{p}/info/public/{key}", wrap(public_info))
    router.add_get(f"{p}/info/authenticated/{key}", wrap(info))
    router.add_get(f"{p}/info/{key}", wrap(info))
    router.add_post(f"{p}/sign/{key}", wrap(sign))
    router.add_post(f"{p}/sign/{{bucket}}", wrap(sign_many))
    router.add_get(f"{p}/sign/{key}", wrap(signed_download))  # HEAD too
    router.add_post(f"{p}/upload/sign/{key}", wrap(sign_upload))
    router.add_put(f"{p}/upload/sign/{key}", streamed_upload(wrap(signed_upload)))
    router.add_get(f"{p}/public/{key}", wrap(public_download))
    router.add_get(f"{p}/authenticated/{key}", wrap(download))
    router.add_post(f"{p}/{key}", streamed_upload(wrap(upload)))
    router.add_put(f"{p}/{key}", streamed_upload(wrap(update)))
    router.add_get(f"{p}/{key}", wrap(download))
    router.add_delete(f"{p}/{key}", wrap(delete_one))
    router.add_delete(f"{p}/{{bucket}}", wrap(delete_many))
