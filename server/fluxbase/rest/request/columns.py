"""`columns=` (which body keys an insert or update reads) and `on_conflict=`."""

from __future__ import annotations

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, Cursor, ParseLimits
from fluxbase.query_grammar.names import read_field_name
from fluxbase.rest.request.syntax import run_grammar

# --- columns= and on_conflict= -------------------------------------------------------------


def parse_columns(
    text: str, *, what: str = "columns parameter", limits: ParseLimits = DEFAULT_LIMITS
) -> tuple[str, ...]:
    """`columns=a,b` or postgrest-js's `columns="a","b"`; also used for `on_conflict=`."""

    def grammar(cur: Cursor) -> tuple[str, ...]:
        names: list[str] = []
        while True:
            if len(names) >= cur.limits.max_columns:
                cur.fail(f"more than {cur.limits.max_columns} columns")
            names.append(read_field_name(cur))
            cur.skip_ws()
            if cur.peek() == ",":
                cur.pos += 1
                continue
            cur.expect_end('"," or end of input')
            return tuple(names)

    result = run_grammar(what, text, limits, grammar)
    return result
