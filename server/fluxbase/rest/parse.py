"""Parse stage of the data API (request -> parse -> plan -> query -> response).

Turns the pieces of an HTTP request into frozen dataclasses. Pure: no I/O, no SQL. Identifiers
stay plain strings for the plan stage to check against the schema cache; values stay raw.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, NoReturn, TypeVar

from fluxbase.rest.errors import (
    ApiError,
    content_type_not_acceptable,
    invalid_preferences,
    invalid_resource_path,
    invalid_rpc_method,
    media_type_error,
    negative_limit,
    put_limit_not_allowed,
    query_param_error,
    range_lower_gt_upper,
    unacceptable_schema,
    unsupported_method,
)

PathKind = Literal["relation", "rpc", "root"]
_T = TypeVar("_T")
EmbedPath = tuple[str, ...]


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


# --- parsed values -------------------------------------------------------------------------


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


class LogicOperator(StrEnum):
    AND = "and"
    OR = "or"


@dataclass(frozen=True, slots=True)
class LogicTree:
    operator: LogicOperator
    children: tuple[LogicNode, ...]
    negated: bool = False


LogicNode = Filter | LogicTree


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
class EmbeddedFilter:
    """A filter and the embed it applies to (`()` is the top-level resource)."""

    path: EmbedPath
    filter: Filter


@dataclass(frozen=True, slots=True)
class EmbeddedLogic:
    path: EmbedPath
    tree: LogicTree


@dataclass(frozen=True, slots=True)
class EmbeddedOrder:
    path: EmbedPath
    terms: tuple[OrderTerm, ...]


@dataclass(frozen=True, slots=True)
class Page:
    """Rows to skip and the most rows to return (None: no limit)."""

    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedPage:
    path: EmbedPath
    page: Page


class CountPreference(StrEnum):
    EXACT = "exact"
    PLANNED = "planned"
    ESTIMATED = "estimated"


class ReturnPreference(StrEnum):
    MINIMAL = "minimal"
    HEADERS_ONLY = "headers-only"
    REPRESENTATION = "representation"


class ResolutionPreference(StrEnum):
    MERGE_DUPLICATES = "merge-duplicates"
    IGNORE_DUPLICATES = "ignore-duplicates"


class MissingPreference(StrEnum):
    DEFAULT = "default"
    NULL = "null"


class HandlingPreference(StrEnum):
    STRICT = "strict"
    LENIENT = "lenient"


class TxPreference(StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Preferences:
    """The `Prefer` header. A preference given twice keeps its first value, as upstream.

    `timezone` is unchecked here: the plan stage validates it against pg_timezone_names, and
    `max_affected` and `tx` are honoured only where the plan stage's configuration allows.
    """

    return_: ReturnPreference | None = None
    count: CountPreference | None = None
    resolution: ResolutionPreference | None = None
    missing: MissingPreference | None = None
    handling: HandlingPreference | None = None
    tx: TxPreference | None = None
    max_affected: int | None = None
    timezone: str | None = None
    invalid: tuple[str, ...] = ()


class MediaKind(StrEnum):
    JSON = "application/json"
    GEOJSON = "application/geo+json"
    CSV = "text/csv"
    TEXT_PLAIN = "text/plain"
    TEXT_XML = "text/xml"
    OPENAPI = "application/openapi+json"
    URLENCODED = "application/x-www-form-urlencoded"
    OCTET_STREAM = "application/octet-stream"
    ANY = "*/*"
    ARRAY_STRIPPED = "application/vnd.pgrst.array+json;nulls=stripped"
    SINGULAR = "application/vnd.pgrst.object+json"
    PLAN = "application/vnd.pgrst.plan"
    OTHER = "other"


class PlanOption(StrEnum):
    ANALYZE = "analyze"
    VERBOSE = "verbose"
    SETTINGS = "settings"
    BUFFERS = "buffers"
    WAL = "wal"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A decoded media type. `mime` is what the client wrote, lower-cased, without parameters."""

    kind: MediaKind
    mime: str
    nulls_stripped: bool = False  # SINGULAR with `;nulls=stripped`
    plan_for: MediaType | None = None  # PLAN: the media type whose plan is asked for
    plan_format: Literal["json", "text"] | None = None
    plan_options: tuple[PlanOption, ...] = ()


class Action(StrEnum):
    READ = "read"  # GET/HEAD on a relation
    INSERT = "insert"  # POST on a relation (an upsert when Prefer: resolution is set)
    UPDATE = "update"  # PATCH
    UPSERT_ONE = "upsert-one"  # PUT
    DELETE = "delete"
    CALL = "call"  # any method on /rpc/fn
    INFO = "info"  # OPTIONS
    OPENAPI = "openapi"  # GET/HEAD on the root


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """Everything the plan stage needs from the request line and headers (not the body)."""

    method: str
    path_kind: PathKind
    target: str
    action: Action
    select: tuple[SelectItem, ...]
    filters: tuple[EmbeddedFilter, ...] = ()
    logic: tuple[EmbeddedLogic, ...] = ()
    order: tuple[EmbeddedOrder, ...] = ()
    pages: tuple[EmbeddedPage, ...] = ()  # limit/offset query parameters, per embed
    top_page: Page = field(default_factory=Page)  # top-level limit/offset combined with Range
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    rpc_args: tuple[tuple[str, str], ...] = ()  # GET /rpc/fn?a=1: parameters that are no filter
    preferences: Preferences = field(default_factory=Preferences)
    accept: MediaType = field(default_factory=lambda: MediaType(MediaKind.JSON, "application/json"))
    content_type: MediaType | None = None  # only for methods that carry a body
    profile: str | None = None  # Accept-Profile or Content-Profile, unchecked

    @property
    def is_read_only(self) -> bool:
        return self.method in ("GET", "HEAD")


# --- the cursor all grammars share ---------------------------------------------------------


class _Fail(Exception):
    """Internal parse failure at a position; entry points turn it into PGRST100."""

    def __init__(self, pos: int, details: str) -> None:
        super().__init__(details)
        self.pos = pos
        self.details = details


_WS = " \t"
_ASCII_DIGITS = "0123456789"


def _is_name_char(ch: str) -> bool:
    # Upstream's unquoted field names: letters (any script), ASCII digits, `_`, `$`, space.
    return ch.isalpha() or ch in "0123456789_$ "


# _is_name_char's ASCII members, scanned in one step: names are read on every request (each
# select item and filter), and a character-by-character loop was most of the parse time.
_ASCII_NAME_RUN = re.compile(r"[A-Za-z0-9_$ ]*")


def _describe(ch: str) -> str:
    return "end of input" if ch == "" else repr(ch)


class _Cursor:
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
        """Moves past a run of characters for which _is_name_char holds."""
        while self.pos < len(self.text):
            match = _ASCII_NAME_RUN.match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            ch = self.peek()
            if not ch or ch.isascii() or not ch.isalpha():
                return
            self.pos += 1  # a letter of another script

    def skip_ws(self) -> None:
        while self.peek() and self.peek() in _WS:
            self.pos += 1

    def expect(self, literal: str) -> None:
        if not self.at(literal):
            self.fail(f'unexpected {_describe(self.peek())} expecting "{literal}"')
        self.pos += len(literal)

    def fail(self, details: str, pos: int | None = None) -> NoReturn:
        raise _Fail(self.pos if pos is None else pos, details)

    def expect_end(self, expecting: str) -> None:
        if not self.eof():
            self.fail(f"unexpected {_describe(self.peek())} expecting {expecting}")


def _run(what: str, text: str, limits: ParseLimits, parse: Callable[[_Cursor], _T]) -> _T:
    """Run a grammar over `text`, reporting failures as upstream's PGRST100 messages."""
    cursor = _Cursor(text, limits)
    try:
        return parse(cursor)
    except _Fail as failure:
        raise _syntax_error(what, text, failure.pos, failure.details, limits) from None


def _syntax_error(what: str, text: str, pos: int, details: str, limits: ParseLimits) -> ApiError:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    shown = text if len(text) <= limits.max_echo_chars else text[: limits.max_echo_chars] + "..."
    quoted = shown.replace("\\", "\\\\").replace('"', '\\"')
    return query_param_error(f'"failed to parse {what} ({quoted})" (line {line}, column {column})', details)


def _check_bytes(cur: _Cursor, value: str, limit: int, kind: str, start: int) -> None:
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        cur.fail(f"{kind} is longer than {limit} bytes", start)


# --- names, JSON paths and casts -----------------------------------------------------------


def _quoted(cur: _Cursor) -> str:
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


def _field_name(cur: _Cursor, *, limit: int | None = None, kind: str = "identifier") -> str:
    """A quoted name, or words of name characters joined by `-` (but not `->`)."""
    max_bytes = cur.limits.max_identifier_bytes if limit is None else limit
    cur.skip_ws()
    start = cur.pos
    if cur.peek() == '"':
        name = _quoted(cur)
    else:
        segments: list[str] = []
        while True:
            seg_start = cur.pos
            cur.skip_name_chars()
            segment = cur.text[seg_start : cur.pos].strip(_WS)
            if not segment:
                cur.fail(f"unexpected {_describe(cur.peek())} expecting field name (* or [a..z0..9_$])")
            segments.append(segment)
            if cur.peek() == "-" and cur.peek(1) != ">":
                cur.pos += 1
                continue
            break
        name = "-".join(segments)
    if name == "":
        cur.fail("empty name", start)
    _check_bytes(cur, name, max_bytes, kind, start)
    return name


_JSON_INDEX_ENDS = ("->", "::", ".", ",", ")")
_MAX_INDEX_DIGITS = 9  # PostgreSQL takes an int4 index


def _json_path(cur: _Cursor) -> tuple[JsonStep, ...]:
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
        key = _field_name(cur, limit=cur.limits.max_json_key_bytes, kind="JSON key")
        steps.append(JsonStep(arrow, key))
    return tuple(steps)


def _json_index(cur: _Cursor) -> int | None:
    """An integer index, recognised only when the path step ends right after its digits."""
    end = cur.pos + (1 if cur.peek() == "-" else 0)
    digits_start = end
    while end < len(cur.text) and cur.text[end] in _ASCII_DIGITS:
        end += 1
    if end == digits_start:
        return None
    if end < len(cur.text) and not any(cur.text.startswith(e, end) for e in _JSON_INDEX_ENDS):
        return None
    if end - digits_start > _MAX_INDEX_DIGITS:
        cur.fail("JSON array index out of range")
    value = int(cur.text[cur.pos : end])
    cur.pos = end
    return value


def _field(cur: _Cursor) -> FieldPath:
    name = _field_name(cur)
    path = _json_path(cur)
    cur.skip_ws()
    return FieldPath(name, path)


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


def _type_word(cur: _Cursor) -> str:
    start = cur.pos
    first = cur.peek()
    if not (first.isalpha() or first == "_"):
        cur.fail(f"unexpected {_describe(first)} expecting a type name")
    while cur.peek() and (cur.peek().isalpha() or cur.peek() in "0123456789_$"):
        cur.pos += 1
    word = cur.text[start : cur.pos]
    _check_bytes(cur, word, cur.limits.max_identifier_bytes, "type name", start)
    return word


def _type_name(cur: _Cursor) -> str:
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


def _cast_type(cur: _Cursor) -> str:
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
            while cur.peek() and cur.peek() in _ASCII_DIGITS:
                cur.pos += 1
            digits = cur.text[start : cur.pos]
            if not digits:
                cur.fail(f"unexpected {_describe(cur.peek())} expecting a type modifier (digit)")
            if len(digits) > _MAX_INDEX_DIGITS:
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
        while cur.peek() and cur.peek() in _ASCII_DIGITS:
            cur.pos += 1
        if cur.pos - start > _MAX_INDEX_DIGITS:
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
    def grammar(cur: _Cursor) -> tuple[SelectItem, ...]:
        items = _select_forest(cur, 0, _SelectBudget())
        cur.skip_ws()
        cur.expect_end('"," or end of input')
        return items

    return _run("select parameter", text, limits, grammar)


# A text that fails raises each time: errors are not cached, only trees.
_parse_select_cached = functools.lru_cache(maxsize=SELECT_CACHE_SIZE)(_parse_select)


def _select_forest(cur: _Cursor, depth: int, budget: _SelectBudget) -> tuple[SelectItem, ...]:
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
        cur.fail(f'unexpected {_describe(cur.peek())} expecting "," or ")" or end of input')


def _select_item(cur: _Cursor, depth: int, budget: _SelectBudget) -> SelectItem:
    cur.skip_ws()
    if cur.at("..."):
        cur.pos += 3
        relation = _field_name(cur)
        hint, join = _embed_params(cur)
        if cur.peek() != "(":
            cur.fail(f'unexpected {_describe(cur.peek())} expecting "(" after a spread')
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

    name = _field_name(cur)
    if cur.peek() in ("!", "("):
        hint, join = _embed_params(cur)
        if cur.peek() != "(":
            cur.fail(f'unexpected {_describe(cur.peek())} expecting "("')
        children = _embed_children(cur, depth, budget)
        return SelectEmbed(name, children, alias, hint, join)

    column = FieldPath(name, _json_path(cur))
    cast = _optional_cast(cur)
    aggregate: Aggregate | None = None
    aggregate_cast: str | None = None
    match = _AGGREGATE_CALL.match(cur.text, cur.pos)
    if match:
        cur.pos = match.end()
        aggregate = Aggregate(match.group(1))
        aggregate_cast = _optional_cast(cur)
    return SelectColumn(column, alias, cast, aggregate, aggregate_cast)


def _optional_alias(cur: _Cursor) -> str | None:
    """`alias:` in front of a field or embed; a lone `:` (not `::`) separates it."""
    save = cur.pos
    try:
        name = _field_name(cur)
    except _Fail:
        cur.pos = save
        return None
    if cur.peek() == ":" and cur.peek(1) != ":":
        cur.pos += 1
        return name
    cur.pos = save
    return None


def _optional_cast(cur: _Cursor) -> str | None:
    if not cur.at("::"):
        return None
    cur.pos += 2
    return _cast_type(cur)


def _embed_params(cur: _Cursor) -> tuple[str | None, JoinType | None]:
    hint: str | None = None
    join: JoinType | None = None
    while cur.peek() == "!":
        start = cur.pos
        cur.pos += 1
        name = _field_name(cur)
        if name in ("inner", "left"):
            if join is not None:
                cur.fail("an embed takes at most one join type (!inner or !left)", start)
            join = JoinType(name)
        else:
            if hint is not None:
                cur.fail("an embed takes at most one hint", start)
            hint = name
    return hint, join


def _embed_children(cur: _Cursor, depth: int, budget: _SelectBudget) -> tuple[SelectItem, ...]:
    if depth + 1 > cur.limits.max_select_depth:
        cur.fail(f"select is nested deeper than {cur.limits.max_select_depth} levels")
    cur.expect("(")
    children = _select_forest(cur, depth + 1, budget)
    cur.skip_ws()
    cur.expect(")")
    return children


# --- filters -------------------------------------------------------------------------------

_OPERATOR_NAMES = frozenset(op.value for op in Operator)
_FTS_NAMES = frozenset(op.value for op in FtsOperator)
_IS_VALUES = {value.value: value for value in IsValue}
_LOGIC_STOP = ",)"


class _FilterBudget:
    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def take(self, cur: _Cursor, limits: ParseLimits) -> None:
        self.used += 1
        if self.used > limits.max_filters:
            cur.fail(f"more than {limits.max_filters} filters")


def parse_filter_key(key: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[EmbedPath, FieldPath]:
    """`actors.data->>x` -> embed path `("actors",)` and the field `data->>x`."""

    def grammar(cur: _Cursor) -> tuple[EmbedPath, FieldPath]:
        names = [_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(_field_name(cur))
        path = _json_path(cur)
        cur.skip_ws()
        cur.expect_end('"->", "->>", delimiter (.) or end of input')
        return tuple(names[:-1]), FieldPath(names[-1], path)

    result = _run("tree path", key, limits, grammar)
    return result


def parse_filter_value(field_path: FieldPath, value: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> Filter:
    """`not.eq.5`, `in.(1,2)`, `like(any).{a*,b*}`, `fts(english).cat` on `field_path`."""

    def grammar(cur: _Cursor) -> Filter:
        negated, operation = _op_expr(cur, in_logic=False)
        cur.expect_end("end of input")
        return Filter(field_path, operation, negated)

    result = _run("filter", value, limits, grammar)
    return result


def _op_expr(cur: _Cursor, *, in_logic: bool) -> tuple[bool, Operation]:
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
        return negated, OpIn(_in_list(cur))
    if name == "is":
        cur.expect(".")
        return negated, OpIs(_is_value(cur, in_logic=in_logic))
    if name in _FTS_NAMES:
        language: str | None = None
        if cur.peek() == "(":
            cur.pos += 1
            lang_start = cur.pos
            cur.skip_name_chars()
            language = cur.text[lang_start : cur.pos].strip(_WS)
            if not language:
                cur.fail(f"unexpected {_describe(cur.peek())} expecting a text search language")
            _check_bytes(cur, language, cur.limits.max_identifier_bytes, "language", lang_start)
            cur.expect(")")
        cur.expect(".")
        return negated, OpFts(FtsOperator(name), _single_value(cur, in_logic), language)
    if name in _OPERATOR_NAMES:
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
                cur.fail(f'unexpected {_describe(cur.peek(1))} expecting "(any)" or "(all)"')
            cur.pos += 5
        cur.expect(".")
        value = _single_value(cur, in_logic)
        if operator in (Operator.LIKE, Operator.ILIKE):
            value = value.replace("*", "%")
        return negated, OpCompare(operator, value, quantifier)
    if not name:
        cur.fail(f"unexpected {_describe(cur.peek())} expecting operator (eq, gt, ...)", start)
    # Upstream reports the position after the operator's delimiter.
    cur.fail(f"unknown single value operator {name}", cur.pos + (1 if cur.peek() == "." else 0))


def _single_value(cur: _Cursor, in_logic: bool) -> str:
    """Top level: the rest of the text, unchanged. In a logic tree: up to `,` or `)`, where a
    quoted value or a `{...}` array literal may contain those characters."""
    if not in_logic:
        value = cur.text[cur.pos :]
        cur.pos = len(cur.text)
        return value
    if cur.peek() == '"':
        save = cur.pos
        try:
            quoted = _quoted(cur)
        except _Fail:
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
    return _unquoted_run(cur)


def _unquoted_run(cur: _Cursor) -> str:
    start = cur.pos
    while cur.peek() and cur.peek() not in _LOGIC_STOP:
        cur.pos += 1
    return cur.text[start : cur.pos]


def _in_list(cur: _Cursor) -> tuple[str, ...]:
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
                element = _quoted(cur)
            except _Fail:
                element = None
            if element is not None and cur.peek() not in (",", ")"):
                element = None
            if element is None:
                cur.pos = save
        if element is None:
            element = _unquoted_run(cur)
        values.append(element)
        if cur.peek() == ",":
            cur.pos += 1
            continue
        break
    cur.expect(")")
    cur.skip_ws()
    # `in.()` is the empty list.
    return () if values == [""] else tuple(values)


def _is_value(cur: _Cursor, *, in_logic: bool) -> IsValue:
    start = cur.pos
    raw = _unquoted_run(cur) if in_logic else cur.text[cur.pos :]
    cur.pos = start + len(raw)
    value = _IS_VALUES.get(raw.lower())
    if value is None:
        cur.fail(
            f"unexpected {raw[:20]!r} expecting null or trilean value (null, not_null, unknown, true, false)",
            start,
        )
    return value


# --- logic trees ---------------------------------------------------------------------------

_LOGIC_OPEN = re.compile(r"(not\.)?(and|or)\(")


def parse_logic_key(
    key: str, *, limits: ParseLimits = DEFAULT_LIMITS
) -> tuple[EmbedPath, bool, LogicOperator]:
    """`actors.not.or` -> embed path `("actors",)`, negated, OR."""

    def grammar(cur: _Cursor) -> tuple[EmbedPath, bool, LogicOperator]:
        names = [_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(_field_name(cur))
        cur.expect_end("delimiter (.) or end of input")
        operator = names.pop()
        if operator not in ("and", "or"):
            cur.fail("expecting logic operator (and, or)", 0)
        negated = bool(names) and names[-1] == "not"
        if negated:
            names.pop()
        return tuple(names), negated, LogicOperator(operator)

    result = _run("logic path", key, limits, grammar)
    return result


def parse_logic_tree(
    operator: LogicOperator,
    value: str,
    *,
    negated: bool = False,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> LogicTree:
    """The value of `or=(a.eq.1,and(b.gt.2,c.is.null))`."""
    budget = _FilterBudget()
    return _parse_logic_tree_with(operator, value, negated, limits, budget)


def _parse_logic_tree_with(
    operator: LogicOperator,
    value: str,
    negated: bool,
    limits: ParseLimits,
    budget: _FilterBudget,
) -> LogicTree:
    def grammar(cur: _Cursor) -> LogicTree:
        cur.skip_ws()
        children = _logic_children(cur, 1, budget)
        cur.skip_ws()
        cur.expect_end("end of input")
        return LogicTree(operator, children, negated)

    result = _run("logic tree", value, limits, grammar)
    return result


def _logic_children(cur: _Cursor, depth: int, budget: _FilterBudget) -> tuple[LogicNode, ...]:
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
            condition_field = _field(cur)
            cur.expect(".")
            negated, operation = _op_expr(cur, in_logic=True)
            children.append(Filter(condition_field, operation, negated))
        cur.skip_ws()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        cur.expect(")")
        return tuple(children)


# --- order= --------------------------------------------------------------------------------


def parse_order(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[OrderTerm, ...]:
    """`order=age.desc.nullslast,data->>name,directors(last_name).asc`."""

    def grammar(cur: _Cursor) -> tuple[OrderTerm, ...]:
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

    result = _run("order", text, limits, grammar)
    return result


def _order_term(cur: _Cursor) -> OrderTerm:
    name = _field_name(cur)
    relation: str | None = None
    if cur.peek() == "(":
        cur.pos += 1
        relation = name
        term_field = _field(cur)
        cur.expect(")")
    else:
        term_field = FieldPath(name, _json_path(cur))
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
        cur.fail(f'unexpected {_describe(cur.peek())} expecting "," or end of input')
    return OrderTerm(term_field, direction, nulls, relation)


def _order_word(cur: _Cursor) -> str:
    cur.pos += 1  # the "." before the word
    start = cur.pos
    while cur.peek() and cur.peek() not in ".,":
        cur.pos += 1
    return cur.text[start : cur.pos].rstrip(_WS)


# --- columns= and on_conflict= -------------------------------------------------------------


def parse_columns(
    text: str, *, what: str = "columns parameter", limits: ParseLimits = DEFAULT_LIMITS
) -> tuple[str, ...]:
    """`columns=a,b` or postgrest-js's `columns="a","b"`; also used for `on_conflict=`."""

    def grammar(cur: _Cursor) -> tuple[str, ...]:
        names: list[str] = []
        while True:
            if len(names) >= cur.limits.max_columns:
                cur.fail(f"more than {cur.limits.max_columns} columns")
            names.append(_field_name(cur))
            cur.skip_ws()
            if cur.peek() == ",":
                cur.pos += 1
                continue
            cur.expect_end('"," or end of input')
            return tuple(names)

    result = _run(what, text, limits, grammar)
    return result


# --- limit=, offset= and Range -------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,18}")
_RANGE = re.compile(r"([0-9]{1,18})-([0-9]{0,18})")


def parse_limit(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> int:
    """A limit; a negative one is PGRST103 (416), as upstream."""
    if not _INTEGER.fullmatch(text.strip(_WS)):
        raise _syntax_error("limit parameter", text, 0, "expecting an integer", limits)
    value = int(text)
    if value < 0:
        raise negative_limit()
    return value


def parse_offset(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> int:
    stripped = text.strip(_WS)
    if not _INTEGER.fullmatch(stripped) or stripped.startswith("-"):
        raise _syntax_error("offset parameter", text, 0, "expecting a non-negative integer", limits)
    return int(stripped)


def parse_range_header(value: str) -> Page | None:
    """`Range: 0-19` or `10-`. Anything unparseable is ignored (None), as upstream does."""
    match = _RANGE.fullmatch(value.strip(_WS))
    if match is None:
        return None
    lower = int(match.group(1))
    if not match.group(2):
        return Page(lower, None)
    upper = int(match.group(2))
    if lower > upper:
        raise range_lower_gt_upper()
    return Page(lower, upper - lower + 1)


def intersect_pages(first: Page, second: Page) -> Page:
    """Rows both windows allow: how a Range header combines with limit/offset."""
    offset = max(first.offset, second.offset)
    ends = [p.offset + p.limit for p in (first, second) if p.limit is not None]
    if not ends:
        return Page(offset, None)
    return Page(offset, max(0, min(ends) - offset))


# --- Prefer --------------------------------------------------------------------------------

_PREFERENCE_VALUES: Mapping[str, Callable[[str], object]] = {
    "return": ReturnPreference,
    "count": CountPreference,
    "resolution": ResolutionPreference,
    "missing": MissingPreference,
    "handling": HandlingPreference,
    "tx": TxPreference,
}
_MAX_AFFECTED = re.compile(r"[0-9]{1,18}")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+\-:/]{1,64}")


def parse_prefer(value: str | None, *, limits: ParseLimits = DEFAULT_LIMITS) -> Preferences:
    """RFC 7240 preferences, comma-separated (repeated headers joined with `,` by the caller).

    Unknown or malformed preferences are collected in `invalid`; with handling=strict they
    are PGRST122.
    """
    if not value:
        return Preferences()
    if len(value) > limits.max_header_bytes:
        raise invalid_preferences(["Prefer header too long"])
    chosen: dict[str, object] = {}
    invalid: list[str] = []
    for raw in value.split(","):
        token = raw.strip(" \t")
        if not token:
            continue
        name, sep, setting = token.partition("=")
        if not sep:
            invalid.append(token)
            continue
        parsed: object | None = None
        if name in _PREFERENCE_VALUES:
            try:
                parsed = _PREFERENCE_VALUES[name](setting)
            except ValueError:
                parsed = None
        elif name == "max-affected" and _MAX_AFFECTED.fullmatch(setting):
            parsed = int(setting)
        elif name == "timezone" and _TIMEZONE.fullmatch(setting):
            parsed = setting
        if parsed is None:
            invalid.append(token)
        else:
            chosen.setdefault(name, parsed)

    prefs = Preferences(
        return_=_typed(chosen.get("return"), ReturnPreference),
        count=_typed(chosen.get("count"), CountPreference),
        resolution=_typed(chosen.get("resolution"), ResolutionPreference),
        missing=_typed(chosen.get("missing"), MissingPreference),
        handling=_typed(chosen.get("handling"), HandlingPreference),
        tx=_typed(chosen.get("tx"), TxPreference),
        max_affected=_typed(chosen.get("max-affected"), int),
        timezone=_typed(chosen.get("timezone"), str),
        invalid=tuple(invalid),
    )
    if prefs.handling is HandlingPreference.STRICT and invalid:
        raise invalid_preferences([_truncate(p, limits.max_echo_chars) for p in invalid])
    return prefs


def _typed(value: object, kind: type[_T]) -> _T | None:
    return value if isinstance(value, kind) else None


def _truncate(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size] + "..."


# --- Accept and Content-Type ---------------------------------------------------------------

_SIMPLE_MEDIA: Mapping[str, MediaKind] = {
    "application/json": MediaKind.JSON,
    "application/geo+json": MediaKind.GEOJSON,
    "text/csv": MediaKind.CSV,
    "text/plain": MediaKind.TEXT_PLAIN,
    "text/xml": MediaKind.TEXT_XML,
    "application/openapi+json": MediaKind.OPENAPI,
    "application/x-www-form-urlencoded": MediaKind.URLENCODED,
    "application/octet-stream": MediaKind.OCTET_STREAM,
    "*/*": MediaKind.ANY,
}
_PLAN_FORMATS: Mapping[str, Literal["json", "text"]] = {
    "application/vnd.pgrst.plan": "text",
    "application/vnd.pgrst.plan+text": "text",
    "application/vnd.pgrst.plan+json": "json",
}
_PLAN_OPTIONS = {option.value: option for option in PlanOption}


def decode_media_type(text: str, *, _nested: bool = False) -> MediaType:
    """One media type with its parameters, as PostgREST's decodeMediaType reads it."""
    mime, *raw_params = (part.strip(" \t") for part in text.split(";"))
    mime = mime.lower()
    params: dict[str, str] = {}
    for raw in raw_params:
        key, _, val = raw.partition("=")
        params.setdefault(key.strip(" \t").lower(), val.strip(" \t"))
    if mime in _SIMPLE_MEDIA:
        return MediaType(_SIMPLE_MEDIA[mime], mime)
    if mime in ("application/vnd.pgrst.object+json", "application/vnd.pgrst.object"):
        return MediaType(MediaKind.SINGULAR, mime, nulls_stripped=_nulls_stripped(raw_params))
    if mime in ("application/vnd.pgrst.array+json", "application/vnd.pgrst.array"):
        if _nulls_stripped(raw_params):
            return MediaType(MediaKind.ARRAY_STRIPPED, mime, nulls_stripped=True)
        return MediaType(MediaKind.JSON, mime)
    if mime in _PLAN_FORMATS and not _nested:
        target = params.get("for", "").strip('"')
        plan_for = (
            decode_media_type(target, _nested=True)
            if target
            else MediaType(MediaKind.JSON, "application/json")
        )
        requested = params.get("options", "").split("|")
        options = tuple(o for name, o in _PLAN_OPTIONS.items() if name in requested)
        return MediaType(
            MediaKind.PLAN,
            mime,
            plan_for=plan_for,
            plan_format=_PLAN_FORMATS[mime],
            plan_options=options,
        )
    return MediaType(MediaKind.OTHER, mime)


def _nulls_stripped(raw_params: Sequence[str]) -> bool:
    return [p for p in raw_params if p] == ["nulls=stripped"]


def parse_accept(value: str | None, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[MediaType, ...]:
    """The media types of an Accept header, most preferred first (by q, then specificity)."""
    if value is None or not value.strip(" \t"):
        return ()
    if len(value) > limits.max_header_bytes:
        raise media_type_error(["(Accept header too long)"])
    ranked: list[tuple[float, int, int, MediaType]] = []
    refused: list[str] = []
    for position, raw in enumerate(_split_accept(value)):
        if not raw.strip(" \t"):
            continue
        if len(ranked) >= limits.max_accept_items:
            raise media_type_error(["(too many media types in Accept)"])
        quality = 1.0
        kept: list[str] = []
        for part in raw.split(";"):
            key, sep, val = part.strip(" \t").partition("=")
            if sep and key.strip(" \t").lower() == "q":
                quality = _quality(val.strip(" \t"))
            else:
                kept.append(part)
        media = decode_media_type(";".join(kept))
        if quality <= 0:
            refused.append(media.mime)  # q=0 means "not acceptable"
            continue
        specificity = 0 if media.mime == "*/*" else 1 if media.mime.endswith("/*") else 2
        ranked.append((-quality, -specificity, position, media))
    if not ranked and refused:
        raise media_type_error([_truncate(mime, 100) for mime in dict.fromkeys(refused)])
    ranked.sort(key=lambda entry: entry[:3])
    return tuple(entry[3] for entry in ranked)


def _split_accept(value: str) -> Iterable[str]:
    """Split on commas outside double quotes (`for="..."` may be quoted)."""
    part: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            yield "".join(part)
            part = []
        else:
            part.append(ch)
    yield "".join(part)


def _quality(text: str) -> float:
    if re.fullmatch(r"(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", text):
        return float(text)
    return 1.0  # a malformed weight does not make a type unacceptable


_READ_OUTPUTS = frozenset({MediaKind.JSON, MediaKind.CSV, MediaKind.SINGULAR, MediaKind.ARRAY_STRIPPED})


def negotiate_accept(
    accepted: Sequence[MediaType], path_kind: PathKind, *, plan_enabled: bool = False
) -> MediaType:
    """Pick the response media type, or PGRST107 (406) listing what the client asked for."""
    default = (
        MediaType(MediaKind.OPENAPI, "application/openapi+json")
        if path_kind == "root"
        else MediaType(MediaKind.JSON, "application/json")
    )
    if not accepted:
        return default
    producible = frozenset({MediaKind.OPENAPI, MediaKind.JSON}) if path_kind == "root" else _READ_OUTPUTS
    for media in accepted:
        if media.kind is MediaKind.ANY:
            return default
        if media.kind in producible:
            return media
        if (
            media.kind is MediaKind.PLAN
            and plan_enabled
            and path_kind != "root"
            and media.plan_for is not None
            and (media.plan_for.kind in _READ_OUTPUTS or media.plan_for.kind is MediaKind.ANY)
        ):
            return media
    asked = list(dict.fromkeys(_truncate(m.mime, 100) for m in accepted))
    details = (
        "application/geo+json is not supported by this server"
        if any(m.kind is MediaKind.GEOJSON for m in accepted)
        else None
    )
    raise media_type_error(asked, details)


_BODY_TYPES: Mapping[PathKind, frozenset[MediaKind]] = {
    "relation": frozenset({MediaKind.JSON, MediaKind.CSV, MediaKind.URLENCODED}),
    "rpc": frozenset(
        {
            MediaKind.JSON,
            MediaKind.CSV,
            MediaKind.URLENCODED,
            MediaKind.TEXT_PLAIN,
            MediaKind.TEXT_XML,
            MediaKind.OCTET_STREAM,
        }
    ),
    "root": frozenset(),
}


def parse_content_type(value: str | None, path_kind: PathKind) -> MediaType:
    """The body's media type (JSON when absent); others are PGRST102 as upstream."""
    if value is None or not value.strip(" \t"):
        return MediaType(MediaKind.JSON, "application/json")
    media = decode_media_type(value)
    if media.kind not in _BODY_TYPES[path_kind]:
        raise content_type_not_acceptable(_truncate(media.mime, 100))
    return media


def check_profile(profile: str | None, exposed_schemas: Sequence[str]) -> str:
    """The schema a request works in: the profile if exposed, the first exposed one if none.

    The plan stage calls this with the configured allow-list; anything else is PGRST106.
    """
    if not exposed_schemas:
        raise unacceptable_schema(profile or "", exposed_schemas)
    if profile is None:
        return exposed_schemas[0]
    if profile not in exposed_schemas:
        raise unacceptable_schema(_truncate(profile, 100), exposed_schemas)
    return profile


# --- the whole request ---------------------------------------------------------------------

_RELATION_METHODS: Mapping[str, Action] = {
    "GET": Action.READ,
    "HEAD": Action.READ,
    "POST": Action.INSERT,
    "PATCH": Action.UPDATE,
    "PUT": Action.UPSERT_ONE,
    "DELETE": Action.DELETE,
    "OPTIONS": Action.INFO,
}
_RPC_METHODS: Mapping[str, Action] = {
    "GET": Action.CALL,
    "HEAD": Action.CALL,
    "POST": Action.CALL,
    "OPTIONS": Action.INFO,
}
_ROOT_METHODS: Mapping[str, Action] = {
    "GET": Action.OPENAPI,
    "HEAD": Action.OPENAPI,
    "OPTIONS": Action.INFO,
}
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})
_RESERVED = frozenset({"select", "columns", "on_conflict"})
_RESERVED_EMBEDDABLE = frozenset({"order", "limit", "offset", "and", "or"})
_FILTER_LIKE = re.compile(r"(not\.)?([a-z]+)[.(]")


def _action_for(method: str, path_kind: PathKind) -> Action:
    if path_kind == "rpc":
        if method not in _RPC_METHODS:
            if method in _KNOWN_METHODS:
                raise invalid_rpc_method(method)
            raise unsupported_method(_truncate(method, 20))
        return _RPC_METHODS[method]
    table = _RELATION_METHODS if path_kind == "relation" else _ROOT_METHODS
    if method not in table:
        raise unsupported_method(_truncate(method, 20))
    return table[method]


def _looks_like_filter(key: str, value: str) -> bool:
    """Upstream's test for which GET /rpc parameters are filters rather than arguments."""
    if "." in key:
        return True
    match = _FILTER_LIKE.match(value)
    if match is None:
        return False
    name = match.group(2)
    return (
        name in _OPERATOR_NAMES or name in _FTS_NAMES or name in ("in", "is") or (match.group(1) is not None)
    )


def _last_segment(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _embed_path_of(key: str, limits: ParseLimits) -> EmbedPath:
    """`actors.roles.limit` -> `("actors", "roles")`."""

    def grammar(cur: _Cursor) -> EmbedPath:
        names = [_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(_field_name(cur))
        cur.expect_end("delimiter (.) or end of input")
        return tuple(names[:-1])

    result = _run("tree path", key, limits, grammar)
    return result


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Every value of header `name` (lower case), joined as one; None when it is absent."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        # aiohttp's case-insensitive multidict: a lookup, not a scan of every header.
        found: list[str] = getall(name, [])
    else:
        found = [value for key, value in headers.items() if key.lower() == name]
    return ", ".join(found) if found else None


def parse_request(
    method: str,
    path_kind: PathKind,
    target: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
    plan_enabled: bool = False,
) -> ApiRequest:
    """Parse one request. `query` is the percent-decoded (name, value) pairs in order.

    Raises ApiError (always a 4xx) and nothing else.
    """
    action = _action_for(method, path_kind)
    if path_kind != "root" and (
        not target or len(target.encode("utf-8", "surrogatepass")) > limits.max_identifier_bytes
    ):
        raise invalid_resource_path()
    if len(query) > limits.max_query_params:
        raise query_param_error(
            "too many query parameters",
            f"at most {limits.max_query_params} query parameters are allowed",
        )

    singletons: dict[str, str] = {}
    filters: list[EmbeddedFilter] = []
    logic: list[EmbeddedLogic] = []
    orders: dict[EmbedPath, tuple[OrderTerm, ...]] = {}
    page_limits: dict[EmbedPath, int] = {}
    page_offsets: dict[EmbedPath, int] = {}
    rpc_args: list[tuple[str, str]] = []
    budget = _FilterBudget()
    rpc_read = path_kind == "rpc" and method in ("GET", "HEAD")

    for key, value in query:
        if key in _RESERVED:
            if key in singletons:
                raise _duplicate(key, limits)
            singletons[key] = value
            continue
        last = _last_segment(key)
        if last in _RESERVED_EMBEDDABLE:
            if last in ("and", "or"):
                path, negated, operator = parse_logic_key(key, limits=limits)
                tree = _parse_logic_tree_with(operator, value, negated, limits, budget)
                logic.append(EmbeddedLogic(path, tree))
                continue
            path = _embed_path_of(key, limits)
            if last == "order":
                if path in orders:
                    raise _duplicate(key, limits)
                orders[path] = parse_order(value, limits=limits)
            elif last == "limit":
                if path in page_limits:
                    raise _duplicate(key, limits)
                page_limits[path] = parse_limit(value, limits=limits)
            else:
                if path in page_offsets:
                    raise _duplicate(key, limits)
                page_offsets[path] = parse_offset(value, limits=limits)
            continue
        if rpc_read and not _looks_like_filter(key, value):
            rpc_args.append((key, value))
            continue
        budget.used += 1
        if budget.used > limits.max_filters:
            raise query_param_error("too many filters", f"at most {limits.max_filters} filters are allowed")
        path, field_path = parse_filter_key(key, limits=limits)
        filters.append(EmbeddedFilter(path, parse_filter_value(field_path, value, limits=limits)))

    if method == "PUT" and (() in page_limits or () in page_offsets):
        raise put_limit_not_allowed()

    pages = tuple(
        EmbeddedPage(path, Page(page_offsets.get(path, 0), page_limits.get(path)))
        for path in dict.fromkeys([*page_limits, *page_offsets])
    )
    top_page = next((p.page for p in pages if p.path == ()), Page())
    if method in ("GET", "HEAD"):
        range_value = _header(headers, "range")
        if range_value is not None and len(range_value) <= limits.max_header_bytes:
            header_page = parse_range_header(range_value)
            if header_page is not None:
                top_page = intersect_pages(top_page, header_page)

    select_text = singletons.get("select")
    select = (SelectStar(),) if select_text is None else parse_select(select_text, limits=limits)
    columns_text = singletons.get("columns")
    on_conflict_text = singletons.get("on_conflict")

    preferences = parse_prefer(_header(headers, "prefer"), limits=limits)
    accept = negotiate_accept(
        parse_accept(_header(headers, "accept"), limits=limits),
        path_kind,
        plan_enabled=plan_enabled,
    )
    content_type = (
        parse_content_type(_header(headers, "content-type"), path_kind) if method in _BODY_METHODS else None
    )
    profile_header = "accept-profile" if method in ("GET", "HEAD") else "content-profile"
    profile = _header(headers, profile_header)

    return ApiRequest(
        method=method,
        path_kind=path_kind,
        target=target,
        action=action,
        select=select,
        filters=tuple(filters),
        logic=tuple(logic),
        order=tuple(EmbeddedOrder(path, terms) for path, terms in orders.items()),
        pages=pages,
        top_page=top_page,
        columns=None if columns_text is None else parse_columns(columns_text, limits=limits),
        on_conflict=(
            None
            if on_conflict_text is None
            else parse_columns(on_conflict_text, what="on_conflict parameter", limits=limits)
        ),
        rpc_args=tuple(rpc_args),
        preferences=preferences,
        accept=accept,
        content_type=content_type,
        profile=None if profile is None else profile.strip(" \t"),
    )


def _duplicate(key: str, limits: ParseLimits) -> ApiError:
    # Upstream silently keeps one of the values; a clear error is safer than a guess.
    return query_param_error(
        f'"failed to parse {_truncate(key, limits.max_echo_chars)} parameter"',
        f"the '{_truncate(key, limits.max_echo_chars)}' parameter is given more than once",
    )
