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
cached. A write's plan depends on its body only through the body's keys when
the body is one JSON object (the columns it writes, in order): those plans are
kept per key list, with their statement's body parameter left to fill in;
arrays, PUT and anything that fails are planned every time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from fluxbase.rest.plan import MutatePlan, ReadPlan
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
# Stands in for the body while a write's statement is built, to find where the body is bound.
_BODY = "\x00fluxbase body\x00"
MAX_WRITE_PLANS = 8  # key lists kept per shape
MAX_WRITE_KEYS = 64  # bodies with more keys are planned every time


@dataclass(frozen=True, slots=True)
class WritePlan:
    plan: MutatePlan
    statement: Statement
    body_at: int | None  # the parameter that holds the body, if any

    def statement_for(self, body: bytes | None) -> Statement:
        params = list(self.statement.params)
        if self.body_at is not None and body is not None:
            params[self.body_at] = body.decode()
        return Statement(self.statement.sql, params)


def write_signature(payload: object, has_body: bool) -> tuple[object, ...] | None:
    """What a write's plan reads of its body: no body, or one object's keys in order; else None."""
    if not has_body:
        return ("none",)
    if isinstance(payload, dict) and len(payload) <= MAX_WRITE_KEYS:
        keys = tuple(payload)
        if sum(len(key) for key in keys) <= MAX_KEY_CHARS:
            return ("object", *keys)
    return None


def build_write_plan(
    plan: MutatePlan, body: bytes | None, build: Callable[[MutatePlan, bytes | None], Statement]
) -> WritePlan | None:
    """The plan with its statement built once around a stand-in body; None if that cannot be reused."""
    statement = build(plan, _BODY.encode() if body is not None else None)
    at = [i for i, value in enumerate(statement.params) if value == _BODY]
    if _BODY in statement.sql or len(at) != (1 if body is not None else 0):
        return None
    return WritePlan(plan, statement, at[0] if at else None)


@dataclass(slots=True)
class Shape:
    """One request shape: its parse, and its read plan for the schema cache it was made with."""

    api: ApiRequest
    planned_with: SchemaCache | None = None
    plan: ReadPlan | None = None
    statement: Statement | None = None
    writes_planned_with: SchemaCache | None = None
    writes: dict[tuple[object, ...], WritePlan] = field(default_factory=dict)

    def read_plan(self, cache: SchemaCache) -> tuple[ReadPlan, Statement] | None:
        """The read plan and a fresh copy of its statement, when planned with this very cache."""
        if self.planned_with is not cache or self.plan is None or self.statement is None:
            return None
        return self.plan, Statement(self.statement.sql, list(self.statement.params))

    def keep_read_plan(self, cache: SchemaCache, plan: ReadPlan, statement: Statement) -> None:
        self.planned_with = cache
        self.plan = plan
        self.statement = Statement(statement.sql, list(statement.params))

    def write_plan(self, cache: SchemaCache, signature: tuple[object, ...]) -> WritePlan | None:
        if self.writes_planned_with is not cache:
            return None
        return self.writes.get(signature)

    def keep_write_plan(self, cache: SchemaCache, signature: tuple[object, ...], plan: WritePlan) -> None:
        if self.writes_planned_with is not cache or len(self.writes) >= MAX_WRITE_PLANS:
            self.writes = {}
            self.writes_planned_with = cache
        self.writes[signature] = plan


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
