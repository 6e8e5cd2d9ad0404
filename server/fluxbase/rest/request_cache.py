"""Parsed requests and read plans, remembered per request shape (a bounded LRU per process).

The parse stage is a pure function of the method, the route, the query string
and five headers (Range, Prefer, Accept, Content-Type, Accept-/Content-Profile);
the read plan and its statement are pure functions of that parse, the exposed
schema it names and the schema cache. So an app that sends the same request
shapes again and again (every app) parses and plans each shape once.

What a cached plan depends on is what it is keyed on: the parse key, and the
schema cache object it was planned against (a reload replaces that object, so
every plan made before it is planned again). The caller's role and claims are
not part of a plan: privileges and RLS are PostgreSQL's to apply, in the
caller's role-switched transaction, on every request. Errors are never
cached, and neither are writes' plans (they depend on the body).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from fluxbase.rest.plan import ReadPlan
from fluxbase.rest.query import Statement
from fluxbase.rest.request.action import PathKind
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.schema import SchemaCache

# Every header parse_request reads; nothing else of the request reaches the parse stage.
PARSED_HEADERS = ("range", "prefer", "accept", "content-type", "accept-profile", "content-profile")
MAX_ENTRIES = 512
# Longer shapes are parsed every time: the cache holds at most MAX_ENTRIES * this many bytes of keys.
MAX_KEY_CHARS = 2048

Key = tuple[object, ...]


@dataclass(slots=True)
class Shape:
    """One request shape: its parse, and its read plan for the schema cache it was made with."""

    api: ApiRequest
    planned_with: SchemaCache | None = None
    plan: ReadPlan | None = None
    statement: Statement | None = None

    def read_plan(self, cache: SchemaCache) -> tuple[ReadPlan, Statement] | None:
        """The read plan and a fresh copy of its statement, when planned with this very cache."""
        if self.planned_with is not cache or self.plan is None or self.statement is None:
            return None
        return self.plan, Statement(self.statement.sql, list(self.statement.params))

    def keep_read_plan(self, cache: SchemaCache, plan: ReadPlan, statement: Statement) -> None:
        self.planned_with = cache
        self.plan = plan
        self.statement = Statement(statement.sql, list(statement.params))


class RequestCache:
    """A bounded LRU of request shapes."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self._size = size
        self._shapes: OrderedDict[Key, Shape] = OrderedDict()

    @staticmethod
    def key(request: web.Request, path_kind: PathKind, target: str) -> Key | None:
        """What the parse stage reads of a request; None when it is too long to keep."""
        query = request.rel_url.raw_query_string
        size = len(query) + len(target)
        headers = request.headers
        values: list[object] = [request.method, path_kind, target, query]
        for name in PARSED_HEADERS:
            found = tuple(headers.getall(name, ()))
            for value in found:
                size += len(value)
            values.append(found)
        return tuple(values) if size <= MAX_KEY_CHARS else None

    def get(self, key: Key) -> Shape | None:
        shape = self._shapes.get(key)
        if shape is not None:
            self._shapes.move_to_end(key)
        return shape

    def put(self, key: Key, api: ApiRequest) -> Shape:
        shape = self._shapes[key] = Shape(api)
        if len(self._shapes) > self._size:
            self._shapes.popitem(last=False)
        return shape

    def __len__(self) -> int:
        return len(self._shapes)
