"""postgres_changes filters for realtime: the grammar only (handlers -> hub -> SQL).

Parses a binding's `filter` string (`column=op.value`, comma = AND) into conditions and hands
them to the database as JSON: realtime.visible_changes() evaluates them with the column's type
and collation, as /rest/v1 evaluates the same filter (sql/40_realtime.sql). Nothing here
compares values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

MAX_FILTER_LENGTH: Final = 4096
MAX_CONDITIONS: Final = 16
# Realtime's subscription trigger refuses `in` lists longer than this.
MAX_IN_VALUES: Final = 100


class FilterError(ValueError):
    """The filter cannot be accepted; the message is safe to show to the subscriber."""


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    IS = "is"
    LIKE = "like"
    ILIKE = "ilike"
    ISDISTINCT = "isdistinct"


_PATTERN_OPERATORS: Final = frozenset({Operator.LIKE, Operator.ILIKE})
_IS_KEYWORDS: Final = frozenset({"null", "true", "false", "unknown"})
# Supabase accepts these, but they evaluate arbitrary regular expressions, which we will not
# run on every change (catastrophic backtracking); refusing is clearer than ignoring.
_REFUSED_OPERATORS: Final = frozenset({"match", "imatch"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One `column=[not.]op.value` term. `values` holds the `in` list (None = SQL NULL)."""

    column: str
    operator: Operator
    negated: bool
    value: str | None
    values: tuple[str | None, ...] = ()
    source: str = ""

    def __str__(self) -> str:
        return self.source


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
        return {"c": [_condition_json(condition) for condition in self.conditions]}


def _condition_json(condition: Condition) -> dict[str, Any]:
    item: dict[str, Any] = {"col": condition.column, "op": condition.operator.value, "not": condition.negated}
    if condition.operator is Operator.IN:
        item["vs"] = list(condition.values)
    elif condition.operator in _PATTERN_OPERATORS and condition.value is not None:
        # `*` stands for `%` as in PostgREST, where `%` needs URL-encoding.
        item["v"] = condition.value.replace("*", "%")
    else:
        item["v"] = condition.value
    return item


# --------------------------------------------------------------------------------------------
# Parsing


def parse_filter(text: str) -> Filter:
    """Parse a postgres_changes `filter` string; raises FilterError with a clear message.

    Follows Supabase Realtime: terms are split on commas outside parentheses and double
    quotes and ANDed; `not.` negates; `in.(a,b)` lists use PostgreSQL array-literal quoting;
    a value wrapped in double quotes may contain commas, with backslash escaping `"` and `\\`.
    An empty or blank string is the empty filter, which matches everything.
    """
    if not isinstance(text, str):
        raise FilterError("filter must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        return Filter((), "")
    segments = _split_top_level(text.strip())
    if len(segments) > MAX_CONDITIONS:
        raise FilterError(f"filter has more than {MAX_CONDITIONS} conditions")
    return Filter(tuple(_parse_condition(segment) for segment in segments), text)


def _split_top_level(text: str) -> list[str]:
    segments: list[str] = []
    current: list[str] = []
    depth = 0
    in_quotes = False
    previous = ""
    index = 0
    while index < len(text):
        char = text[index]
        if in_quotes:
            if char == "\\" and index + 1 < len(text):
                current.append(text[index : index + 2])
                index += 2
                previous = ""
                continue
            if char == '"':
                in_quotes = False
            current.append(char)
        elif char == '"' and previous in (".", "(", ","):
            # Like Realtime, a quote opens a quoted value only where a value can start.
            in_quotes = True
            current.append(char)
        elif char == "(":
            depth += 1
            current.append(char)
        elif char == ")":
            depth = max(0, depth - 1)
            current.append(char)
        elif char == "," and depth == 0:
            segments.append("".join(current))
            current = []
            char = ""
        else:
            current.append(char)
        previous = char
        index += 1
    if in_quotes:
        raise FilterError("filter has an unterminated double quote")
    segments.append("".join(current))
    return segments


def _parse_condition(segment: str) -> Condition:
    source = segment.strip()
    if not source:
        raise FilterError("filter must not contain empty conditions (check for extra commas)")
    column, equals, rest = source.partition("=")
    column = column.strip()
    if not equals:
        raise FilterError(f"condition {source!r} has no '=' (expected column=operator.value)")
    if not column:
        raise FilterError(f"condition {source!r} has no column name")
    negated = rest.startswith("not.")
    if negated:
        rest = rest[len("not.") :]
    op_name, dot, raw_value = rest.partition(".")
    if not dot:
        raise FilterError(f"condition {source!r} must look like column=operator.value")
    if op_name in _REFUSED_OPERATORS:
        raise FilterError(f"operator {op_name!r} (regular expressions) is not supported")
    try:
        operator = Operator(op_name)
    except ValueError:
        supported = ", ".join(op.value for op in Operator)
        raise FilterError(f"unsupported operator {op_name!r} in {source!r}; supported: {supported}") from None
    if operator is Operator.IN:
        if len(raw_value) < 2 or raw_value[0] != "(" or raw_value[-1] != ")":
            raise FilterError(f"`in` values must be wrapped in parentheses in {source!r}")
        values = _parse_in_list(raw_value[1:-1], source)
        return Condition(column, operator, negated, None, values, source)
    value = _unquote(raw_value, source)
    if operator is Operator.IS:
        value = value.lower()
        if value not in _IS_KEYWORDS:
            raise FilterError(f"`is` accepts null, true, false or unknown, got {value!r} in {source!r}")
    return Condition(column, operator, negated, value, (), source)


def _unquote(raw: str, source: str) -> str:
    if not raw.startswith('"'):
        return raw
    chars: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            chars.append(raw[index + 1])
            index += 2
            continue
        if char == '"':
            if index != len(raw) - 1:
                raise FilterError(f"text after the closing quote in {source!r}")
            return "".join(chars)
        chars.append(char)
        index += 1
    raise FilterError(f"unterminated quoted value in {source!r}")


def _parse_in_list(inner: str, source: str) -> tuple[str | None, ...]:
    """Elements of `in.(...)`, read as PostgreSQL reads the array literal `{...}` it becomes."""
    values: list[str | None] = []
    if not inner.strip():
        return ()
    index = 0
    length = len(inner)
    while True:
        while index < length and inner[index].isspace():
            index += 1
        if index < length and inner[index] == '"':
            chars: list[str] = []
            index += 1
            while True:
                if index >= length:
                    raise FilterError(f"unterminated quoted `in` value in {source!r}")
                char = inner[index]
                if char == "\\" and index + 1 < length:
                    chars.append(inner[index + 1])
                    index += 2
                elif char == '"':
                    index += 1
                    break
                else:
                    chars.append(char)
                    index += 1
            values.append("".join(chars))
            while index < length and inner[index].isspace():
                index += 1
        else:
            chars = []
            was_escaped = False
            while index < length and inner[index] != ",":
                char = inner[index]
                if char in '{}"':
                    raise FilterError(f"unexpected {char!r} in `in` list of {source!r}")
                if char == "\\" and index + 1 < length:
                    chars.append(inner[index + 1])
                    was_escaped = True
                    index += 2
                    continue
                chars.append(char)
                index += 1
            element = "".join(chars).strip()
            if not element:
                raise FilterError(f"empty value in `in` list of {source!r}")
            # PostgreSQL reads an unquoted NULL in an array literal as SQL NULL.
            values.append(None if element.upper() == "NULL" and not was_escaped else element)
        if len(values) > MAX_IN_VALUES:
            raise FilterError(f"too many values for `in` filter. Maximum {MAX_IN_VALUES}")
        if index >= length:
            return tuple(values)
        if inner[index] != ",":
            raise FilterError(f"expected ',' between `in` values in {source!r}")
        index += 1
