"""The plan stage's values: what a read, a write and a call will do, checked against the schema cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxbase.query_grammar.filters import Filter
from fluxbase.query_grammar.names import JsonStep
from fluxbase.rest.request.action import Action
from fluxbase.rest.request.filters import LogicTree
from fluxbase.rest.request.order import OrderTerm
from fluxbase.rest.request.preferences import ResolutionPreference
from fluxbase.rest.request.ranges import Page
from fluxbase.rest.request.select import (
    Aggregate,
)
from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Function,
    Parameter,
    Relationship,
    Table,
)


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The configuration the plan stage honours (api.* keys)."""

    max_rows: int | None = None
    aggregates_enabled: bool = False
    # The PostgREST major version whose behaviour to follow where versions differ
    # (12 refuses to-many spreads with PGRST119; 13 allows them).
    postgrest_version: int = 13


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column of the relation being read, with an optional JSON path into it."""

    column: Column
    json_path: tuple[JsonStep, ...] = ()

    @property
    def is_json_text(self) -> bool:
        """Ends in `->>`: the value is text, whatever the column's type."""
        return bool(self.json_path) and self.json_path[-1].arrow == "->>"


@dataclass(frozen=True, slots=True)
class OutputField:
    """One key of each result object; `ref` is None only for a bare count()."""

    name: str
    ref: ColumnRef | None
    cast: str | None = None
    aggregate: Aggregate | None = None
    aggregate_cast: str | None = None
    bare_count: bool = False  # `rel(count)` inside an embed


@dataclass(frozen=True, slots=True)
class Condition:
    """A filter on a column of the relation, checked and ready to render."""

    ref: ColumnRef
    filter: Filter


@dataclass(frozen=True, slots=True)
class EmbedNullCheck:
    """`embed=is.null` / `embed=not.is.null`: keep rows without / with a related row."""

    embed: str
    is_null: bool


@dataclass(frozen=True, slots=True)
class Logic:
    tree: LogicTree
    children: tuple[Predicate, ...]


Predicate = Condition | EmbedNullCheck | Logic


@dataclass(frozen=True, slots=True)
class Ordering:
    ref: ColumnRef
    term: OrderTerm
    # `order=directors(last_name)`: the column belongs to this to-one embed's table.
    through: Embed | None = None


@dataclass(frozen=True, slots=True)
class Embed:
    """A related resource read inside its parent's row."""

    name: str  # the key in the parent's object
    relationship: Relationship
    read: ReadPlan
    inner: bool = False
    spread: bool = False
    # `rel()`: joined for its filters (`!inner`, `rel=not.is.null`), never output.
    hidden: bool = False

    @property
    def to_one(self) -> bool:
        return self.relationship.cardinality in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_ONE)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What to read from one relation: output keys, embeds, conditions, order, page."""

    table: Table
    fields: tuple[OutputField, ...]
    embeds: tuple[Embed, ...] = ()
    where: tuple[Predicate, ...] = ()
    order: tuple[Ordering, ...] = ()
    page: Page = field(default_factory=Page)

    @property
    def grouped(self) -> bool:
        """Aggregates here or in a to-one spread (whose aggregates are taken at this level)."""
        return any(f.aggregate is not None for f in self.fields) or any(
            e.spread and e.to_one and e.read.grouped for e in self.embeds
        )


@dataclass(frozen=True, slots=True)
class MutatePlan:
    """An INSERT (or upsert), UPDATE or DELETE on one table, and how to answer it."""

    action: Action
    table: Table
    columns: tuple[Column, ...] = ()  # the body's columns (insert/update)
    where: tuple[Predicate, ...] = ()  # update/delete/put
    conflict: tuple[str, ...] = ()  # upsert target
    resolution: ResolutionPreference | None = None
    missing_default: bool = False
    representation: ReadPlan | None = None  # Prefer: return=representation
    location: bool = False  # Prefer: return=headers-only on POST


JSON_TYPES = frozenset({"json", "jsonb"})


@dataclass(frozen=True, slots=True)
class Argument:
    parameter: Parameter
    value: object  # a str from a query string, any JSON value from a body


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A function call and how to shape its result."""

    function: Function
    arguments: tuple[Argument, ...] = ()
    whole_body: bool = False  # a single unnamed json/jsonb parameter takes the body as is
    # For functions returning rows of a known table: select, filters, order, page, embeds.
    read: ReadPlan | None = None
    read_only: bool = True
    page: Page = field(default_factory=Page)  # limit/offset/Range of set-returning functions

    @property
    def returns_void(self) -> bool:
        return self.function.return_type == "void"
