"""Planning reads: select, embeds, filters, order and pages checked against the schema cache."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from fluxbase.query_grammar.filters import Filter, IsValue, OpIs
from fluxbase.query_grammar.names import FieldPath
from fluxbase.rest.errors import (
    ApiError,
    aggregates_not_allowed,
    not_embedded,
    related_order_not_to_one,
    spread_not_to_one,
    table_not_found,
    unacceptable_embed_filter,
)
from fluxbase.rest.plan.model import (
    ColumnRef,
    Condition,
    Embed,
    EmbedNullCheck,
    Logic,
    Ordering,
    OutputField,
    PlanSettings,
    Predicate,
    ReadPlan,
)
from fluxbase.rest.plan.relationships import find_relationship
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.request.filters import LogicNode, LogicTree
from fluxbase.rest.request.order import OrderTerm
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
    SchemaCache,
    Table,
)

# PostgREST suggests a table only when it is this close to the name asked for.
TABLE_HINT_CUTOFF = 0.75


def column_does_not_exist(table: Table, name: str) -> ApiError:
    # PostgREST lets PostgreSQL say this; saying it first keeps unknown names out of SQL.
    return ApiError(400, "42703", f"column {table.name.name}.{name} does not exist")


def resolve_table(cache: SchemaCache, schema: str, name: str) -> Table:
    table = cache.table(schema, name)
    if table is None:
        # PostgREST's "Perhaps you meant" hint names the closest relation; which of the close
        # ones the caller may use is only known to the database, so the handler picks
        # (errors.TableNotFound.with_visible).
        names = [key.name for key in cache.tables if key.schema == schema]
        close = difflib.get_close_matches(name, names, n=5, cutoff=TABLE_HINT_CUTOFF)
        raise table_not_found(schema, name, candidates=tuple(close))
    return table


def plan_read(request: ApiRequest, cache: SchemaCache, schema: str, settings: PlanSettings) -> ReadPlan:
    """The read plan of GET/HEAD on a relation (and of the representation of writes)."""
    table = resolve_table(cache, schema, request.target)
    top_page = request.top_page
    if settings.max_rows is not None and (top_page.limit is None or top_page.limit > settings.max_rows):
        top_page = Page(top_page.offset, settings.max_rows)
    builder = ReadBuilder(request, cache, settings)
    plan = builder.build(table, request.select, (), top_page)
    builder.check_all_paths_used()
    return plan


def _label(item: SelectItem) -> str:
    if isinstance(item, SelectEmbed):
        return item.alias or item.relation
    return ""


class ReadBuilder:
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
                fields.append(self._output_field(table, item, path))
            else:
                embeds.append(self._embed(table, item, path))
        bare_counts = [f for f in fields if f.bare_count]
        if (
            any(f.aggregate is not None and not f.bare_count for f in fields)
            and not self.settings.aggregates_enabled
        ):
            raise aggregates_not_allowed()
        if bare_counts and len(fields) > 1:
            # `rel(count)` is a count of the embedded rows; next to other keys it is a column.
            raise column_does_not_exist(table, "count")
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
        column = table.column(path.name) or self.cache.computed_field(table.name, path.name)
        if column is None:
            raise column_does_not_exist(table, path.name)
        return ColumnRef(column, path.json_path)

    def _output_field(self, table: Table, item: SelectColumn, path: EmbedPath) -> OutputField:
        if item.field is None:  # count()
            return OutputField(
                item.alias or "count", None, aggregate=item.aggregate, aggregate_cast=item.aggregate_cast
            )
        if (
            path
            and item.field.name == "count"
            and not item.field.json_path
            and item.aggregate is None
            and item.cast is None
            and table.column("count") is None
            and self.cache.computed_field(table.name, "count") is None
        ):
            # PostgREST 12's `rel(count)`: the number of related rows, aggregates enabled or not.
            return OutputField(item.alias or "count", None, aggregate=Aggregate.COUNT, bare_count=True)
        ref = self._column(table, item.field)
        name = item.alias
        if name is None:
            last = ref.json_path[-1] if ref.json_path else None
            name = last.key if last is not None else ref.column.name
            if item.aggregate is not None:
                name = item.aggregate.value
        return OutputField(name, ref, item.cast, item.aggregate, item.aggregate_cast)

    def _embed(self, table: Table, item: SelectEmbed, path: EmbedPath) -> Embed:
        relationship = find_relationship(self.cache, table, item.relation, item.hint)
        target = self.cache.tables.get(relationship.target)
        if target is None:
            raise table_not_found(relationship.target.schema, relationship.target.name)
        child_path = (*path, _label(item))
        self.used_paths.add(child_path)
        read = self.build(target, item.children, child_path, Page())
        embed = Embed(
            _label(item),
            relationship,
            read,
            item.join == JoinType.INNER,
            item.spread,
            hidden=not item.children,
        )
        if item.spread and not embed.to_one and self.settings.postgrest_version < 13:
            raise spread_not_to_one(table.name.name, item.relation)
        return embed

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
