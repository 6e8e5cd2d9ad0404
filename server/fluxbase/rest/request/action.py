"""What a request asks for: the kind of path it names and the action its method means there."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from fluxbase.rest.errors import invalid_rpc_method, unsupported_method
from fluxbase.rest.request.syntax import truncate

PathKind = Literal["relation", "rpc", "root"]


class Action(StrEnum):
    READ = "read"  # GET/HEAD on a relation
    INSERT = "insert"  # POST on a relation (an upsert when Prefer: resolution is set)
    UPDATE = "update"  # PATCH
    UPSERT_ONE = "upsert-one"  # PUT
    DELETE = "delete"
    CALL = "call"  # any method on /rpc/fn
    INFO = "info"  # OPTIONS
    OPENAPI = "openapi"  # GET/HEAD on the root


_RELATION_METHODS: Mapping[str, Action] = {
    "GET": Action.READ,
    "HEAD": Action.READ,
    "POST": Action.INSERT,
    "PATCH": Action.UPDATE,
    "PUT": Action.UPSERT_ONE,
    "DELETE": Action.DELETE,
    "OPTIONS": Action.INFO,
}
_RPC_METHODS: Mapping[str, Action] = {
    "GET": Action.CALL,
    "HEAD": Action.CALL,
    "POST": Action.CALL,
    "OPTIONS": Action.INFO,
}
_ROOT_METHODS: Mapping[str, Action] = {
    "GET": Action.OPENAPI,
    "HEAD": Action.OPENAPI,
    "OPTIONS": Action.INFO,
}
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"})


def action_for(method: str, path_kind: PathKind) -> Action:
    """The action of `method` on this kind of path; PGRST117 or 405 when it has none."""
    if path_kind == "rpc":
        if method not in _RPC_METHODS:
            if method in _KNOWN_METHODS:
                raise invalid_rpc_method(method)
            raise unsupported_method(truncate(method, 20))
        return _RPC_METHODS[method]
    table = _RELATION_METHODS if path_kind == "relation" else _ROOT_METHODS
    if method not in table:
        raise unsupported_method(truncate(method, 20))
    return table[method]
