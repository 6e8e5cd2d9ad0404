"""Bucket routes with Supabase Storage's shapes: list, get, create, update, empty, delete.

Each runs as the caller, so the policies on storage.buckets decide (Supabase
ships none: only service_role manages buckets until a DBA writes one).
Every change is audited by a trigger on the table (sql/50_storage.sql).
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from aiohttp import web

from fluxbase.errors import json_response
from fluxbase.storage import errors, keys
from fluxbase.storage.bodies import json_body
from fluxbase.storage.store import STORAGE, caller_of, remove_blobs, transaction

_COLUMNS = (
    "id, name, owner, owner_id, public, type, file_size_limit, allowed_mime_types, created_at, updated_at"
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
SORT_COLUMNS = frozenset({"id", "name", "created_at", "updated_at"})


def file_size_limit(value: Any) -> int | None:
    """Bytes from a number or Supabase's "20MB" / "30KB" / "3B" strings; None for no limit."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        raise errors.invalid_request("file_size_limit must be a size such as 1048576 or '20MB'")
    if isinstance(value, int):
        if value < 0:
            raise errors.invalid_request("file_size_limit must not be negative")
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise errors.invalid_request("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


def mime_types(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 255 for v in value):
        raise errors.invalid_request("allowed_mime_types must be a list of MIME types")
    return value or None


def _bucket(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "owner": str(row["owner"]) if row["owner"] else "",
        "owner_id": row["owner_id"],
        "public": row["public"],
        "type": row["type"],
        "file_size_limit": row["file_size_limit"],
        "allowed_mime_types": row["allowed_mime_types"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise errors.invalid_request(f"{name} must be a non-negative integer")
    return int(raw)


async def list_buckets(request: web.Request) -> web.Response:
    caller = caller_of(request)
    column = request.query.get("sortColumn", "name")
    order = request.query.get("sortOrder", "asc").lower()
    if column not in SORT_COLUMNS or order not in ("asc", "desc"):
        raise errors.invalid_request(
            "sortColumn must be id, name, created_at or updated_at; sortOrder asc or desc"
        )
    search = request.query.get("search", "")
    async with transaction(request, caller, "bucket.list", read_only=True) as tx:
        # Column and order are checked against fixed lists above; every value is bound.
        rows = await tx.fetch(
            f"select {_COLUMNS} from storage.buckets"  # noqa: S608
            " where $1 = '' or strpos(lower(name), lower($1)) > 0"
            f" order by {column} {order} limit $2 offset $3",
            search,
            _int_query(request, "limit", None),
            _int_query(request, "offset", 0),
        )
    return json_response([_bucket(r) for r in rows])


async def get_bucket(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    async with transaction(request, caller, "bucket.get", read_only=True) as tx:
        row = await tx.fetchrow(f"select {_COLUMNS} from storage.buckets where id = $1", bucket_id)  # noqa: S608
    if row is None:
        raise errors.no_such_bucket()
    return json_response(_bucket(row))


async def create_bucket(request: web.Request) -> web.Response:
    caller = caller_of(request)
    body = await json_body(request)
    name = body.get("name") or body.get("id")
    if not isinstance(name, str):
        raise errors.invalid_request("body must have required property 'name'")
    bucket_id = keys.bucket_id(body.get("id") or name)
    keys.bucket_id(name)
    async with transaction(request, caller, "bucket.create") as tx:
        try:
            await tx.execute(
                "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit,"
                " allowed_mime_types) values ($1, $2, $3::text::uuid, $4, $5, $6, $7)",
                bucket_id,
                name,
                caller.user_id if caller.role == "authenticated" else None,
                caller.user_id,
                bool(body.get("public", False)),
                file_size_limit(body.get("file_size_limit")),
                mime_types(body.get("allowed_mime_types")),
            )
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise errors.duplicate("BucketAlreadyExists") from exc
    return json_response({"name": bucket_id})


async def update_bucket(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    body = await json_body(request)
    async with transaction(request, caller, "bucket.update") as tx:
        updated = await tx.fetchval(
            "update storage.buckets set public = coalesce($2, public),"
            " file_size_limit = case when $3 then $4 else file_size_limit end,"
            " allowed_mime_types = case when $5 then $6 else allowed_mime_types end"
            " where id = $1 returning id",
            bucket_id,
            body.get("public") if isinstance(body.get("public"), bool) else None,
            "file_size_limit" in body,
            file_size_limit(body.get("file_size_limit")),
            "allowed_mime_types" in body,
            mime_types(body.get("allowed_mime_types")),
        )
    if updated is None:
        raise errors.no_such_bucket()
    return json_response({"message": "Successfully updated"})


async def empty_bucket(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    async with transaction(request, caller, "bucket.empty") as tx:
        if await tx.fetchval("select id from storage.buckets where id = $1", bucket_id) is None:
            raise errors.no_such_bucket()
        rows = await tx.fetch("delete from storage.objects where bucket_id = $1 returning version", bucket_id)
    await remove_blobs(request.app[STORAGE], [r["version"] for r in rows])
    return json_response({"message": "Successfully emptied"})


async def delete_bucket(request: web.Request) -> web.Response:
    caller = caller_of(request)
    bucket_id = keys.bucket_id(request.match_info["bucket"])
    async with transaction(request, caller, "bucket.delete") as tx:
        try:
            deleted = await tx.fetchval("delete from storage.buckets where id = $1 returning id", bucket_id)
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise errors.bucket_not_empty() from exc
    if deleted is None:
        raise errors.no_such_bucket()
    return json_response({"message": "Successfully deleted"})


def add_routes(router: web.UrlDispatcher, prefix: str, wrap: Any) -> None:
    router.add_get(f"{prefix}/bucket", wrap(list_buckets))
    router.add_post(f"{prefix}/bucket", wrap(create_bucket))
    router.add_post(f"{prefix}/bucket/{{bucket}}/empty", wrap(empty_bucket))
    router.add_get(f"{prefix}/bucket/{{bucket}}", wrap(get_bucket))
    router.add_put(f"{prefix}/bucket/{{bucket}}", wrap(update_bucket))
    router.add_delete(f"{prefix}/bucket/{{bucket}}", wrap(delete_bucket))
