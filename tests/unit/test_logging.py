"""JSON log lines: one object per line, request id, redaction, audit events."""

from __future__ import annotations

import io
import json
import logging

import pytest

from fluxbase.observability.logging import JsonFormatter, audit, request_id_var


def capture() -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    return stream, handler


def test_one_json_object_per_line_with_request_id_and_fields() -> None:
    stream, handler = capture()
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("abc123")
    try:
        logger.warning("slow query", extra={"slow_query": True, "duration_ms": 1500})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warn"
    assert entry["request_id"] == "abc123"
    assert entry["slow_query"] is True
    assert entry["duration_ms"] == 1500
    assert entry["message"] == "slow query"


def test_secret_looking_fields_are_redacted() -> None:
    stream, handler = capture()
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("x", extra={"password": "hunter2", "refresh_token": "t", "apikey": "k", "email": "a@b"})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["password"] == entry["refresh_token"] == entry["apikey"] == "[redacted]"
    assert entry["email"] == "a@b"
    assert "hunter2" not in stream.getvalue()


def test_multiline_messages_stay_on_one_line() -> None:
    stream, handler = capture()
    logger = logging.getLogger("test.multiline")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logger.exception("failed\nbadly")
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["error"].endswith("second line")


def test_audit_events_carry_log_type() -> None:
    stream, handler = capture()
    logger = logging.getLogger("fluxbase.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        audit("user.login", success=False, email="a@b", password="nope")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["log_type"] == "audit"
    assert entry["event"] == "user.login"
    assert entry["success"] is False
    assert entry["password"] == "[redacted]"


def test_the_pools_failed_reconnects_log_their_reason_without_a_traceback() -> None:
    """asyncpg logs each failed reconnect of its pool floor with exc_info; while the database
    restarts that is expected, so the line carries the reason, not a traceback."""
    import asyncpg

    import fluxbase.db.pool  # noqa: F401  (installs the filter on asyncpg's logger)

    stream, handler = capture()
    logger = logging.getLogger("asyncpg.pool")
    logger.addHandler(handler)
    try:
        for error in (
            asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
            FileNotFoundError(2, "No such file or directory"),
        ):
            try:
                raise error
            except Exception:
                logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
        try:
            raise ValueError("a bug, not the database")
        except ValueError:
            logger.warning("something else", exc_info=True)
    finally:
        logger.removeHandler(handler)
    first, second, other = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["reason"] == "CannotConnectNowError: the database system is shutting down"
    assert "error" not in first and "Traceback" not in json.dumps(first)
    assert second["reason"].startswith("FileNotFoundError")
    assert "Traceback" in other["error"]  # anything else keeps its traceback


class Connection:
    """Closes as asyncpg's Connection.close does on a socket the server already closed."""

    async def close(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_failed_close_of_a_dead_connection_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """asyncpg closes expired connections in tasks nobody awaits; a backend already gone makes
    that close fail, which asyncio would log with a traceback. It is one warning line instead,
    and any other unretrieved error still reaches the loop's own handler."""
    import asyncio

    from fluxbase.db.pool import quiet_failed_closes

    async def bug() -> None:
        raise ValueError("a bug")

    loop = asyncio.get_running_loop()
    reached: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reached.append(context))
    try:
        quiet_failed_closes(loop)
        quiet_failed_closes(loop)  # once is enough, however many pools start
        with caplog.at_level(logging.WARNING, logger="fluxbase.db"):
            for coro in (Connection().close(), bug()):
                task = loop.create_task(coro)
                await asyncio.wait([task])
                context = {"message": "Task exception was never retrieved", "exception": task.exception()}
                loop.call_exception_handler({**context, "future": task})
    finally:
        loop.set_exception_handler(None)
    [warning] = [r for r in caplog.records if r.name == "fluxbase.db"]
    assert warning.getMessage() == "closing a dead database connection failed"
    assert warning.reason == "BrokenPipeError: [Errno 32] Broken pipe"  # type: ignore[attr-defined]
    assert not warning.exc_info
    assert [type(c["exception"]) for c in reached] == [ValueError]
