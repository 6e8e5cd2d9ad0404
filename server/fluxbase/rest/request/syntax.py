"""Data API request parsing: the shared grammar's failures as PGRST100, and what all parsers use.

Every query-parameter grammar of `rest/request/` runs through `run_grammar`, so a syntax error
always reads as upstream's `"failed to parse <what> (<input>)" (line l, column c)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fluxbase.query_grammar.cursor import Cursor, GrammarFailure, ParseLimits
from fluxbase.rest.errors import ApiError, query_param_error

_T = TypeVar("_T")
# The embeds a parameter applies to, outermost first: `()` is the top-level resource.
EmbedPath = tuple[str, ...]


def run_grammar(what: str, text: str, limits: ParseLimits, parse: Callable[[Cursor], _T]) -> _T:
    """Run a grammar over `text`, reporting failures as upstream's PGRST100 messages."""
    cursor = Cursor(text, limits)
    try:
        return parse(cursor)
    except GrammarFailure as failure:
        raise syntax_error(what, text, failure.pos, failure.details, limits) from None


def syntax_error(what: str, text: str, pos: int, details: str, limits: ParseLimits) -> ApiError:
    """PGRST100 in upstream's words: what failed, the input (cut short), line and column."""
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    shown = text if len(text) <= limits.max_echo_chars else text[: limits.max_echo_chars] + "..."
    quoted = shown.replace("\\", "\\\\").replace('"', '\\"')
    return query_param_error(f'"failed to parse {what} ({quoted})" (line {line}, column {column})', details)


def truncate(text: str, size: int) -> str:
    """`text` cut to `size` characters for an error message, marked with `...` when cut."""
    return text if len(text) <= size else text[:size] + "..."
