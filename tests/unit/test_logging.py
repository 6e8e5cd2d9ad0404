"""JSON log lines: one object per line, request id, redaction, audit events."""

from __future__ import annotations

import io
import json
import logging

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
