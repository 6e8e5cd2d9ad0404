"""Structured logging: one JSON object per line, request ids, audit events.

The request id of the request being served travels in a context variable,
so every line logged while serving it (slow queries, audit events) carries it.
The access log, one line per request, is the hot path's only log line: with
the JSON format it is encoded by orjson and written to the same stream
directly (`write_json_line`), the same fields in the same order as the
formatter's, without a LogRecord per request.

Lines logged on the event loop are written when the loop's current pass ends
(`LineWriter`): under load one write() carries the lines of many requests
instead of a system call each. Lines keep their order; an error line, a line
from another thread, and logging.shutdown() (every exit path calls it) write
at once with everything before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
}

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
# Keys whose values are never written, whoever passes them.
_SECRET_KEY_PARTS = ("password", "secret", "token", "apikey", "api_key", "authorization", "cookie")

audit_log = logging.getLogger("fluxbase.audit")


class LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of one event-loop pass together.

    A line logged on a running event loop waits in a list until the loop's current pass
    ends (one call_soon per pass); ERROR and above, lines logged off the loop (threads,
    startup) and flush() write at once, after what waits, so the order stays the order
    of logging.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.add(line, urgent=record.levelno >= logging.ERROR)

    def add(self, line: str, *, urgent: bool = False) -> None:
        with self._lock_held():
            self._waiting.append(line)
            if urgent or not self._schedule():
                self._write_waiting()

    def _schedule(self) -> bool:
        """True when a write at the end of this loop's pass is (already) scheduled."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # no loop in this thread: nothing would ever run the write
        scheduled = self._scheduled_on
        if scheduled is loop:
            return True
        if scheduled is not None and scheduled.is_running():
            return False  # another thread's loop will write its own pass; this line goes now
        # None, or a loop that stopped before its pass ended (asyncio.run returned): this one.
        loop.call_soon(self._flush_pass)
        self._scheduled_on = loop
        return True

    def _flush_pass(self) -> None:
        with self._lock_held():
            self._scheduled_on = None
            self._write_waiting()

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        text = "".join(self._waiting)
        self._waiting.clear()
        # A closed or broken stream must not take the request down (logging never raises).
        with contextlib.suppress(Exception):
            self.stream.write(text)
            self.stream.flush()

    def flush(self) -> None:
        with self._lock_held():
            self._write_waiting()
            super().flush()

    def _lock_held(self) -> Any:
        lock = self.lock
        assert lock is not None  # createLock() ran in Handler.__init__
        return lock


# The handler configure_logging installed for the JSON format: what write_json_line writes to.
_json_handler: LineWriter | None = None


def _redacted(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(part in lowered for part in _SECRET_KEY_PARTS):
        return "[redacted]"
    return value


_second: list[object] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the part up to the second is formatted once a second."""
    second = int(created)
    if _second[0] != second:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: level, time, message, request_id and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "time": _timestamp(record.created),
            "logger": record.name,
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = _redacted(key, value)
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for development (log.format: text)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_redacted(k, v)}"
            for k, v in record.__dict__.items()
            if k not in _RECORD_ATTRIBUTES and not k.startswith("_")
        )
        request_id = request_id_var.get()
        prefix = f"[{request_id}] " if request_id else ""
        line = f"{_LEVEL_NAMES.get(record.levelno, record.levelname)} {prefix}{record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def write_json_line(logger: logging.Logger, level: int, message: str, fields: Mapping[str, Any]) -> bool:
    """Writes what `logger.log(level, message, extra=fields)` would, without `logging`'s machinery.

    Only when logging is configured as JSON on stdout (configure_logging) and nothing else
    listens to the logger (its own handlers, filters, a test's capture): then the line is
    the same, key for key. Returns False when the caller must log the usual way. The
    fields' names must not look secret (they are not redacted here).
    """
    handler = _json_handler
    if handler is None or not logger.isEnabledFor(level):
        return False
    root = logging.root
    if logger.handlers or logger.filters or not logger.propagate:
        return False
    if root.handlers != [handler] or root.filters:
        return False
    entry: dict[str, Any] = {
        "level": _LEVEL_NAMES.get(level, "info"),
        "time": _timestamp(time.time()),
        "logger": logger.name,
    }
    request_id = request_id_var.get()
    if request_id is not None:
        entry["request_id"] = request_id
    entry.update(fields)
    entry["message"] = message
    handler.add(orjson.dumps(entry, default=str).decode() + "\n", urgent=level >= logging.ERROR)
    return True


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    global _json_handler
    handler = LineWriter(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    _json_handler = handler if fmt == "json" else None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # aiohttp's own access log would duplicate ours, in another format.
    logging.getLogger("aiohttp.access").disabled = True


def audit(event: str, *, success: bool = True, **fields: Any) -> None:
    """Writes a security-relevant event as a `log_type: audit` line; secret-looking fields are redacted."""
    extra: Mapping[str, Any] = {"log_type": "audit", "event": event, "success": success, **fields}
    audit_log.info(event, extra=dict(extra))
