"""The SQL renderer shared by reads, writes and calls: names quoted, values bound."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxbase.db.identifiers import quote_ident
from fluxbase.query_grammar.filters import (
    FtsOperator,
    IsValue,
    OpCompare,
    Operator,
    OpFts,
    OpIn,
    OpIs,
    Quantifier,
)
from fluxbase.query_grammar.names import JsonStep
from fluxbase.rest.plan.model import (
    ColumnRef,
    Condition,
    Embed,
    EmbedNullCheck,
    Logic,
    Ordering,
    OutputField,
    Predicate,
    ReadPlan,
)
from fluxbase.rest.request.filters import LogicOperator
from fluxbase.rest.request.order import Direction, Nulls
from fluxbase.rest.request.ranges import Page
from fluxbase.rest.schema import Cardinality, QualifiedName

_COMPARISON = {
    Operator.EQ: "=",
    Operator.NEQ: "<>",
    Operator.GT: ">",
    Operator.GTE: ">=",
    Operator.LT: "<",
    Operator.LTE: "<=",
    Operator.LIKE: "LIKE",
    Operator.ILIKE: "ILIKE",
    Operator.MATCH: "~",
    Operator.IMATCH: "~*",
    Operator.ISDISTINCT: "IS DISTINCT FROM",
    Operator.CS: "@>",
    Operator.CD: "<@",
    Operator.OV: "&&",
    Operator.SL: "<<",
    Operator.SR: ">>",
    Operator.NXR: "&<",
    Operator.NXL: "&>",
    Operator.ADJ: "-|-",
}
_TEXT_PATTERN = frozenset({Operator.LIKE, Operator.ILIKE, Operator.MATCH, Operator.IMATCH})
_TSQUERY = {
    FtsOperator.FTS: "to_tsquery",
    FtsOperator.PLFTS: "plainto_tsquery",
    FtsOperator.PHFTS: "phraseto_tsquery",
    FtsOperator.WFTS: "websearch_to_tsquery",
}
_IS = {
    IsValue.NULL: "IS NULL",
    IsValue.NOT_NULL: "IS NOT NULL",
    IsValue.TRUE: "IS TRUE",
    IsValue.FALSE: "IS FALSE",
    IsValue.UNKNOWN: "IS UNKNOWN",
}
_JSON_TYPES = frozenset({"json", "jsonb"})


# What a function (or the pre-request function) asked of the response, read back last.
RESPONSE_SETTINGS = (
    "nullif(current_setting('response.headers', true), '') AS response_headers, "
    "nullif(current_setting('response.status', true), '') AS response_status"
)


def quote_name(name: QualifiedName) -> str:
    return f"{quote_ident(name.schema)}.{quote_ident(name.name)}"


@dataclass
class Statement:
    """SQL text plus its parameters, in order."""

    sql: str = ""
    params: list[object] = field(default_factory=list)

    def bind(self, value: object) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


class Renderer:
    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._aliases = 0

    def alias(self, relation: str | None = None) -> str:
        """A fresh alias: `films_1` for a relation read inside another (PostgREST's names, which
        PostgreSQL's errors then show), `_pgrst_1` for the statement's own subqueries."""
        self._aliases += 1
        if relation is None:
            return f"_pgrst_{self._aliases}"
        return quote_ident(f"{relation}_{self._aliases}")

    # --- values and expressions -------------------------------------------------------

    def typed_value(self, raw: str, sql_type: str) -> str:
        param = self.statement.bind(raw)
        if sql_type == "text":
            return f"{param}::text"
        return f"({param}::text)::{sql_type}"

    def json_path(self, steps: tuple[JsonStep, ...]) -> str:
        parts = []
        for step in steps:
            if step.index is not None:
                parts.append(f"{step.arrow}{int(step.index)}")
            else:
                parts.append(f"{step.arrow}{self.statement.bind(step.key)}::text")
        return "".join(parts)

    def column(self, alias: str, ref: ColumnRef) -> str:
        if ref.column.computed_by is not None:
            # A computed field: the function applied to the whole row.
            expression = f"{quote_name(ref.column.computed_by)}({alias})"
        else:
            expression = f"{alias}.{quote_ident(ref.column.name)}"
        if not ref.json_path:
            return expression
        if ref.column.base_type not in _JSON_TYPES or ref.column.is_array:
            # Composite and array columns take JSON paths through their JSON form.
            expression = f"to_jsonb({expression})"
        return f"({expression}{self.json_path(ref.json_path)})"

    def value_type(self, ref: ColumnRef) -> str:
        """The type a filter value on this reference is cast to."""
        if not ref.json_path:
            return ref.column.type
        if ref.is_json_text:
            return "text"
        if ref.column.base_type == "json" and not ref.column.is_array:
            return "json"
        return "jsonb"

    # --- predicates -----------------------------------------------------------------------

    def predicate(self, alias: str, predicate: Predicate, embeds: dict[str, tuple[Embed, str]]) -> str:
        if isinstance(predicate, Condition):
            sql = self.condition(alias, predicate)
            return f"NOT ({sql})" if predicate.filter.negated else sql
        if isinstance(predicate, EmbedNullCheck):
            embed, embed_alias = embeds[predicate.embed]
            return self.embed_presence(embed, embed_alias, present=not predicate.is_null)
        joiner = " AND " if predicate.tree.operator == LogicOperator.AND else " OR "
        parts = [self.predicate(alias, child, embeds) for child in predicate.children]
        sql = "(" + (joiner.join(parts) if parts else ("TRUE" if joiner == " AND " else "FALSE")) + ")"
        return f"NOT {sql}" if predicate.tree.negated else sql

    def condition(self, alias: str, condition: Condition) -> str:
        left = self.column(alias, condition.ref)
        operation = condition.filter.operation
        if isinstance(operation, OpIs):
            return f"{left} {_IS[operation.value]}"
        if isinstance(operation, OpIn):
            param = self.statement.bind(list(operation.values))
            return f"{left} = ANY(({param}::text[])::{self.value_type(condition.ref)}[])"
        if isinstance(operation, OpFts):
            return self.full_text(condition.ref, left, operation)
        return self.comparison(condition.ref, left, operation)

    def comparison(self, ref: ColumnRef, left: str, operation: OpCompare) -> str:
        sql_operator = _COMPARISON[operation.operator]
        right_type = "text" if operation.operator in _TEXT_PATTERN else self.value_type(ref)
        if operation.quantifier is not None:
            param = self.statement.bind(operation.value)
            quantifier = "ANY" if operation.quantifier == Quantifier.ANY else "ALL"
            return f"{left} {sql_operator} {quantifier}(({param}::text)::{right_type}[])"
        return f"{left} {sql_operator} {self.typed_value(operation.value, right_type)}"

    def full_text(self, ref: ColumnRef, left: str, operation: OpFts) -> str:
        function = _TSQUERY[operation.operator]
        language = None
        if operation.language is not None:
            language = f"{self.statement.bind(operation.language)}::text::regconfig"
        if ref.column.base_type != "tsvector" or ref.json_path:
            left = f"to_tsvector({language}, {left})" if language else f"to_tsvector({left})"
        query_value = f"{self.statement.bind(operation.value)}::text"
        arguments = f"{language}, {query_value}" if language else query_value
        return f"{left} @@ {function}({arguments})"

    def embed_presence(self, embed: Embed, embed_alias: str, *, present: bool) -> str:
        if embed.to_one:
            # A to-one spread has no body: its row carries a marker instead.
            marker = _PRESENT if embed.spread else "body"
            return f"{embed_alias}.{marker} IS {'NOT ' if present else ''}NULL"
        return f"{embed_alias}.n {'>' if present else '='} 0"

    # --- reads --------------------------------------------------------------------------

    def output(self, alias: str, output: OutputField, *, raw: bool = False) -> str:
        """One output column; `raw` leaves the aggregate to the parent (a to-one spread's)."""
        if output.ref is None:
            expression = "1" if raw else "count(*)"
        else:
            expression = self.column(alias, output.ref)
            if output.cast:
                expression = f"({expression})::{output.cast}"
            if raw:
                return f"{expression} AS {quote_ident(output.name)}"
            if output.aggregate is not None:
                expression = f"{output.aggregate.value}({expression})"
        if output.aggregate_cast:
            expression = f"({expression})::{output.aggregate_cast}"
        return f"{expression} AS {quote_ident(output.name)}"

    def read(
        self,
        plan: ReadPlan,
        *,
        join: tuple[str, Embed] | None = None,
        count_only: bool = False,
        source: str | None = None,
        raw_aggregates: bool = False,
    ) -> str:
        """A SELECT whose output columns are the plan's keys (one row per row read).

        `source` reads from a named CTE (the rows a write returned) or a function call
        instead of the table. The top-level relation is aliased by its own name and
        embedded ones `name_n`, as PostgREST does, so errors name them alike.
        """
        alias = quote_ident(plan.table.name.name) if join is None else self.alias(plan.table.name.name)
        columns: list[str] = []
        joins: list[str] = []
        group_keys: list[str] = []
        embeds: dict[str, tuple[Embed, str]] = {}
        needed = _embeds_needed_for_filtering(plan) if count_only else None
        for embed in plan.embeds:
            if needed is not None and embed.name not in needed:
                continue
            embed_alias = self.alias()
            embeds[embed.name] = (embed, embed_alias)
            joins.append(self.embed_join(alias, embed, embed_alias))
            if count_only or embed.hidden:
                continue
            if embed.spread:
                spread_columns, spread_keys = _spread_columns(embed, embed_alias)
                columns.extend(spread_columns)
                group_keys.extend(spread_keys)
            else:
                columns.append(f"{embed_alias}.body AS {quote_ident(embed.name)}")
        if not count_only:
            columns[:0] = [self.output(alias, f, raw=raw_aggregates) for f in plan.fields]
        conditions = [self.predicate(alias, p, embeds) for p in plan.where]
        for embed, embed_alias in embeds.values():
            # An inner to-one embed already drops rows through its INNER JOIN.
            if embed.inner and not embed.to_one:
                conditions.append(self.embed_presence(embed, embed_alias, present=True))
        relation = source or quote_name(plan.table.name)
        if join is not None:
            parent_alias, parent_embed = join
            function = parent_embed.relationship.function
            if function is not None:
                relation = f"{quote_name(function)}({parent_alias})"
            else:
                conditions.insert(0, self.join_condition(parent_alias, parent_embed, alias))
        sql = f"SELECT {', '.join(columns) or '1'} FROM {relation} AS {alias}"
        if joins:
            sql += " " + " ".join(joins)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        if plan.grouped and not count_only and not raw_aggregates:
            keys = [
                self.column(alias, f.ref) for f in plan.fields if f.aggregate is None and f.ref is not None
            ]
            keys.extend(group_keys)
            if keys:
                sql += " GROUP BY " + ", ".join(keys)
        if plan.order and not count_only:
            sql += " ORDER BY " + ", ".join(self.ordering(alias, o) for o in plan.order)
        if not count_only:
            sql += self.page(plan.page)
        return sql

    def ordering(self, alias: str, ordering: Ordering) -> str:
        if ordering.through is None:
            sql = self.column(alias, ordering.ref)
        else:
            # A to-one embed has at most one row, so a scalar subquery orders by its column.
            through = ordering.through
            related = self.alias(through.read.table.name.name)
            function = through.relationship.function
            if function is not None:
                source, condition = f"{quote_name(function)}({alias})", "TRUE"
            else:
                source = quote_name(through.read.table.name)
                condition = self.join_condition(alias, through, related)
            sql = (
                f"(SELECT {self.column(related, ordering.ref)} FROM {source} AS {related} WHERE {condition})"
            )
        direction, nulls = ordering.term.direction, ordering.term.nulls
        if direction is not None:
            sql += " DESC" if direction == Direction.DESC else " ASC"
        if nulls is not None:
            sql += " NULLS FIRST" if nulls == Nulls.FIRST else " NULLS LAST"
        return sql

    def page(self, page: Page) -> str:
        sql = ""
        if page.limit is not None:
            sql += f" LIMIT {self.statement.bind(page.limit)}::bigint"
        if page.offset:
            sql += f" OFFSET {self.statement.bind(page.offset)}::bigint"
        return sql

    def embed_join(self, parent_alias: str, embed: Embed, embed_alias: str) -> str:
        spread_to_one = embed.spread and embed.to_one
        child = self.read(embed.read, join=(parent_alias, embed), raw_aggregates=spread_to_one)
        kind = "INNER" if embed.inner and embed.to_one else "LEFT"
        if spread_to_one:
            body = f"SELECT _e.*, TRUE AS {_PRESENT} FROM ({child}) AS _e"
        elif embed.spread:
            # PostgREST 13's to-many spread: each key becomes the array of its values.
            arrays = [
                f"coalesce(json_agg(_e.{quote_ident(name)}), '[]') AS {quote_ident(name)}"
                for name in _output_names(embed.read)
            ]
            body = f"SELECT {', '.join([*arrays, 'count(_e) AS n'])} FROM ({child}) AS _e"
        elif embed.to_one:
            body = f"SELECT row_to_json(_e) AS body FROM ({child}) AS _e"
        else:
            body = f"SELECT coalesce(json_agg(_e), '[]') AS body, count(_e) AS n FROM ({child}) AS _e"
        return f"{kind} JOIN LATERAL ({body}) AS {embed_alias} ON TRUE"

    def join_condition(self, parent_alias: str, embed: Embed, child_alias: str) -> str:
        relationship = embed.relationship
        junction = relationship.junction
        if relationship.cardinality == Cardinality.MANY_TO_MANY and junction is not None:
            middle = self.alias()
            pairs = [
                f"{middle}.{quote_ident(j)} = {parent_alias}.{quote_ident(s)}"
                for j, s in zip(junction.source_columns, relationship.source_columns, strict=True)
            ] + [
                f"{middle}.{quote_ident(j)} = {child_alias}.{quote_ident(t)}"
                for j, t in zip(junction.target_columns, relationship.target_columns, strict=True)
            ]
            return (
                f"EXISTS (SELECT 1 FROM {quote_name(junction.table)} AS {middle} WHERE {' AND '.join(pairs)})"
            )
        pairs = [
            f"{child_alias}.{quote_ident(t)} = {parent_alias}.{quote_ident(s)}"
            for s, t in zip(relationship.source_columns, relationship.target_columns, strict=True)
        ]
        return "(" + " AND ".join(pairs) + ")"


_PRESENT = "_pgrst_present"  # marks a joined row of a to-one spread (embed presence filters)


def _output_names(plan: ReadPlan) -> list[str]:
    names = [f.name for f in plan.fields]
    for embed in plan.embeds:
        if not embed.hidden:
            names.extend(_output_names(embed.read) if embed.spread else [embed.name])
    return names


def output_names(plan: ReadPlan) -> list[str]:
    """The keys of each result object, in order (the header of a CSV answer)."""
    return _output_names(plan)


def _spread_columns(embed: Embed, embed_alias: str) -> tuple[list[str], list[str]]:
    """A spread's keys at its parent's level, and the grouping keys they add when aggregating.

    A to-one spread's aggregates are taken here, over the joined rows, grouped by its other
    keys (and the parent's), as PostgREST does; a to-many spread's keys are arrays already.
    """
    columns: list[str] = []
    keys: list[str] = []
    aggregated = {f.name: f for f in embed.read.fields if f.aggregate is not None} if embed.to_one else {}
    for name in _output_names(embed.read):
        expression = f"{embed_alias}.{quote_ident(name)}"
        field = aggregated.get(name)
        if field is not None and field.aggregate is not None:
            expression = f"{field.aggregate.value}({expression})"
            if field.aggregate_cast:
                expression = f"({expression})::{field.aggregate_cast}"
        else:
            keys.append(expression)
        columns.append(f"{expression} AS {quote_ident(name)}")
    return columns, keys


def _embeds_needed_for_filtering(plan: ReadPlan) -> set[str]:
    """The embeds a count must still join: inner ones and those a condition tests."""
    needed = {e.name for e in plan.embeds if e.inner}

    def visit(predicate: Predicate) -> None:
        if isinstance(predicate, EmbedNullCheck):
            needed.add(predicate.embed)
        elif isinstance(predicate, Logic):
            for child in predicate.children:
                visit(child)

    for predicate in plan.where:
        visit(predicate)
    return needed


def explain_statement(statement: Statement, *, json_format: bool, options: tuple[str, ...]) -> Statement:
    """EXPLAIN of a request's statement (Accept: application/vnd.pgrst.plan), same parameters."""
    settings = ["FORMAT JSON" if json_format else "FORMAT TEXT", *(option.upper() for option in options)]
    return Statement(f"EXPLAIN ({', '.join(settings)}) {statement.sql}", list(statement.params))


def function_call(qualified: str) -> str:
    """`schema.fn` (validated by the configuration's pattern) as a quoted call with no arguments."""
    return "SELECT " + ".".join(quote_ident(part) for part in qualified.split(".")) + "()"
