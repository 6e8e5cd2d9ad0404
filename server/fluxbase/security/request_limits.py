"""Request limits every route gets from the web layer: body size, JSON depth, URL length.

A body larger than its route's limit answers 413 before it is read (by its
Content-Length) or as soon as the bytes read pass the limit (chunked), so a
large upload never sits in memory.  JSON bodies nested deeper than
`server.max_json_depth` answer 400 before any handler parses them (a parser
that recurses would otherwise end in RecursionError).  A route that streams
its body with a limit of its own (storage uploads) says so with
`streams_body` and reads through `read_stream`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Middleware

from fluxbase.errors import HttpError

if TYPE_CHECKING:
    from fluxbase.config import ServerConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H")

_OWN_LIMIT = "__fluxbase_body_limit__"
_CAP = "__fluxbase_body_cap__"
# The limit in force for this request's body, for handlers that stream it.
BODY_LIMIT = web.RequestKey("body_limit", int)

# Bodies with these types are not JSON: their brackets mean nothing.
_NOT_JSON = ("multipart/", "application/x-www-form-urlencoded", "application/octet-stream")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS = bytes.maketrans(b"{}", b"[]")


def streams_body(limit: Callable[[web.Request], int] | int) -> Callable[[H], H]:
    """Marks a handler that reads its body as a stream, up to `limit` bytes (a number or per request)."""

    def mark(handler: H) -> H:
        setattr(handler, _OWN_LIMIT, limit)
        return handler

    return mark


def caps_body(limit: int) -> Callable[[H], H]:
    """Marks a handler whose bodies are small: its limit is the lower of `limit` and
    server.body_limit, enforced while reading, whatever server.body_limit allows elsewhere."""

    def mark(handler: H) -> H:
        setattr(handler, _CAP, limit)
        return handler

    return mark


def too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "payload_too_large",
        f"Request body is larger than the limit of {limit} bytes",
        hint="send a smaller body",
        # The rest of the body is not read (http_server.py): the connection ends with the answer.
        headers={"Connection": "close"},
    )


async def read_stream(request: web.Request, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The body of a `streams_body` route in chunks; 413 as soon as it passes the route's limit."""
    limit = request.get(BODY_LIMIT)
    seen = 0
    async for chunk in request.content.iter_chunked(chunk_size):
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise too_large(limit)
        yield chunk


def json_too_deep(raw: bytes, max_depth: int) -> bool:
    """True when the arrays and objects of a JSON text nest deeper than max_depth.

    Strings are dropped (their brackets are text), every other character but
    brackets is deleted, and each pass removes the innermost empty pairs: a
    text nested N deep is empty after N passes.  All of it runs in C, so a
    megabyte costs a few milliseconds even when deep; most bodies have fewer
    brackets than the limit and are not scanned at all.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            # Unbalanced, so not JSON; but a recursive parser still descends into every
            # unclosed opening bracket before it notices.
            return inner.count(b"[") > max_depth
        if not inner:
            return False
        brackets = inner
    return True


def _is_json(request: web.Request) -> bool:
    content_type = request.headers.get("Content-Type", "").lower()
    return not content_type.startswith(_NOT_JSON)


def _route_limit(request: web.Request) -> int | None:
    route = request.match_info.route
    own = getattr(route.handler, _OWN_LIMIT, None) if route is not None else None
    if own is None:
        return None
    return int(own(request) if callable(own) else own)


def _route_cap(request: web.Request) -> int | None:
    route = request.match_info.route
    cap = getattr(route.handler, _CAP, None) if route is not None else None
    return None if cap is None else int(cap)


class RequestLimits:
    """URL length, the route's body limit, and JSON depth, checked before the handler runs."""

    def __init__(self, server: ServerConfig) -> None:
        self._default_limit = server.body_limit
        self._max_depth = server.max_json_depth
        self._max_url = server.max_url_length

    async def check(self, request: web.Request) -> None:
        max_url = self._max_url
        if len(request.raw_path) > max_url:
            raise HttpError(414, "uri_too_long", f"Request URL is longer than {max_url} bytes")
        own = _route_limit(request)
        cap = _route_cap(request)
        limit = own if own is not None else min(self._default_limit, cap or self._default_limit)
        request[BODY_LIMIT] = limit
        length = request.content_length
        if length is not None and length > limit:
            raise too_large(limit)
        if own is None and request.body_exists:
            # Read here, within the limit, so no handler ever buffers more; handlers get
            # these bytes back from request.read(), which keeps what it read.
            raw = await _read_within(request, limit)
            max_depth = self._max_depth
            if _is_json(request) and json_too_deep(raw, max_depth):
                raise HttpError(
                    400,
                    "json_too_deep",
                    f"JSON body is nested deeper than {max_depth} levels",
                    hint="flatten the document or raise server.max_json_depth",
                )


def request_limits_middleware(server: ServerConfig) -> Middleware:
    """The limits step alone (request_path.py runs it inside the one composed middleware)."""
    limits = RequestLimits(server)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        await limits.check(request)
        return await handler(request)

    return middleware


async def _read_within(request: web.Request, limit: int) -> bytes:
    # Counted here rather than by request.read(), whose limit is the application's
    # (server.body_limit), not the route's. The stream is read as request.read() reads it:
    # request.content would keep (reify) this stream, not the one handlers get below.
    body = bytearray()
    async for chunk in request._payload.iter_any():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large(limit)
    raw = bytes(body)
    # request.read() keeps the bytes, but handlers also ask can_read_body, which looks at the
    # stream: give them a stream that still holds the body, so reading here changes nothing.
    stream = StreamReader(request.protocol, max(len(raw), 1), loop=asyncio.get_running_loop())
    stream.feed_data(raw)
    stream.feed_eof()
    request._payload = stream
    request._read_bytes = raw  # what request.read() keeps: later calls answer these bytes again
    return raw
