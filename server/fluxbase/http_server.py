"""The HTTP connection layer under the app: aiohttp's protocol with Fluxbase's connection limits.

Adds what aiohttp lacks for a server facing the internet: a header read
timeout (a client that trickles its request head, slow-loris style, is cut
off `header_read_timeout` after its first byte), and JSON errors for requests
that never reach the app (a request line or header too long, too many
headers, a malformed head) instead of aiohttp's text page and traceback.
Idle keep-alive connections close after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from fluxbase.config import ServerConfig

log = logging.getLogger("fluxbase.http")

# Method, spaces and "HTTP/1.1" around the request target.
REQUEST_LINE_OVERHEAD = 32
# After answering a request whose body was left unread (an early 401 on an upload), read and
# drop at most this much of the rest so the connection can be kept, as Go's net/http does:
# aiohttp would otherwise read and discard whatever the client sends for up to 10 s. A body
# refused as too large (413), or one whose Content-Length says more is coming, is not read at
# all: the connection closes without reading (close_without_reading).
DISCARD_AFTER_RESPONSE = 256 * 1024
DISCARD_SECONDS = 1.0
# How long a connection closed without reading keeps its socket: the answer and a FIN have
# gone out, and the client has this long to read them before unread bytes make the close a
# reset (which can destroy the answer in the client's kernel before the client reads it).
LINGER_SECONDS = 2.0


def handler_settings(server: ServerConfig) -> dict[str, Any]:
    """aiohttp's per-connection limits, from the server configuration."""
    return {
        "keepalive_timeout": server.idle_timeout,
        "max_line_size": server.max_url_length + REQUEST_LINE_OVERHEAD,
        "max_field_size": server.max_header_size,
        "max_headers": server.max_headers,
    }


def _error_body(status: int, exc: BaseException | None, server: ServerConfig) -> tuple[int, str, str]:
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        line = exc.args[0] if exc.args else b""
        # The parser names the limit it hit; the request target is the line that starts with "/".
        target = limit == server.max_url_length + REQUEST_LINE_OVERHEAD != server.max_header_size or (
            isinstance(line, bytes | bytearray) and line.startswith(b"/")
        )
        if target:
            return 414, "uri_too_long", f"Request URL is longer than {server.max_url_length} bytes"
        return 431, "headers_too_large", f"A request header is longer than {server.max_header_size} bytes"
    if isinstance(exc, BadHttpMessage) and "too many headers" in str(exc.message).lower():
        return 431, "too_many_headers", f"Request has more than {server.max_headers} headers"
    if status < 500:
        return status, "bad_request", "Malformed HTTP request"
    return 500, "internal_error", "Internal server error"


class GuardedRequestHandler(RequestHandler):
    """One connection: aiohttp's handler plus the header read timeout and JSON parse errors."""

    def __init__(self, manager: web.Server, *, server_config: ServerConfig, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server_config = server_config
        self._header_timer: asyncio.TimerHandle | None = None

    def _waiting_for_request(self) -> bool:
        # aiohttp's start() parks on _waiter between requests: bytes arriving then begin a head.
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        waiting = self._waiting_for_request()
        super().data_received(data)
        if self._request_count != heads:
            self._cancel_header_timer()
        elif data and waiting and self._header_timer is None:
            self._header_timer = self._loop.call_later(
                self._server_config.header_read_timeout, self._header_timed_out
            )

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._waiting_for_request():
            log.warning(
                "closing a connection that did not send its request headers in time",
                extra={"timeout": self._server_config.header_read_timeout},
            )
            self.force_close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        body = request.content
        if body.is_eof():
            return result
        if resp.status == 413 or _more_to_come(request, body) > DISCARD_AFTER_RESPONSE:
            self._close_without_reading(body)
        elif not await _drained(body):
            self.force_close()
        return result

    def _close_without_reading(self, body: StreamReader) -> None:
        """Ends the connection without reading another byte of the body the server refused.

        Reading it costs the CPU that serves everyone else (a flood of refused bodies would
        still be parsed), and closing at once, with unread bytes, resets the connection, which
        can destroy the answer before the client reads it. So: stop reading, send the answer
        and a FIN, and close LINGER_SECONDS later. The transport is taken from aiohttp, which
        would close it at once.
        """
        transport = self.transport
        if transport is None:
            return
        self.transport = None
        self.force_close()  # marks the connection done; with no transport it closes nothing
        transport.pause_reading()
        if body.exception() is None:
            # What was already read is dropped now, not kept until the close (a flood's worth
            # of lingering connections would otherwise hold a buffer each).
            with contextlib.suppress(RuntimeError):
                body.read_nowait()
        if transport.can_write_eof():
            transport.write_eof()  # after what is buffered: the answer goes out whole
        self._loop.call_later(LINGER_SECONDS, transport.close)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Requests that never reach the app: a line, a header or the head itself refused by the
        # parser. One warning line, no traceback (the client's mistake, not ours).
        status, code, text = _error_body(status, exc, self._server_config)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        level = logging.ERROR if status >= 500 else logging.WARNING
        log.log(level, "request refused before routing", extra={"status": status, "code": code})
        body = {"code": code, "message": text, "details": None, "hint": None}
        response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
        response.force_close()
        return response


def _more_to_come(request: BaseRequest, body: StreamReader) -> int:
    """Bytes of the body the client has yet to send by its Content-Length (0 if chunked)."""
    length = request.content_length
    if length is None:
        return 0
    return max(0, length - body.total_bytes)


async def _drained(body: StreamReader) -> bool:
    """Reads and drops what is left of a body if that is little and quick; True when all was read."""
    dropped = 0
    try:
        async with asyncio.timeout(DISCARD_SECONDS):
            while not body.is_eof() and dropped <= DISCARD_AFTER_RESPONSE:
                dropped += len(await body.readany())
    except TimeoutError:
        return False
    return body.is_eof()


class GuardedServer(web.Server):
    """Makes a GuardedRequestHandler for each connection."""

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        handler_cancellation: bool,
        server_config: ServerConfig,
        **handler_kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            **handler_kwargs,
        )
        self._server_config = server_config
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, loop=asyncio.get_running_loop(), server_config=self._server_config, **self._handler_kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections are GuardedRequestHandlers."""

    def __init__(self, app: web.Application, server: ServerConfig, **kwargs: Any) -> None:
        self._settings = {**handler_settings(server), "access_log": None}
        super().__init__(app, **kwargs, **self._settings)
        self._server_config = server

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # starts the app (cleanup contexts) and freezes it
        return GuardedServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            server_config=self._server_config,
            **self._settings,
        )
