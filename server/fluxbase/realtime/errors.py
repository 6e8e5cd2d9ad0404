"""What a realtime client is told when the database cannot serve its message (db/errors.py).

Phoenix replies carry `{status: "error", response: {reason}}`; the reasons are
Supabase Realtime's own `Code: message` strings, which its clients classify as
retryable.  Visibility checks during fan-out never reply: the hub retries them
and fails closed (realtime/hub.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from fluxbase.db.errors import ConnectionLost, DatabaseUnavailable, DatabaseUnreachable, PoolTimeout

UNABLE_TO_CONNECT = "UnableToConnectToProject: Realtime was unable to connect to the project database"

DATABASE_UNAVAILABLE_REASONS: Mapping[type[DatabaseUnavailable], str] = {
    PoolTimeout: "IncreaseConnectionPool: Please increase your connection pool size",
    DatabaseUnreachable: UNABLE_TO_CONNECT,
    ConnectionLost: UNABLE_TO_CONNECT,
}


def database_unavailable_reason(error: DatabaseUnavailable) -> str:
    return DATABASE_UNAVAILABLE_REASONS.get(type(error), UNABLE_TO_CONNECT)
