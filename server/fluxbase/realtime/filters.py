"""postgres_changes filters for realtime: the grammar only (handlers -> hub -> SQL).

A binding's `filter` is `column=[not.]op.value`, several joined by commas (AND). Each
`[not.]op.value` is read by the data API's own grammar (query_grammar.filters, as inside an
`and=(...)` tree: a value ends at `,` or `)` unless double-quoted), so a filter means the same
on a channel as on /rest/v1; realtime accepts the operators both share. The conditions go to
the database as JSON: realtime.visible_changes() evaluates them with the column's type and
collation, as /rest/v1 evaluates the same filter (sql/40_realtime.sql). Nothing here compares
values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fluxbase.query_grammar.cursor import Cursor, GrammarFailure, ParseLimits
from fluxbase.query_grammar.filters import OpCompare, Operation, Operator, OpFts, OpIn, OpIs, read_operation

MAX_FILTER_LENGTH: Final = 4096
MAX_CONDITIONS: Final = 16
# Realtime's subscription trigger refuses `in` lists longer than this.
MAX_IN_VALUES: Final = 100
_LIMITS: Final = ParseLimits(max_in_list=MAX_IN_VALUES)

# The operators realtime shares with the data API (plus `in` and `is`).
SUPPORTED_OPERATORS: Final = frozenset(
    {
        Operator.EQ,
        Operator.NEQ,
        Operator.LT,
        Operator.LTE,
        Operator.GT,
        Operator.GTE,
        Operator.LIKE,
        Operator.ILIKE,
        Operator.ISDISTINCT,
    }
)
# Supabase accepts these, but they evaluate arbitrary regular expressions, which we will not
# run on every change (catastrophic backtracking); refusing is clearer than ignoring.
_REGEX_OPERATORS: Final = frozenset({Operator.MATCH, Operator.IMATCH})


class FilterError(ValueError):
    """The filter cannot be accepted; the message is safe to show to the subscriber."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One `column=[not.]op.value` term."""

    column: str
    operation: Operation
    negated: bool = False

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"col": self.column, "not": self.negated}
        operation = self.operation
        if isinstance(operation, OpIn):
            item.update(op="in", vs=list(operation.values))
        elif isinstance(operation, OpIs):
            item.update(op="is", v=operation.value.value)
        elif isinstance(operation, OpCompare):
            # like/ilike: the grammar has already turned `*` into `%`, as for /rest/v1.
            item.update(op=operation.operator.value, v=operation.value)
        return item


@dataclass(frozen=True, slots=True)
class Filter:
    """All conditions of one binding; a record matches when every condition is true.

    `source` is the text it was parsed from: equal texts are one filter, evaluated once.
    """

    conditions: tuple[Condition, ...] = ()
    source: str = ""

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(condition.column for condition in self.conditions)

    def to_json(self) -> dict[str, Any]:
        """The form realtime.visible_changes() and realtime.check_binding() read."""
        return {"c": [condition.to_json() for condition in self.conditions]}


def parse_filter(text: str) -> Filter:
    """Parse a postgres_changes `filter` string; raises FilterError with a clear message.

    An empty or blank string is the empty filter, which matches everything.
    """
    if not isinstance(text, str):
        raise FilterError("filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return Filter((), "")
    cur = Cursor(text, _LIMITS)
    conditions: list[Condition] = []
    while True:
        if len(conditions) == MAX_CONDITIONS:
            raise FilterError(f"filter has more than {MAX_CONDITIONS} conditions")
        conditions.append(_condition(cur))
        cur.skip_ws()
        if cur.eof():
            return Filter(tuple(conditions), text)
        if cur.peek() != ",":
            raise FilterError(f"unexpected {cur.peek()!r} at {cur.pos} (join conditions with ',')")
        cur.pos += 1


def _condition(cur: Cursor) -> Condition:
    start = cur.pos
    equals = cur.text.find("=", start)
    comma = cur.text.find(",", start)
    term = cur.text[start : comma if comma != -1 else len(cur.text)].strip()
    if not term:
        raise FilterError("filter must not contain empty conditions (check for extra commas)")
    if equals == -1 or (comma != -1 and comma < equals):
        raise FilterError(f"condition {term!r} has no '=' (expected column=operator.value)")
    column = cur.text[start:equals].strip()
    if not column:
        raise FilterError(f"condition {term!r} has no column name")
    cur.pos = equals + 1
    try:
        negated, operation = read_operation(cur, in_logic=True)
    except GrammarFailure as failure:
        raise FilterError(f"in {term!r}: {failure.details}") from None
    if isinstance(operation, OpFts) or (
        isinstance(operation, OpCompare) and operation.operator not in SUPPORTED_OPERATORS
    ):
        name = operation.operator.value
        if isinstance(operation, OpCompare) and operation.operator in _REGEX_OPERATORS:
            raise FilterError(f"operator {name!r} (regular expressions) is not supported")
        supported = ", ".join([*sorted(op.value for op in SUPPORTED_OPERATORS), "in", "is"])
        raise FilterError(f"unsupported operator {name!r} in {term!r}; supported: {supported}")
    if isinstance(operation, OpCompare) and operation.quantifier is not None:
        raise FilterError(f"(any)/(all) quantifiers are not supported in {term!r}")
    return Condition(column, operation, negated)
