"""The filter grammar shared by the data API and realtime: operators and their values.

`[not.]op.value` as PostgREST reads it (eq, neq, gt, gte, lt, lte, like, ilike, match, imatch,
isdistinct, the array and range operators, `in.(...)`, `is.null|not_null|true|false|unknown`,
`fts(lang).words`, `(any)`/`(all)` quantifiers). Pure functions over a Cursor; values stay raw
text, to be bound as parameters and cast by PostgreSQL to the column's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fluxbase.query_grammar.cursor import WS, Cursor, GrammarFailure, check_bytes, describe
from fluxbase.query_grammar.names import FieldPath, read_quoted


class Operator(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"
    ILIKE = "ilike"
    MATCH = "match"
    IMATCH = "imatch"
    ISDISTINCT = "isdistinct"
    CS = "cs"
    CD = "cd"
    OV = "ov"
    SL = "sl"
    SR = "sr"
    NXR = "nxr"
    NXL = "nxl"
    ADJ = "adj"


QUANTIFIABLE_OPERATORS = frozenset(
    {
        Operator.EQ,
        Operator.GT,
        Operator.GTE,
        Operator.LT,
        Operator.LTE,
        Operator.LIKE,
        Operator.ILIKE,
        Operator.MATCH,
        Operator.IMATCH,
    }
)


class Quantifier(StrEnum):
    ANY = "any"
    ALL = "all"


class FtsOperator(StrEnum):
    FTS = "fts"
    PLFTS = "plfts"
    PHFTS = "phfts"
    WFTS = "wfts"


class IsValue(StrEnum):
    NULL = "null"
    NOT_NULL = "not_null"
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OpCompare:
    """A binary operator with one raw value; for like/ilike `*` is already turned into `%`."""

    operator: Operator
    value: str
    quantifier: Quantifier | None = None


@dataclass(frozen=True, slots=True)
class OpIn:
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OpIs:
    value: IsValue


@dataclass(frozen=True, slots=True)
class OpFts:
    operator: FtsOperator
    value: str
    language: str | None = None


Operation = OpCompare | OpIn | OpIs | OpFts


@dataclass(frozen=True, slots=True)
class Filter:
    """`field op value`, possibly negated with `not.`."""

    field: FieldPath
    operation: Operation
    negated: bool = False


# --- reading an operation ------------------------------------------------------------------

OPERATOR_NAMES = frozenset(op.value for op in Operator)
FTS_NAMES = frozenset(op.value for op in FtsOperator)
_IS_VALUES = {value.value: value for value in IsValue}
_LOGIC_STOP = ",)"


def read_operation(cur: Cursor, *, in_logic: bool) -> tuple[bool, Operation]:
    """`[not.]op.value` at the cursor: the negation and the operation.

    Top level (`in_logic` false) the value is the rest of the text; inside a logic tree it
    ends at `,` or `)`.
    """
    negated = False
    if cur.at("not."):
        negated = True
        cur.pos += 4
    start = cur.pos
    while cur.peek() and "a" <= cur.peek() <= "z":
        cur.pos += 1
    name = cur.text[start : cur.pos]
    if name == "in":
        cur.expect(".")
        return negated, OpIn(read_in_list(cur))
    if name == "is":
        cur.expect(".")
        return negated, OpIs(read_is_value(cur, in_logic=in_logic))
    if name in FTS_NAMES:
        language: str | None = None
        if cur.peek() == "(":
            cur.pos += 1
            lang_start = cur.pos
            cur.skip_name_chars()
            language = cur.text[lang_start : cur.pos].strip(WS)
            if not language:
                cur.fail(f"unexpected {describe(cur.peek())} expecting a text search language")
            check_bytes(cur, language, cur.limits.max_identifier_bytes, "language", lang_start)
            cur.expect(")")
        cur.expect(".")
        return negated, OpFts(FtsOperator(name), read_single_value(cur, in_logic), language)
    if name in OPERATOR_NAMES:
        operator = Operator(name)
        quantifier: Quantifier | None = None
        if cur.peek() == "(":
            if operator not in QUANTIFIABLE_OPERATORS:
                cur.fail(f"operator {name} does not take (any) or (all)")
            if cur.at("(any)"):
                quantifier = Quantifier.ANY
            elif cur.at("(all)"):
                quantifier = Quantifier.ALL
            else:
                cur.fail(f'unexpected {describe(cur.peek(1))} expecting "(any)" or "(all)"')
            cur.pos += 5
        cur.expect(".")
        value = read_single_value(cur, in_logic)
        if operator in (Operator.LIKE, Operator.ILIKE):
            value = value.replace("*", "%")
        return negated, OpCompare(operator, value, quantifier)
    if not name:
        cur.fail(f"unexpected {describe(cur.peek())} expecting operator (eq, gt, ...)", start)
    # Upstream reports the position after the operator's delimiter.
    cur.fail(f"unknown single value operator {name}", cur.pos + (1 if cur.peek() == "." else 0))


def read_single_value(cur: Cursor, in_logic: bool) -> str:
    """Top level: the rest of the text, unchanged. In a logic tree: up to `,` or `)`, where a
    quoted value or a `{...}` array literal may contain those characters."""
    if not in_logic:
        value = cur.text[cur.pos :]
        cur.pos = len(cur.text)
        return value
    if cur.peek() == '"':
        save = cur.pos
        try:
            quoted = read_quoted(cur)
        except GrammarFailure:
            cur.pos = save
        else:
            if cur.peek() in ("", ",", ")"):
                return quoted
            cur.pos = save
    if cur.peek() == "{":
        close = cur.text.find("}", cur.pos)
        brace = cur.text.find("{", cur.pos + 1)
        if close != -1 and (brace == -1 or brace > close):
            value = cur.text[cur.pos : close + 1]
            cur.pos = close + 1
            return value
    return read_unquoted_run(cur)


def read_unquoted_run(cur: Cursor) -> str:
    start = cur.pos
    while cur.peek() and cur.peek() not in _LOGIC_STOP:
        cur.pos += 1
    return cur.text[start : cur.pos]


def read_in_list(cur: Cursor) -> tuple[str, ...]:
    cur.skip_ws()
    cur.expect("(")
    values: list[str] = []
    while True:
        if len(values) >= cur.limits.max_in_list:
            cur.fail(f"in list has more than {cur.limits.max_in_list} values")
        element: str | None = None
        if cur.peek() == '"':
            save = cur.pos
            try:
                element = read_quoted(cur)
            except GrammarFailure:
                element = None
            if element is not None and cur.peek() not in (",", ")"):
                element = None
            if element is None:
                cur.pos = save
        if element is None:
            element = read_unquoted_run(cur)
        values.append(element)
        if cur.peek() == ",":
            cur.pos += 1
            continue
        break
    cur.expect(")")
    cur.skip_ws()
    # `in.()` is the empty list.
    return () if values == [""] else tuple(values)


def read_is_value(cur: Cursor, *, in_logic: bool) -> IsValue:
    start = cur.pos
    raw = read_unquoted_run(cur) if in_logic else cur.text[cur.pos :]
    cur.pos = start + len(raw)
    value = _IS_VALUES.get(raw.lower())
    if value is None:
        cur.fail(
            f"unexpected {raw[:20]!r} expecting null or trilean value (null, not_null, unknown, true, false)",
            start,
        )
    return value
