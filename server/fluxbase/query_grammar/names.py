"""Names in the query-string grammar: quoted and unquoted field names, JSON paths.

`data->phones->0->>number`: a field name as PostgREST reads it, then `->`/`->>` steps that are
keys or integer indexes. Pure functions over a Cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fluxbase.query_grammar.cursor import ASCII_DIGITS, WS, Cursor, check_bytes, describe


@dataclass(frozen=True, slots=True)
class JsonStep:
    """One `->` / `->>` step of a JSON path: a key, or an integer index when `index` is set."""

    arrow: Literal["->", "->>"]
    key: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A column name plus an optional JSON path (`data->phones->0->>number`)."""

    name: str
    json_path: tuple[JsonStep, ...] = ()


# --- names and JSON paths ------------------------------------------------------------------


def read_quoted(cur: Cursor) -> str:
    """A double-quoted string where a backslash makes the next character literal."""
    start = cur.pos
    cur.expect('"')
    if cur.unterminated_from is not None and start >= cur.unterminated_from:
        cur.fail('unexpected end of input expecting closing quote (")', start)
    chars: list[str] = []
    while True:
        ch = cur.peek()
        if ch == "":
            cur.unterminated_from = start
            cur.fail('unexpected end of input expecting closing quote (")', start)
        cur.pos += 1
        if ch == '"':
            return "".join(chars)
        if ch == "\\":
            escaped = cur.peek()
            if escaped == "":
                cur.unterminated_from = start
                cur.fail('unexpected end of input expecting closing quote (")', start)
            cur.pos += 1
            chars.append(escaped)
        else:
            chars.append(ch)


def read_field_name(cur: Cursor, *, limit: int | None = None, kind: str = "identifier") -> str:
    """A quoted name, or words of name characters joined by `-` (but not `->`)."""
    max_bytes = cur.limits.max_identifier_bytes if limit is None else limit
    cur.skip_ws()
    start = cur.pos
    if cur.peek() == '"':
        name = read_quoted(cur)
    else:
        segments: list[str] = []
        while True:
            seg_start = cur.pos
            cur.skip_name_chars()
            segment = cur.text[seg_start : cur.pos].strip(WS)
            if not segment:
                cur.fail(f"unexpected {describe(cur.peek())} expecting field name (* or [a..z0..9_$])")
            segments.append(segment)
            if cur.peek() == "-" and cur.peek(1) != ">":
                cur.pos += 1
                continue
            break
        name = "-".join(segments)
    if name == "":
        cur.fail("empty name", start)
    check_bytes(cur, name, max_bytes, kind, start)
    return name


_JSON_INDEX_ENDS = ("->", "::", ".", ",", ")")
MAX_INDEX_DIGITS = 9  # PostgreSQL takes an int4 index


def read_json_path(cur: Cursor) -> tuple[JsonStep, ...]:
    steps: list[JsonStep] = []
    while cur.at("->"):
        if len(steps) >= cur.limits.max_json_path:
            cur.fail(f"JSON path has more than {cur.limits.max_json_path} steps")
        arrow: Literal["->", "->>"] = "->>" if cur.at("->>") else "->"
        cur.pos += len(arrow)
        index = _json_index(cur)
        if index is not None:
            steps.append(JsonStep(arrow, str(index), index))
            continue
        key = read_field_name(cur, limit=cur.limits.max_json_key_bytes, kind="JSON key")
        steps.append(JsonStep(arrow, key))
    return tuple(steps)


def _json_index(cur: Cursor) -> int | None:
    """An integer index, recognised only when the path step ends right after its digits."""
    end = cur.pos + (1 if cur.peek() == "-" else 0)
    digits_start = end
    while end < len(cur.text) and cur.text[end] in ASCII_DIGITS:
        end += 1
    if end == digits_start:
        return None
    if end < len(cur.text) and not any(cur.text.startswith(e, end) for e in _JSON_INDEX_ENDS):
        return None
    if end - digits_start > MAX_INDEX_DIGITS:
        cur.fail("JSON array index out of range")
    value = int(cur.text[cur.pos : end])
    cur.pos = end
    return value


def read_field(cur: Cursor) -> FieldPath:
    name = read_field_name(cur)
    path = read_json_path(cur)
    cur.skip_ws()
    return FieldPath(name, path)
