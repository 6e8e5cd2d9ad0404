"""What an API key may be used for: the scope check each service calls before it serves.

A request authenticated by a JWT (anon, service_role or a user's token)
has no scopes to check; one that carries a dashboard-issued key (fbk_...)
may do only what the key's scopes say.  Storage calls
`require_scope(caller, STORAGE)` the same way REST and realtime do.
"""

from __future__ import annotations

from typing import Final

from fluxbase.security.authenticate import Caller

REST_READ: Final = "rest:read"
REST_WRITE: Final = "rest:write"
STORAGE: Final = "storage"
REALTIME: Final = "realtime"
ADMIN: Final = "admin"
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class ScopeError(Exception):
    """The request's API key lacks the scope it needs; `reason` is safe to show (403)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this API key does not have the {scope!r} scope")
        self.scope = scope
        self.reason = str(self)


def rest_scope(method: str) -> str:
    """Reads need rest:read; anything that may write (POST, PATCH, PUT, DELETE, RPC by POST) rest:write."""
    return REST_READ if method.upper() in READ_METHODS else REST_WRITE


def require_scope(caller: Caller, scope: str) -> None:
    """Raises ScopeError when the caller came with an API key that lacks `scope`."""
    key = caller.api_key
    if key is not None and scope not in key.scopes:
        raise ScopeError(scope)
