"""The cursor every query-string grammar runs on (data API and realtime), and its bounds.

A grammar reads from a Cursor and calls `fail` at the offending position; the caller turns the
GrammarFailure into its own error (PGRST100 for the data API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

# --- limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds that keep a hostile query string from costing more than a normal one."""

    max_query_params: int = 500
    max_filters: int = 100  # top-level filters plus every condition inside logic trees
    max_logic_depth: int = 10
    max_select_depth: int = 10
    max_select_items: int = 1000
    max_in_list: int = 1000
    # PostgreSQL silently truncates longer names, which could then match another object.
    max_identifier_bytes: int = 63
    max_json_key_bytes: int = 1024
    max_json_path: int = 32
    max_order_terms: int = 100
    max_columns: int = 1600  # PostgreSQL's maximum number of columns in a table
    max_header_bytes: int = 8192  # for each of Prefer, Accept and Range
    max_accept_items: int = 50
    max_echo_chars: int = 200  # how much of the offending input an error message repeats


DEFAULT_LIMITS = ParseLimits()


# --- the cursor ----------------------------------------------------------------------------


class GrammarFailure(Exception):
    """A parse failure at a position; entry points turn it into their own error (PGRST100)."""

    def __init__(self, pos: int, details: str) -> None:
        super().__init__(details)
        self.pos = pos
        self.details = details


WS = " \t"
ASCII_DIGITS = "0123456789"


def is_name_char(ch: str) -> bool:
    # Upstream's unquoted field names: letters (any script), ASCII digits, `_`, `$`, space.
    return ch.isalpha() or ch in "0123456789_$ "


# is_name_char's ASCII members, scanned in one step: names are read on every request (each
# select item and filter), and a character-by-character loop was most of the parse time.
_ASCII_NAME_RUN = re.compile(r"[A-Za-z0-9_$ ]*")


def describe(ch: str) -> str:
    """How an error message names the character found (or the end of the text)."""
    return "end of input" if ch == "" else repr(ch)


class Cursor:
    """A position in a text being parsed, with the limits that bound the parse."""

    __slots__ = ("limits", "pos", "text", "unterminated_from")

    def __init__(self, text: str, limits: ParseLimits) -> None:
        self.text = text
        self.pos = 0
        self.limits = limits
        # Once a quote at p has no closing quote, none after p has one either; remembering
        # that keeps retried quoted values (in lists, logic trees) from going quadratic.
        self.unterminated_from: int | None = None

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if 0 <= index < len(self.text) else ""

    def at(self, literal: str) -> bool:
        return self.text.startswith(literal, self.pos)

    def eof(self) -> bool:
        return self.pos >= len(self.text)

    def skip_name_chars(self) -> None:
        """Moves past a run of characters for which is_name_char holds."""
        while self.pos < len(self.text):
            match = _ASCII_NAME_RUN.match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            ch = self.peek()
            if not ch or ch.isascii() or not ch.isalpha():
                return
            self.pos += 1  # a letter of another script

    def skip_ws(self) -> None:
        while self.peek() and self.peek() in WS:
            self.pos += 1

    def expect(self, literal: str) -> None:
        if not self.at(literal):
            self.fail(f'unexpected {describe(self.peek())} expecting "{literal}"')
        self.pos += len(literal)

    def fail(self, details: str, pos: int | None = None) -> NoReturn:
        raise GrammarFailure(self.pos if pos is None else pos, details)

    def expect_end(self, expecting: str) -> None:
        if not self.eof():
            self.fail(f"unexpected {describe(self.peek())} expecting {expecting}")


def check_bytes(cur: Cursor, value: str, limit: int, kind: str, start: int) -> None:
    """Fail at `start` when `value` is longer than `limit` bytes in UTF-8."""
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        cur.fail(f"{kind} is longer than {limit} bytes", start)
