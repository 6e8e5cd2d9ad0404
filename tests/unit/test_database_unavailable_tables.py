"""Each service's table for the database's domain errors (db/errors.py), read without a database."""

from __future__ import annotations

import pytest

from fluxbase.auth.errors import database_unavailable as auth_answer
from fluxbase.db.errors import ConnectionLost, DatabaseUnavailable, DatabaseUnreachable, PoolTimeout
from fluxbase.errors import database_unavailable as fallback_answer
from fluxbase.realtime.errors import database_unavailable_reason
from fluxbase.rest.errors import database_unavailable as rest_answer

ERRORS = [
    PoolTimeout("r-9f1 busy"),
    DatabaseUnreachable("r-9f2 host=db.internal"),
    ConnectionLost("r-9f3 killed"),
]


@pytest.mark.parametrize(
    ("error", "status", "code", "message"),
    [
        (ERRORS[0], 504, "PGRST003", "Timed out acquiring connection from connection pool."),
        (ERRORS[1], 503, "PGRST000", "Database connection error. Retrying the connection."),
        (ERRORS[2], 503, "PGRST001", "Database client error. Retrying the connection."),
    ],
)
def test_the_data_api_answers_as_postgrest(
    error: DatabaseUnavailable, status: int, code: str, message: str
) -> None:
    answer = rest_answer(error)
    assert (answer.status, answer.body()) == (
        status,
        {"code": code, "message": message, "details": None, "hint": None},
    )
    assert dict(answer.headers)["Retry-After"] in {"1", "5"}


@pytest.mark.parametrize("error", ERRORS)
def test_no_answer_leaks_the_reason(error: DatabaseUnavailable) -> None:
    texts = [
        str(rest_answer(error).body()),
        auth_answer(error).message,
        database_unavailable_reason(error),
        str(fallback_answer(error).body()),
    ]
    assert not any(error.reason in text for text in texts)


def test_auth_answers_in_gotrue_words() -> None:
    timeout, unreachable, lost = (auth_answer(e) for e in ERRORS)
    assert (timeout.status, timeout.code) == (504, "request_timeout")
    assert (unreachable.status, unreachable.code) == (503, "unexpected_failure")
    assert (lost.status, lost.code) == (503, "unexpected_failure")


def test_realtime_reasons_are_supabase_realtime_codes() -> None:
    reasons = [database_unavailable_reason(e) for e in ERRORS]
    assert reasons[0].startswith("IncreaseConnectionPool: ")
    assert (
        reasons[1]
        == reasons[2]
        == ("UnableToConnectToProject: Realtime was unable to connect to the project database")
    )


def test_the_fallback_keeps_the_fluxbase_codes() -> None:
    assert [(fallback_answer(e).status, fallback_answer(e).code) for e in ERRORS] == [
        (503, "pool_busy"),
        (503, "database_unavailable"),
        (503, "database_unavailable"),
    ]
