"""Filters of the data API: `col=op.value` keys and values, `and=`/`or=` logic trees.

The operator grammar itself is shared with realtime (`fluxbase.query_grammar.filters`); this
module adds what is the data API's own: embed paths in keys, logic trees, the filter budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, Cursor, ParseLimits
from fluxbase.query_grammar.filters import Filter, read_operation
from fluxbase.query_grammar.names import FieldPath, read_field, read_field_name, read_json_path
from fluxbase.rest.request.syntax import EmbedPath, run_grammar


class LogicOperator(StrEnum):
    AND = "and"
    OR = "or"


@dataclass(frozen=True, slots=True)
class LogicTree:
    operator: LogicOperator
    children: tuple[LogicNode, ...]
    negated: bool = False


LogicNode = Filter | LogicTree


@dataclass(frozen=True, slots=True)
class EmbeddedFilter:
    """A filter and the embed it applies to (`()` is the top-level resource)."""

    path: EmbedPath
    filter: Filter


@dataclass(frozen=True, slots=True)
class EmbeddedLogic:
    path: EmbedPath
    tree: LogicTree


class FilterBudget:
    """Filters counted across a request: top-level ones and every condition of its logic trees."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def take(self, cur: Cursor, limits: ParseLimits) -> None:
        self.used += 1
        if self.used > limits.max_filters:
            cur.fail(f"more than {limits.max_filters} filters")


def parse_filter_key(key: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[EmbedPath, FieldPath]:
    """`actors.data->>x` -> embed path `("actors",)` and the field `data->>x`."""

    def grammar(cur: Cursor) -> tuple[EmbedPath, FieldPath]:
        names = [read_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(read_field_name(cur))
        path = read_json_path(cur)
        cur.skip_ws()
        cur.expect_end('"->", "->>", delimiter (.) or end of input')
        return tuple(names[:-1]), FieldPath(names[-1], path)

    result = run_grammar("tree path", key, limits, grammar)
    return result


def parse_filter_value(field_path: FieldPath, value: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> Filter:
    """`not.eq.5`, `in.(1,2)`, `like(any).{a*,b*}`, `fts(english).cat` on `field_path`."""

    def grammar(cur: Cursor) -> Filter:
        negated, operation = read_operation(cur, in_logic=False)
        cur.expect_end("end of input")
        return Filter(field_path, operation, negated)

    result = run_grammar("filter", value, limits, grammar)
    return result


# --- logic trees ---------------------------------------------------------------------------

_LOGIC_OPEN = re.compile(r"(not\.)?(and|or)\(")


def parse_logic_key(
    key: str, *, limits: ParseLimits = DEFAULT_LIMITS
) -> tuple[EmbedPath, bool, LogicOperator]:
    """`actors.not.or` -> embed path `("actors",)`, negated, OR."""

    def grammar(cur: Cursor) -> tuple[EmbedPath, bool, LogicOperator]:
        names = [read_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(read_field_name(cur))
        cur.expect_end("delimiter (.) or end of input")
        operator = names.pop()
        if operator not in ("and", "or"):
            cur.fail("expecting logic operator (and, or)", 0)
        negated = bool(names) and names[-1] == "not"
        if negated:
            names.pop()
        return tuple(names), negated, LogicOperator(operator)

    result = run_grammar("logic path", key, limits, grammar)
    return result


def parse_logic_tree(
    operator: LogicOperator,
    value: str,
    *,
    negated: bool = False,
    limits: ParseLimits = DEFAULT_LIMITS,
    budget: FilterBudget | None = None,
) -> LogicTree:
    """The value of `or=(a.eq.1,and(b.gt.2,c.is.null))`.

    `budget` counts its conditions against the request's other filters (a fresh one if None).
    """
    if budget is None:
        budget = FilterBudget()
    spent = budget

    def grammar(cur: Cursor) -> LogicTree:
        cur.skip_ws()
        children = _logic_children(cur, 1, spent)
        cur.skip_ws()
        cur.expect_end("end of input")
        return LogicTree(operator, children, negated)

    result = run_grammar("logic tree", value, limits, grammar)
    return result


def _logic_children(cur: Cursor, depth: int, budget: FilterBudget) -> tuple[LogicNode, ...]:
    if depth > cur.limits.max_logic_depth:
        cur.fail(f"logic tree is nested deeper than {cur.limits.max_logic_depth} levels")
    cur.expect("(")
    children: list[LogicNode] = []
    while True:
        cur.skip_ws()
        match = _LOGIC_OPEN.match(cur.text, cur.pos)
        if match:
            cur.pos = match.end() - 1
            nested = _logic_children(cur, depth + 1, budget)
            children.append(LogicTree(LogicOperator(match.group(2)), nested, match.group(1) is not None))
        else:
            budget.take(cur, cur.limits)
            condition_field = read_field(cur)
            cur.expect(".")
            negated, operation = read_operation(cur, in_logic=True)
            children.append(Filter(condition_field, operation, negated))
        cur.skip_ws()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        cur.expect(")")
        return tuple(children)
