"""Storage's errors: Supabase Storage's body `{statusCode, error, message}` and its status rules.

Supabase sends most errors as HTTP 400 with the real status as a string in
`statusCode` (storage-js and storage3 read that field); the errors below that
name an `http_status` are sent with it instead, because an HTTP client or
proxy must see them (413 before a body is read, 415, 416, 403 for a bad
credential, 5xx).  Database failures are mapped here, in storage's own
table, not by the data API's: whatever the db layer raises becomes a
Supabase-shaped body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from fluxbase.db.errors import DatabaseUnavailable, PoolTimeout

log = logging.getLogger("fluxbase.storage")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StorageError(Exception):
    """An error a storage client is meant to see."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message
        self.code = code or error
        # Supabase's rule: 400 for every client error, 500 for 500, unless the error names its own.
        self.http_status = http_status or (500 if status_code >= 500 else 400)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "statusCode": str(self.status_code),
            "code": self.code,
            "error": self.error,
            "message": self.message,
        }

    def response(self) -> web.Response:
        return web.Response(
            body=orjson.dumps(self.body()),
            status=self.http_status,
            headers=self.headers,
            content_type="application/json",
        )


# --- the errors, by name (Supabase's codes and words) ------------------------------------------


def no_such_bucket() -> StorageError:
    return StorageError(404, "Bucket not found", "Bucket not found", code="NoSuchBucket")


def no_such_key() -> StorageError:
    return StorageError(404, "not_found", "Object not found", code="NoSuchKey")


def no_such_upload() -> StorageError:
    return StorageError(404, "not_found", "Upload not found", code="NoSuchUpload", http_status=404)


def duplicate(code: str = "Duplicate") -> StorageError:
    return StorageError(409, "Duplicate", "The resource already exists", code=code)


def bucket_not_empty() -> StorageError:
    return StorageError(
        409, "InvalidRequest", "The bucket you tried to delete is not empty", code="ResourceNotEmpty"
    )


def invalid_key(key: str, why: str) -> StorageError:
    shown = key if len(key) <= 200 and key.isprintable() else repr(key[:200])
    return StorageError(400, "InvalidKey", f"Invalid key: {shown} ({why})", code="InvalidKey")


def invalid_bucket_name(why: str) -> StorageError:
    return StorageError(400, "Invalid Input", f"Bucket name invalid: {why}", code="InvalidBucketName")


def invalid_request(message: str) -> StorageError:
    return StorageError(400, "InvalidRequest", message, code="InvalidRequest")


def invalid_jwt(message: str) -> StorageError:
    return StorageError(403, "Unauthorized", message, code="InvalidJWT", http_status=403)


def invalid_signature(message: str = "Invalid signature") -> StorageError:
    return StorageError(400, "InvalidSignature", message, code="InvalidSignature")


def expired_token() -> StorageError:
    return StorageError(400, "ExpiredToken", "The provided token has expired.", code="ExpiredToken")


def access_denied(message: str) -> StorageError:
    return StorageError(403, "Unauthorized", message, code="AccessDenied")


def entity_too_large(limit: int) -> StorageError:
    return StorageError(
        413,
        "Payload too large",
        f"The object exceeded the maximum allowed size ({limit} bytes)",
        code="EntityTooLarge",
        http_status=413,
        headers={"Connection": "close"},
    )


def invalid_mime_type(mime: str) -> StorageError:
    return StorageError(
        415,
        "invalid_mime_type",
        f"mime type {mime} is not supported",
        code="InvalidMimeType",
        http_status=415,
    )


def invalid_range(size: int) -> StorageError:
    return StorageError(
        416,
        "invalid_range",
        "invalid range provided",
        code="InvalidRange",
        http_status=416,
        headers={"Content-Range": f"bytes */{size}"},
    )


def internal_error() -> StorageError:
    return StorageError(500, "internal", "Internal Server Error", code="InternalError")


def backend_unavailable() -> StorageError:
    return StorageError(
        503,
        "backend_unavailable",
        "The storage backend is unavailable",
        code="InternalError",
        http_status=503,
        headers={"Retry-After": "5"},
    )


# --- what other layers raise, in storage's words ------------------------------------------------
# One table, checked in order: the db layer's availability errors (whatever class they become,
# only this table names them), then PostgreSQL's own errors.  Supabase answers 429 when database
# connections run out.

_RLS_MESSAGE = 'new row violates row-level security policy for table "objects"'


def _rls(error: BaseException) -> StorageError:
    # A policy refused the row (42501): Supabase's 403 "Unauthorized", PostgreSQL's words.
    return access_denied(str(error) if "row-level security" in str(error) else _RLS_MESSAGE)


_DATABASE_ERRORS: tuple[tuple[type[BaseException], Callable[[BaseException], StorageError]], ...] = (
    (
        PoolTimeout,
        lambda _: StorageError(
            429,
            "too_many_connections",
            "Too many connections issued to the database",
            code="SlowDown",
            http_status=429,
            headers={"Retry-After": "1"},
        ),
    ),
    (
        DatabaseUnavailable,
        lambda _: StorageError(
            503,
            "DatabaseUnavailable",
            "The database is unavailable",
            code="DatabaseError",
            http_status=503,
            headers={"Retry-After": "5"},
        ),
    ),
    (asyncpg.exceptions.InsufficientPrivilegeError, _rls),
    (asyncpg.exceptions.UniqueViolationError, lambda _: duplicate()),
    (asyncpg.exceptions.ForeignKeyViolationError, lambda _: no_such_bucket()),
    (
        asyncpg.exceptions.QueryCanceledError,
        lambda _: StorageError(
            544, "DatabaseTimeout", "The connection to the database timed out", http_status=503
        ),
    ),
    (
        asyncpg.exceptions.ReadOnlySQLTransactionError,
        lambda _: StorageError(503, "DatabaseReadOnly", "The database is in read-only mode", http_status=503),
    ),
)


def from_database(error: BaseException) -> StorageError | None:
    """A database failure as storage says it; None when it is not one storage knows."""
    for kind, render in _DATABASE_ERRORS:
        if isinstance(error, kind):
            return render(error)
    return None


def guarded(handler: Handler) -> Handler:
    """Wraps a storage handler so its errors leave in storage's shape (other services keep theirs)."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StorageError as error:
            return error.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return StorageError(exc.status, exc.reason, exc.reason, http_status=exc.status).response()
        except Exception as exc:
            mapped = from_database(exc)
            if mapped is not None:
                return mapped.response()
            log.exception("unhandled storage error", extra={"path": request.path, "method": request.method})
            return internal_error().response()

    return run
