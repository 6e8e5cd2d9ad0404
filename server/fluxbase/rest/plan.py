"""The plan stage: a parsed request checked against the schema cache (request -> parse -> **plan**).

Pure: every table, column and relationship the request names is looked up
here, so the query stage only ever quotes names the cache vouched for, and
errors about names are answered before PostgreSQL sees anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxbase.query_grammar.filters import Filter, IsValue, OpCompare, Operator, OpIs
from fluxbase.query_grammar.names import FieldPath, JsonStep
from fluxbase.rest.errors import (
    ApiError,
    aggregates_not_allowed,
    column_not_found,
    not_embedded,
    not_implemented,
    pgrst_error,
    related_order_not_to_one,
    table_not_found,
    unacceptable_embed_filter,
)
from fluxbase.rest.request.action import Action
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.request.filters import LogicNode, LogicTree
from fluxbase.rest.request.order import OrderTerm
from fluxbase.rest.request.preferences import MissingPreference, ResolutionPreference, ReturnPreference
from fluxbase.rest.request.ranges import Page
from fluxbase.rest.request.select import (
    Aggregate,
    JoinType,
    SelectColumn,
    SelectEmbed,
    SelectItem,
    SelectStar,
)
from fluxbase.rest.request.syntax import EmbedPath
from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Function,
    Parameter,
    Relationship,
    SchemaCache,
    Table,
    Volatility,
)


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The configuration the plan stage honours (api.* keys)."""

    max_rows: int | None = None
    aggregates_enabled: bool = False


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
        return any(f.aggregate is not None for f in self.fields)


def column_does_not_exist(table: Table, name: str) -> ApiError:
    # PostgREST lets PostgreSQL say this; saying it first keeps unknown names out of SQL.
    return ApiError(400, "42703", f"column {table.name.name}.{name} does not exist")


def resolve_table(cache: SchemaCache, schema: str, name: str) -> Table:
    table = cache.table(schema, name)
    if table is None:
        # PostgREST's "Perhaps you meant" hint: the closest name among the schema's relations.
        names = [key.name for key in cache.tables if key.schema == schema]
        close = difflib.get_close_matches(name, names, n=1)
        raise table_not_found(schema, name, close[0] if close else None)
    return table


def plan_read(request: ApiRequest, cache: SchemaCache, schema: str, settings: PlanSettings) -> ReadPlan:
    """The read plan of GET/HEAD on a relation (and of the representation of writes)."""
    table = resolve_table(cache, schema, request.target)
    top_page = request.top_page
    if settings.max_rows is not None and (top_page.limit is None or top_page.limit > settings.max_rows):
        top_page = Page(top_page.offset, settings.max_rows)
    builder = _ReadBuilder(request, cache, settings)
    plan = builder.build(table, request.select, (), top_page)
    builder.check_all_paths_used()
    return plan


def _label(item: SelectItem) -> str:
    if isinstance(item, SelectEmbed):
        return item.alias or item.relation
    return ""


class _ReadBuilder:
    def __init__(self, request: ApiRequest, cache: SchemaCache, settings: PlanSettings) -> None:
        self.request = request
        self.cache = cache
        self.settings = settings
        self.used_paths: set[EmbedPath] = {()}

    def build(self, table: Table, select: Sequence[SelectItem], path: EmbedPath, page: Page) -> ReadPlan:
        fields: list[OutputField] = []
        embeds: list[Embed] = []
        for item in select or (SelectStar(),):
            if isinstance(item, SelectStar):
                fields.extend(OutputField(c.name, ColumnRef(c)) for c in table.columns.values())
            elif isinstance(item, SelectColumn):
                fields.append(self._output_field(table, item))
            else:
                embeds.append(self._embed(table, item, path))
        if any(f.aggregate is not None for f in fields) and not self.settings.aggregates_enabled:
            raise aggregates_not_allowed()
        embed_names = {e.name for e in embeds}
        where: list[Predicate] = []
        for embedded in self.request.filters:
            if embedded.path == path:
                where.append(self._predicate(table, embedded.filter, embed_names))
        for logic in self.request.logic:
            if logic.path == path:
                where.append(self._logic(table, logic.tree, embed_names))
        order: list[Ordering] = []
        for embedded_order in self.request.order:
            if embedded_order.path == path:
                order.extend(self._ordering(table, term, embeds) for term in embedded_order.terms)
        for embedded_page in self.request.pages:
            if embedded_page.path == path and path:
                page = embedded_page.page
        return ReadPlan(table, tuple(fields), tuple(embeds), tuple(where), tuple(order), page)

    def check_all_paths_used(self) -> None:
        mentioned = (
            [f.path for f in self.request.filters]
            + [t.path for t in self.request.logic]
            + [o.path for o in self.request.order]
            + [p.path for p in self.request.pages]
        )
        for path in mentioned:
            if path not in self.used_paths:
                raise not_embedded(".".join(path))

    def _column(self, table: Table, path: FieldPath) -> ColumnRef:
        column = table.column(path.name)
        if column is None:
            raise column_does_not_exist(table, path.name)
        return ColumnRef(column, path.json_path)

    def _output_field(self, table: Table, item: SelectColumn) -> OutputField:
        if item.field is None:  # count()
            return OutputField(
                item.alias or "count", None, aggregate=item.aggregate, aggregate_cast=item.aggregate_cast
            )
        ref = self._column(table, item.field)
        name = item.alias
        if name is None:
            last = ref.json_path[-1] if ref.json_path else None
            name = last.key if last is not None else ref.column.name
            if item.aggregate is not None:
                name = item.aggregate.value
        return OutputField(name, ref, item.cast, item.aggregate, item.aggregate_cast)

    def _embed(self, table: Table, item: SelectEmbed, path: EmbedPath) -> Embed:
        relationship = self._relationship(table, item.relation, item.hint)
        target = self.cache.tables.get(relationship.target)
        if target is None:
            raise table_not_found(relationship.target.schema, relationship.target.name)
        child_path = (*path, _label(item))
        self.used_paths.add(child_path)
        read = self.build(target, item.children, child_path, Page())
        embed = Embed(_label(item), relationship, read, item.join == JoinType.INNER, item.spread)
        if item.spread and not embed.to_one:
            raise not_implemented(f"spreading a to-many relationship ('{item.relation}') is not supported")
        return embed

    def _relationship(self, table: Table, name: str, hint: str | None) -> Relationship:
        candidates = [
            r
            for r in self.cache.relationships_from(table.name)
            if r.target.name == name
            or (
                r.cardinality in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_ONE) and name in (r.constraint,)
            )
            or (r.cardinality == Cardinality.MANY_TO_ONE and r.source_columns == (name,))
        ]
        if hint is not None:
            candidates = [r for r in candidates if _matches_hint(r, hint)]
        if not candidates:
            raise pgrst_error(
                "PGRST200",
                f"Could not find a relationship between '{table.name.name}' and '{name}' in the schema cache",
                details=f"Searched for a foreign key relationship between '{table.name.name}' and "
                f"'{name}'" + (f" using the hint '{hint}'" if hint else "") + " in the schema "
                f"'{table.name.schema}', but no matches were found.",
                hint="Check the foreign key constraints and try again",
            )
        if len(candidates) > 1:
            raise pgrst_error(
                "PGRST201",
                f"Could not embed because more than one relationship was found for "
                f"'{table.name.name}' and '{name}'",
                details=[
                    {
                        "cardinality": _cardinality_word(r.cardinality),
                        "embedding": f"{r.source.name} with {r.target.name}",
                        "relationship": _describe_relationship(r),
                    }
                    for r in candidates
                ],
                hint=f"Try changing '{name}' to one of the following: "
                + ", ".join(f"'{name}!{r.constraint}'" for r in candidates)
                + ". Find the desired relationship in the 'details' key.",
            )
        return candidates[0]

    def _predicate(self, table: Table, condition: Filter, embed_names: set[str]) -> Predicate:
        name = condition.field.name
        if name in embed_names and not condition.field.json_path:
            operation = condition.operation
            if isinstance(operation, OpIs) and operation.value in (IsValue.NULL, IsValue.NOT_NULL):
                is_null = (operation.value == IsValue.NULL) != condition.negated
                return EmbedNullCheck(name, is_null)
            raise unacceptable_embed_filter(name)
        return Condition(self._column(table, condition.field), condition)

    def _logic(self, table: Table, tree: LogicTree, embed_names: set[str]) -> Logic:
        def child(node: LogicNode) -> Predicate:
            if isinstance(node, LogicTree):
                return self._logic(table, node, embed_names)
            return self._predicate(table, node, embed_names)

        return Logic(tree, tuple(child(node) for node in tree.children))

    def _ordering(self, table: Table, term: OrderTerm, embeds: Sequence[Embed]) -> Ordering:
        if term.relation is None:
            return Ordering(self._column(table, term.field), term)
        embed = next((e for e in embeds if e.name == term.relation), None)
        if embed is None:
            raise not_embedded(term.relation)
        if not embed.to_one:
            raise related_order_not_to_one(table.name.name, term.relation)
        return Ordering(self._column(embed.read.table, term.field), term, embed)


def _matches_hint(relationship: Relationship, hint: str) -> bool:
    if hint == relationship.constraint:
        return True
    if (hint,) in (relationship.source_columns, relationship.target_columns):
        return True
    junction = relationship.junction
    return junction is not None and hint in (
        junction.table.name,
        junction.source_constraint,
        junction.target_constraint,
    )


def _cardinality_word(cardinality: Cardinality) -> str:
    return {
        Cardinality.MANY_TO_ONE: "many-to-one",
        Cardinality.ONE_TO_MANY: "one-to-many",
        Cardinality.ONE_TO_ONE: "one-to-one",
        Cardinality.MANY_TO_MANY: "many-to-many",
    }[cardinality]


def _describe_relationship(r: Relationship) -> str:
    if r.junction is not None:
        return (
            f"{r.junction.table.name} using {r.junction.source_constraint} and {r.junction.target_constraint}"
        )
    source = f"{r.source.name}({', '.join(r.source_columns)})"
    target = f"{r.target.name}({', '.join(r.target_columns)})"
    return f"{r.constraint} using {source} and {target}"


# --- writes ---------------------------------------------------------------------------------


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


def body_columns(table: Table, payload: object, columns_param: tuple[str, ...] | None) -> tuple[Column, ...]:
    """The columns a JSON body writes: `columns=` when given, else the keys every object shares."""
    if columns_param is not None:
        names: Sequence[str] = columns_param
    else:
        objects: list[Any] = payload if isinstance(payload, list) else [payload]
        if not objects:
            return ()
        if not all(isinstance(o, dict) for o in objects):
            raise pgrst_error("PGRST102", "All array elements must be objects")
        first = list(objects[0])
        if any(set(o) != set(first) for o in objects[1:]):
            raise pgrst_error("PGRST102", "All object keys must match")
        names = first
    resolved = []
    for name in names:
        column = table.column(name)
        if column is None:
            raise column_not_found(table.name.name, name)
        resolved.append(column)
    return tuple(resolved)


def plan_mutation(
    request: ApiRequest, cache: SchemaCache, schema: str, settings: PlanSettings, payload: object
) -> MutatePlan:
    table = resolve_table(cache, schema, request.target)
    action = request.action
    builder = _ReadBuilder(request, cache, settings)
    where: tuple[Predicate, ...] = ()
    if action in (Action.UPDATE, Action.DELETE, Action.UPSERT_ONE):
        filtered = builder.build(table, (), (), Page())
        where = filtered.where
    if action in (Action.UPDATE, Action.DELETE) and (
        request.top_page.limit is not None or request.top_page.offset
    ):
        raise not_implemented("limit and offset on PATCH and DELETE are not supported")
    columns: tuple[Column, ...] = ()
    if action in (Action.INSERT, Action.UPDATE, Action.UPSERT_ONE):
        if action == Action.UPDATE and not isinstance(payload, dict):
            raise pgrst_error("PGRST102", "A PATCH body must be a JSON object")
        columns = body_columns(table, payload, request.columns)
        for column in columns:
            if column.generated_always and action != Action.UPSERT_ONE:
                raise ApiError(400, "428C9", f'cannot insert a non-DEFAULT value into column "{column.name}"')
    conflict: tuple[str, ...] = ()
    preferences = request.preferences
    resolution = preferences.resolution if action == Action.INSERT else None
    if action == Action.UPSERT_ONE:
        conflict = _put_key(table, request, payload)
        resolution = ResolutionPreference.MERGE_DUPLICATES
    elif resolution is not None:
        conflict = request.on_conflict or table.primary_key
        if not conflict:
            raise pgrst_error("PGRST127", details="an upsert needs on_conflict= or a primary key")
        for name in conflict:
            if table.column(name) is None:
                raise column_does_not_exist(table, name)
    representation = None
    if preferences.return_ == ReturnPreference.REPRESENTATION:
        representation = builder.build(table, request.select, (), Page())
        representation = ReadPlan(representation.table, representation.fields, representation.embeds)
        builder.used_paths.add(())
    location = action == Action.INSERT and preferences.return_ == ReturnPreference.HEADERS_ONLY
    return MutatePlan(
        action,
        table,
        columns,
        where,
        conflict,
        resolution,
        preferences.missing == MissingPreference.DEFAULT,
        representation,
        location and bool(table.primary_key),
    )


def _put_key(table: Table, request: ApiRequest, payload: object) -> tuple[str, ...]:
    """PUT names one row by its whole primary key with eq filters, and the body must agree."""
    if request.top_page.limit is not None or request.top_page.offset:
        raise pgrst_error("PGRST114")
    pk = table.primary_key
    root = [f.filter for f in request.filters if not f.path]
    eq_filters = {
        f.field.name: f.operation.value
        for f in root
        if isinstance(f.operation, OpCompare) and f.operation.operator == Operator.EQ and not f.negated
    }
    if not pk or request.logic or len(root) != len(pk) or set(eq_filters) != set(pk):
        raise pgrst_error("PGRST105")
    if not isinstance(payload, dict):
        raise pgrst_error("PGRST102", "A PUT body must be a single JSON object")
    for name in pk:
        if name not in payload or str(payload[name]) != eq_filters[name]:
            raise pgrst_error("PGRST115")
    return pk


# --- calls ----------------------------------------------------------------------------------

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

    @property
    def returns_void(self) -> bool:
        return self.function.return_type == "void"


def _single_unnamed_json(function: Function) -> bool:
    parameters = function.parameters
    return len(parameters) == 1 and not parameters[0].name and parameters[0].type in JSON_TYPES


def plan_call(
    request: ApiRequest,
    cache: SchemaCache,
    schema: str,
    settings: PlanSettings,
    payload: object,
) -> CallPlan:
    """Resolves /rpc/{fn} by argument names among the overloads, as PostgREST does."""
    overloads = cache.function_overloads(schema, request.target)
    if request.method in ("GET", "HEAD"):
        given: dict[str, object] = {}
        for name, value in request.rpc_args:
            given[name] = value
    elif isinstance(payload, dict):
        given = dict(payload)
    else:
        given = {}
    names = set(given)
    matches = [
        f
        for f in overloads
        if names <= {p.name for p in f.parameters if p.name}
        and {p.name for p in f.parameters if not p.has_default} <= names
        and not _single_unnamed_json(f)
    ]
    whole_body = False
    if not matches and request.method == "POST":
        matches = [f for f in overloads if _single_unnamed_json(f)]
        whole_body = bool(matches)
    if not matches:
        listed = ", ".join(sorted(names))
        raise pgrst_error(
            "PGRST202",
            f"Could not find the function {schema}.{request.target}({listed}) in the schema cache",
            details=f"Searched for the function {schema}.{request.target} with parameters {listed or 'none'}"
            " or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
        )
    if len(matches) > 1:
        candidates = ", ".join(
            f"{f.name}({', '.join(f'{p.name} => {p.type}' for p in f.parameters)})" for f in matches
        )
        raise pgrst_error(
            "PGRST203",
            f"Could not choose the best candidate function between: {candidates}",
            hint="Try renaming the parameters or the function itself so that overloads differ by name",
        )
    function = matches[0]
    arguments = (
        ()
        if whole_body
        else tuple(Argument(p, given[p.name]) for p in function.parameters if p.name in given)
    )
    read = None
    if function.returns_table is not None:
        table = cache.tables.get(function.returns_table)
        if table is not None:
            builder = _ReadBuilder(request, cache, settings)
            read = builder.build(table, request.select, (), request.top_page)
            builder.check_all_paths_used()
    elif request.filters or request.logic or request.order:
        raise not_implemented("filters and order apply only to functions that return rows of a table")
    read_only = request.method in ("GET", "HEAD") or function.volatility != Volatility.VOLATILE
    return CallPlan(function, arguments, whole_body, read, read_only)
