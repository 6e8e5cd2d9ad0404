"""Request and response bodies of objects: streamed uploads under limits, ranges, safe serving.

Uploads arrive raw (content-type, cache-control and x-metadata headers) or as
multipart/form-data (fields cacheControl and metadata, then the file under an
empty name as storage-js sends it, or `file` as storage3 does).  Either way
the file's bytes are handed on as an async iterator that counts them: a
declared Content-Length over the limit is refused before a byte is read, and
a body that turns out longer is cut off at the limit.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import BodyPartReader, web

from fluxbase.security.request_limits import streams_body
from fluxbase.storage import errors
from fluxbase.storage.backends.base import CHUNK_SIZE

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Room for the multipart envelope (boundaries, part headers, small fields) around the file.
MULTIPART_SLACK = 64 * 1024
_MAX_AGE = re.compile(r"^\d{1,10}$")

# What a browser would run or render as a document in our origin: served as an attachment
# with a sandboxing CSP, never inline.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "text/xsl",
        "application/xslt+xml",
        "application/pdf",
        "text/vtt",
        "application/x-shockwave-flash",
    }
)
SANDBOX_CSP = "default-src 'none'; sandbox"


@dataclass
class UploadBody:
    chunks: AsyncIterator[bytes]
    content_type: str
    cache_control: str
    user_metadata: dict[str, Any] | None
    declared_size: int | None


def base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def check_mime(content_type: str, allowed: list[str] | None) -> None:
    """415 when the bucket names allowed types and this is not one (`image/*` wildcards allowed)."""
    if not allowed:
        return
    mime = base_type(content_type)
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if pattern == mime or (pattern.endswith("/*") and mime.startswith(pattern[:-1])) or pattern == "*/*":
            return
    raise errors.invalid_mime_type(mime)


def _cache_control(value: str | None) -> str:
    if not value:
        return "max-age=3600"
    value = value.strip()
    if _MAX_AGE.match(value):
        return f"max-age={value}"
    if len(value) > 200 or not value.isprintable():
        raise errors.invalid_request("Invalid cache-control")
    return value


def _metadata(raw: str | None, *, encoded: bool) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        text = base64.b64decode(raw, validate=True).decode() if encoded else raw
        value = orjson.loads(text)
    except (binascii.Error, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise errors.invalid_request("metadata must be a JSON object") from exc
    if not isinstance(value, dict):
        raise errors.invalid_request("metadata must be a JSON object")
    return value


async def _limited(source: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in source:
        total += len(chunk)
        if total > limit:
            raise errors.entity_too_large(limit)
        yield chunk


async def _raw_chunks(request: web.Request) -> AsyncIterator[bytes]:
    # Whatever the socket delivered, as it arrived: no re-slicing into fixed sizes. aiohttp's
    # reader pauses the socket when its buffer is full, so this is bounded too.
    async for chunk in request.content.iter_any():
        yield chunk


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while True:
        chunk = await part.read_chunk(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def declared_length(request: web.Request) -> int | None:
    return request.content_length


async def open_upload(request: web.Request, limit: int) -> UploadBody:
    """The upload's file part and its options; 413 at once when Content-Length says too much."""
    length = declared_length(request)
    content_type = request.headers.get("Content-Type", "")
    if base_type(content_type) == "multipart/form-data":
        if length is not None and length > limit + MULTIPART_SLACK:
            raise errors.entity_too_large(limit)
        reader = await request.multipart()
        cache_control: str | None = None
        metadata: dict[str, Any] | None = None
        while True:
            part = await reader.next()
            if part is None:
                raise errors.invalid_request("No file found in the multipart body")
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is not None or part.name in ("", "file", None):
                file_type = part.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
                return UploadBody(
                    _limited(_part_chunks(part), limit),
                    file_type,
                    _cache_control(cache_control),
                    metadata,
                    None,
                )
            if part.name == "cacheControl":
                cache_control = (await part.read(decode=True)).decode(errors="replace")[:200]
            elif part.name == "metadata":
                metadata = _metadata((await part.read(decode=True)).decode(errors="replace"), encoded=False)
            else:
                await part.release()
    if length is not None and length > limit:
        raise errors.entity_too_large(limit)
    return UploadBody(
        _limited(_raw_chunks(request), limit),
        content_type or DEFAULT_CONTENT_TYPE,
        _cache_control(request.headers.get("Cache-Control")),
        _metadata(request.headers.get("x-metadata"), encoded=True),
        length,
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single `bytes=` range; None to send everything; 416 if unsatisfiable."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None:
        return None  # multiple ranges or another unit: RFC 9110 lets us send the whole object
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise errors.invalid_range(size)
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise errors.invalid_range(size)
    return start, min(end, size - 1)


def content_disposition(filename: str, *, attachment: bool, download_name: str | None = None) -> str:
    name = download_name or filename
    kind = "attachment" if attachment else "inline"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read()) if request.can_read_body else {}
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_request("The body must be JSON") from exc
    if not isinstance(body, dict):
        raise errors.invalid_request("The body must be a JSON object")
    return body


# Object bodies stream to the backend and are counted there against min(storage.max_file_size,
# the bucket's file_size_limit), answering Supabase's 413: the web layer's JSON body limit must
# neither buffer them nor refuse them first (in another error shape).
streamed_upload = streams_body(sys.maxsize)
