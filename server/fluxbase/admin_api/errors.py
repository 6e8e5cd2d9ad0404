"""The admin API's error table: database errors and refusals -> HTTP status, code and message."""

from __future__ import annotations

import asyncpg

from fluxbase.errors import HttpError

# SQLSTATE class or code -> (status, code).  The administrator sees the database's own message:
# they are the one who wrote the SQL.
SQLSTATES: dict[str, tuple[int, str]] = {
    "42": (400, "sql_error"),  # syntax error or access rule violation
    "22": (400, "invalid_value"),
    "23": (409, "constraint_violation"),
    "25006": (400, "read_only_transaction"),
    "57014": (408, "statement_timeout"),
    "42501": (403, "insufficient_privilege"),
}

OUTCOMES: dict[str, tuple[int, str]] = {
    "not_found": (404, "Not found"),
    "email_exists": (409, "An administrator with this email already exists"),
    "user_exists": (409, "A user with this email already exists"),
    "last_admin": (409, "The last administrator cannot be deleted"),
    "internal_schema": (403, "Fluxbase's own schemas cannot be changed here"),
}


def outcome_error(outcome: str, message: str | None = None) -> HttpError:
    status, default = OUTCOMES.get(outcome, (400, outcome.replace("_", " ")))
    return HttpError(status, outcome, message or default)


def database_error(error: asyncpg.PostgresError) -> HttpError:
    sqlstate = error.sqlstate or ""
    status, code = SQLSTATES.get(sqlstate) or SQLSTATES.get(sqlstate[:2]) or (400, "database_error")
    detail = getattr(error, "detail", None)
    hint = getattr(error, "hint", None)
    return HttpError(status, code, str(error).split("\n")[0], details=detail, hint=hint)
