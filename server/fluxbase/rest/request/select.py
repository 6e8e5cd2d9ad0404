"""`select=`: columns, JSON paths, casts, aggregates, embeds and spreads (PostgREST's select).

Parsed trees are immutable and cached per text, since clients repeat the same few selects.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from fluxbase.query_grammar.cursor import (
    ASCII_DIGITS,
    DEFAULT_LIMITS,
    Cursor,
    GrammarFailure,
    ParseLimits,
    check_bytes,
    describe,
)
from fluxbase.query_grammar.names import MAX_INDEX_DIGITS, FieldPath, read_field_name, read_json_path
from fluxbase.rest.request.syntax import run_grammar


class Aggregate(StrEnum):
    AVG = "avg"
    COUNT = "count"
    MAX = "max"
    MIN = "min"
    SUM = "sum"


class JoinType(StrEnum):
    INNER = "inner"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class SelectStar:
    """`*`: every column the role may read."""


@dataclass(frozen=True, slots=True)
class SelectColumn:
    """A column, JSON path or computed field; `field` is None only for a bare `count()`.

    `cast` applies to the value before aggregating, `aggregate_cast` to the aggregate's result.
    """

    field: FieldPath | None
    alias: str | None = None
    cast: str | None = None
    aggregate: Aggregate | None = None
    aggregate_cast: str | None = None


@dataclass(frozen=True, slots=True)
class SelectEmbed:
    """An embedded resource `alias:rel!hint!inner(...)`, or a spread `...rel(...)`."""

    relation: str
    children: tuple[SelectItem, ...]
    alias: str | None = None
    hint: str | None = None
    join: JoinType | None = None
    spread: bool = False


SelectItem = SelectStar | SelectColumn | SelectEmbed


# --- casts ---------------------------------------------------------------------------------

# Casts reach SQL unquoted, so the grammar admits one word (optionally schema-qualified),
# numeric modifiers and array brackets; multi-word names only from this closed list, since
# free word sequences would let `int or true` through as an expression.
_MULTI_WORD_TYPES = frozenset(
    {
        "bit varying",
        "char varying",
        "character varying",
        "double precision",
        "national character",
        "national character varying",
        "nchar varying",
        "time with time zone",
        "time without time zone",
        "timestamp with time zone",
        "timestamp without time zone",
    }
)
_MULTI_WORD_FIRST = frozenset(name.split(" ", 1)[0] for name in _MULTI_WORD_TYPES)
_AGGREGATE_CALL = re.compile(r"\.(avg|count|max|min|sum)\(\)")
_MAX_TYPE_MODIFIERS = 2
_MAX_ARRAY_DIMENSIONS = 6


def _type_word(cur: Cursor) -> str:
    start = cur.pos
    first = cur.peek()
    if not (first.isalpha() or first == "_"):
        cur.fail(f"unexpected {describe(first)} expecting a type name")
    while cur.peek() and (cur.peek().isalpha() or cur.peek() in "0123456789_$"):
        cur.pos += 1
    word = cur.text[start : cur.pos]
    check_bytes(cur, word, cur.limits.max_identifier_bytes, "type name", start)
    return word


def _type_name(cur: Cursor) -> str:
    words = [_type_word(cur)]
    if words[0].lower() in _MULTI_WORD_FIRST:
        # Greedily take further words while they still lead to a known multi-word type.
        while cur.peek() == " " and (cur.peek(1).isalpha() or cur.peek(1) == "_"):
            save = cur.pos
            cur.pos += 1
            candidate = [*words, _type_word(cur)]
            joined = " ".join(candidate).lower()
            if any(t == joined or t.startswith(joined + " ") for t in _MULTI_WORD_TYPES):
                words = candidate
            else:
                cur.pos = save
                break
        if len(words) > 1:
            name = " ".join(words).lower()
            if name not in _MULTI_WORD_TYPES:
                cur.fail(f"unknown type name {name}")
            return name
    return words[0]


def _cast_type(cur: Cursor) -> str:
    """A type for `::`: `int`, `public.mood`, `numeric(10,2)`, `text[]`, `double precision`."""
    name = _type_name(cur)
    if cur.peek() == "." and not _AGGREGATE_CALL.match(cur.text, cur.pos):
        cur.pos += 1
        name = f"{name}.{_type_name(cur)}"
    if cur.peek() == "(":
        cur.pos += 1
        modifiers: list[str] = []
        while True:
            cur.skip_ws()
            start = cur.pos
            while cur.peek() and cur.peek() in ASCII_DIGITS:
                cur.pos += 1
            digits = cur.text[start : cur.pos]
            if not digits:
                cur.fail(f"unexpected {describe(cur.peek())} expecting a type modifier (digit)")
            if len(digits) > MAX_INDEX_DIGITS:
                cur.fail("type modifier out of range", start)
            modifiers.append(str(int(digits)))
            cur.skip_ws()
            if cur.peek() == "," and len(modifiers) < _MAX_TYPE_MODIFIERS:
                cur.pos += 1
                continue
            cur.expect(")")
            break
        name += f"({','.join(modifiers)})"
    dimensions = 0
    while cur.peek() == "[":
        dimensions += 1
        if dimensions > _MAX_ARRAY_DIMENSIONS:
            cur.fail("too many array dimensions")
        cur.pos += 1
        start = cur.pos
        while cur.peek() and cur.peek() in ASCII_DIGITS:
            cur.pos += 1
        if cur.pos - start > MAX_INDEX_DIGITS:
            cur.fail("array bound out of range", start)
        size = cur.text[start : cur.pos]
        cur.expect("]")
        name += f"[{int(size) if size else ''}]"
    return name


# --- select= -------------------------------------------------------------------------------


class _SelectBudget:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = 0


# Clients send the same few `select` texts over and over, and the parsed tree is immutable, so
# one parse serves every repeat; longer texts are parsed each time, which keeps the cache small.
SELECT_CACHE_SIZE = 512
SELECT_CACHE_MAX_CHARS = 1024


def parse_select(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[SelectItem, ...]:
    """`select=` as a tree of items. An empty value selects no columns, like `rel()`."""
    if len(text) <= SELECT_CACHE_MAX_CHARS:
        return _parse_select_cached(text, limits)
    return _parse_select(text, limits)


def _parse_select(text: str, limits: ParseLimits) -> tuple[SelectItem, ...]:
    def grammar(cur: Cursor) -> tuple[SelectItem, ...]:
        items = _select_forest(cur, 0, _SelectBudget())
        cur.skip_ws()
        cur.expect_end('"," or end of input')
        return items

    return run_grammar("select parameter", text, limits, grammar)


# A text that fails raises each time: errors are not cached, only trees.
_parse_select_cached = functools.lru_cache(maxsize=SELECT_CACHE_SIZE)(_parse_select)


def _select_forest(cur: Cursor, depth: int, budget: _SelectBudget) -> tuple[SelectItem, ...]:
    cur.skip_ws()
    if cur.eof() or cur.peek() == ")":
        return ()
    items: list[SelectItem] = []
    while True:
        budget.items += 1
        if budget.items > cur.limits.max_select_items:
            cur.fail(f"select has more than {cur.limits.max_select_items} items")
        items.append(_select_item(cur, depth, budget))
        cur.skip_ws()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        if cur.eof() or cur.peek() == ")":
            return tuple(items)
        cur.fail(f'unexpected {describe(cur.peek())} expecting "," or ")" or end of input')


def _select_item(cur: Cursor, depth: int, budget: _SelectBudget) -> SelectItem:
    cur.skip_ws()
    if cur.at("..."):
        cur.pos += 3
        relation = read_field_name(cur)
        hint, join = _embed_params(cur)
        if cur.peek() != "(":
            cur.fail(f'unexpected {describe(cur.peek())} expecting "(" after a spread')
        children = _embed_children(cur, depth, budget)
        return SelectEmbed(relation, children, None, hint, join, spread=True)
    if cur.peek() == "*":
        cur.pos += 1
        return SelectStar()

    alias = _optional_alias(cur)
    if cur.at("..."):
        cur.fail("a spread relation cannot have an alias")
    cur.skip_ws()
    if cur.at("count()"):
        cur.pos += len("count()")
        cast = _optional_cast(cur)
        return SelectColumn(None, alias, None, Aggregate.COUNT, cast)

    name = read_field_name(cur)
    if cur.peek() in ("!", "("):
        hint, join = _embed_params(cur)
        if cur.peek() != "(":
            cur.fail(f'unexpected {describe(cur.peek())} expecting "("')
        children = _embed_children(cur, depth, budget)
        return SelectEmbed(name, children, alias, hint, join)

    column = FieldPath(name, read_json_path(cur))
    cast = _optional_cast(cur)
    aggregate: Aggregate | None = None
    aggregate_cast: str | None = None
    match = _AGGREGATE_CALL.match(cur.text, cur.pos)
    if match:
        cur.pos = match.end()
        aggregate = Aggregate(match.group(1))
        aggregate_cast = _optional_cast(cur)
    return SelectColumn(column, alias, cast, aggregate, aggregate_cast)


def _optional_alias(cur: Cursor) -> str | None:
    """`alias:` in front of a field or embed; a lone `:` (not `::`) separates it."""
    save = cur.pos
    try:
        name = read_field_name(cur)
    except GrammarFailure:
        cur.pos = save
        return None
    if cur.peek() == ":" and cur.peek(1) != ":":
        cur.pos += 1
        return name
    cur.pos = save
    return None


def _optional_cast(cur: Cursor) -> str | None:
    if not cur.at("::"):
        return None
    cur.pos += 2
    return _cast_type(cur)


def _embed_params(cur: Cursor) -> tuple[str | None, JoinType | None]:
    hint: str | None = None
    join: JoinType | None = None
    while cur.peek() == "!":
        start = cur.pos
        cur.pos += 1
        name = read_field_name(cur)
        if name in ("inner", "left"):
            if join is not None:
                cur.fail("an embed takes at most one join type (!inner or !left)", start)
            join = JoinType(name)
        else:
            if hint is not None:
                cur.fail("an embed takes at most one hint", start)
            hint = name
    return hint, join


def _embed_children(cur: Cursor, depth: int, budget: _SelectBudget) -> tuple[SelectItem, ...]:
    if depth + 1 > cur.limits.max_select_depth:
        cur.fail(f"select is nested deeper than {cur.limits.max_select_depth} levels")
    cur.expect("(")
    children = _select_forest(cur, depth + 1, budget)
    cur.skip_ws()
    cur.expect(")")
    return children
