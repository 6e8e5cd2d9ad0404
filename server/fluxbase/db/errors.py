"""Why the database could not serve a request: the db layer's own exceptions, free of HTTP.

The role-switched transaction raises these instead of asyncpg's connection errors,
so a service tells "no connection" apart from "the statement failed" without knowing
asyncpg.  Each service turns them into its own wire shape (rest/errors.py,
auth/errors.py, realtime/errors.py); routes without a table of their own get the
web layer's fallback (fluxbase/errors.py).  `reason` is for the log, never for clients.
"""

from __future__ import annotations

import asyncpg

# asyncpg's errors that mean the connection, not the statement, failed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    # The server ended the session (pg_terminate_backend, shutdown, crash): the
    # connection is gone even though the SQLSTATE class is 57, not 08.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # The protocol state broke, e.g. the socket closed under a running statement.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.InterfaceError,
)


class DatabaseUnavailable(Exception):
    """The database could not serve this request; nothing is known about the work itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PoolTimeout(DatabaseUnavailable):
    """No pooled connection became free within database.acquire_timeout: busy, not broken."""


class DatabaseUnreachable(DatabaseUnavailable):
    """No connection could be opened: the server is down, refuses, or rejects our login."""


class ConnectionLost(DatabaseUnavailable):
    """The connection broke during the transaction (killed backend, restart, network).

    The transaction did not commit unless the loss came during COMMIT itself.
    """
