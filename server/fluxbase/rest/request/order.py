"""`order=`: terms with direction and nulls placement, also by a to-one embed's column."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, WS, Cursor, ParseLimits, describe
from fluxbase.query_grammar.names import FieldPath, read_field, read_field_name, read_json_path
from fluxbase.rest.request.syntax import EmbedPath, run_grammar


class Direction(StrEnum):
    ASC = "asc"
    DESC = "desc"


class Nulls(StrEnum):
    FIRST = "nullsfirst"
    LAST = "nullslast"


@dataclass(frozen=True, slots=True)
class OrderTerm:
    """One `order=` term; `relation` is set for `rel(col).desc` (order by a to-one embed)."""

    field: FieldPath
    direction: Direction | None = None
    nulls: Nulls | None = None
    relation: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedOrder:
    path: EmbedPath
    terms: tuple[OrderTerm, ...]


# --- order= --------------------------------------------------------------------------------


def parse_order(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[OrderTerm, ...]:
    """`order=age.desc.nullslast,data->>name,directors(last_name).asc`."""

    def grammar(cur: Cursor) -> tuple[OrderTerm, ...]:
        terms: list[OrderTerm] = []
        while True:
            if len(terms) >= cur.limits.max_order_terms:
                cur.fail(f"order has more than {cur.limits.max_order_terms} terms")
            terms.append(_order_term(cur))
            cur.skip_ws()
            if cur.peek() == ",":
                cur.pos += 1
                continue
            cur.expect_end('"," or end of input')
            return tuple(terms)

    result = run_grammar("order", text, limits, grammar)
    return result


def _order_term(cur: Cursor) -> OrderTerm:
    name = read_field_name(cur)
    relation: str | None = None
    if cur.peek() == "(":
        cur.pos += 1
        relation = name
        term_field = read_field(cur)
        cur.expect(")")
    else:
        term_field = FieldPath(name, read_json_path(cur))
    direction: Direction | None = None
    nulls: Nulls | None = None
    if cur.peek() == ".":
        word_start = cur.pos + 1
        word = _order_word(cur)
        if word in ("asc", "desc"):
            direction = Direction(word)
            if cur.peek() == ".":
                word_start = cur.pos + 1
                word = _order_word(cur)
                if word not in ("nullsfirst", "nullslast"):
                    cur.fail(
                        f'unexpected {word[:20]!r} expecting "nullsfirst" or "nullslast"',
                        word_start,
                    )
                nulls = Nulls(word)
        elif word in ("nullsfirst", "nullslast"):
            nulls = Nulls(word)
        else:
            cur.fail(
                f'unexpected {word[:20]!r} expecting "asc", "desc", "nullsfirst" or "nullslast"',
                word_start,
            )
    cur.skip_ws()
    if not (cur.eof() or cur.peek() == ","):
        cur.fail(f'unexpected {describe(cur.peek())} expecting "," or end of input')
    return OrderTerm(term_field, direction, nulls, relation)


def _order_word(cur: Cursor) -> str:
    cur.pos += 1  # the "." before the word
    start = cur.pos
    while cur.peek() and cur.peek() not in ".,":
        cur.pos += 1
    return cur.text[start : cur.pos].rstrip(WS)
