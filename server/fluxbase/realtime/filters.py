"""postgres_changes filters for realtime: listener -> hub (filters decide fan-out) -> phoenix wire.

Parses a binding's `filter` string (`column=op.value`, comma = AND) into typed conditions and
evaluates them against a change record the way PostgreSQL would for the column's real type.
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
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


_ORDERING_OPERATORS: Final = frozenset({Operator.LT, Operator.LTE, Operator.GT, Operator.GTE})
_EQUALITY_OPERATORS: Final = frozenset({Operator.EQ, Operator.NEQ, Operator.IN, Operator.ISDISTINCT})
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
    """All conditions of one binding; a record matches when every condition is true."""

    conditions: tuple[Condition, ...] = ()

    def check_columns(self, column_types: Mapping[str, str]) -> None:
        """Validate against the table at subscribe time; raises FilterError.

        Refuses unknown columns, operators the column type has no meaning for, and values
        that do not convert to the column type, so delivery never meets them.
        """
        self.bind(column_types)

    def bind(self, column_types: Mapping[str, str]) -> BoundFilter:
        """Resolve column types and convert every value once; raises FilterError."""
        return BoundFilter(tuple(_bind_condition(c, column_types) for c in self.conditions))

    def matches(self, record: Mapping[str, object], column_types: Mapping[str, str]) -> bool:
        """True when the record passes every condition; never raises.

        A filter that no longer fits the table (a column dropped or retyped after subscribe)
        matches nothing: failing closed is the only safe answer at delivery time.
        """
        if not self.conditions:
            return True
        try:
            bound = _bind_cached(self, tuple(sorted(column_types.items())))
        except FilterError:
            return False
        return bound.matches(record)


@functools.lru_cache(maxsize=1024)
def _bind_cached(filter_: Filter, column_types: tuple[tuple[str, str], ...]) -> BoundFilter:
    return filter_.bind(dict(column_types))


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
        return Filter(())
    segments = _split_top_level(text.strip())
    if len(segments) > MAX_CONDITIONS:
        raise FilterError(f"filter has more than {MAX_CONDITIONS} conditions")
    return Filter(tuple(_parse_condition(segment) for segment in segments))


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
    elif operator in _PATTERN_OPERATORS:
        _LikePattern.compile(value, case_insensitive=False)  # reject bad escapes now
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


# --------------------------------------------------------------------------------------------
# LIKE / ILIKE without backtracking


@dataclass(frozen=True, slots=True)
class _LikePattern:
    """A LIKE pattern split at `%` into fixed-width pieces (literal chars and `_`).

    Each piece compiles to a quantifier-free regex, and the pieces between `%` are placed
    leftmost-first, which is exact for fixed-width pieces. Matching costs at most
    O(len(text) x len(pattern)) with no backtracking between pieces.
    """

    pieces: tuple[re.Pattern[str], ...]
    widths: tuple[int, ...]
    case_insensitive: bool

    @classmethod
    def compile(cls, pattern: str, *, case_insensitive: bool) -> _LikePattern:
        pieces: list[list[str]] = [[]]
        index = 0
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                if index + 1 >= len(pattern):
                    raise FilterError("LIKE pattern must not end with escape character")
                literal = pattern[index + 1]
                pieces[-1].append(re.escape(literal.lower() if case_insensitive else literal))
                index += 2
                continue
            if char in "%*":  # `*` stands for `%` as in PostgREST, where `%` needs URL-encoding
                pieces.append([])
            elif char == "_":
                pieces[-1].append(".")
            else:
                pieces[-1].append(re.escape(char.lower() if case_insensitive else char))
            index += 1
        return cls(
            tuple(re.compile("".join(piece), re.DOTALL) for piece in pieces),
            tuple(len(piece) for piece in pieces),
            case_insensitive,
        )

    def matches(self, text: str) -> bool:
        if self.case_insensitive:
            text = text.lower()
        if len(self.pieces) == 1:
            return len(text) == self.widths[0] and self.pieces[0].match(text) is not None
        if len(text) < sum(self.widths):
            return False
        if self.pieces[0].match(text) is None:
            return False
        position = self.widths[0]
        tail_start = len(text) - self.widths[-1]
        for piece, width in zip(self.pieces[1:-1], self.widths[1:-1], strict=True):
            if width == 0:
                continue
            found = piece.search(text, position, tail_start)
            if found is None:
                return False
            position = found.end()
        return self.pieces[-1].match(text, tail_start) is not None


# --------------------------------------------------------------------------------------------
# Column types: how PostgreSQL reads a filter value and orders column values


class _Unconvertible(Exception):
    """A record value that does not fit its column type; the condition is then unknown."""


@dataclass(frozen=True, slots=True)
class _ColumnType:
    name: str
    parse: Callable[[str], Any]  # filter text -> comparable key; raises ValueError
    coerce: Callable[[object], Any]  # record value -> comparable key; raises ValueError/TypeError
    operators: frozenset[Operator]
    is_boolean: bool = False
    case_insensitive_text: bool = False


_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_INT = re.compile(r"[+-]?\d+(?:_\d+)*")
_PREFIXED_INT = re.compile(r"([+-]?)0([xXoObB])([0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)")
_INT_BOUNDS: Final = {2: 2**15, 4: 2**31, 8: 2**63}


def _int_type(name: str, size: int) -> _ColumnType:
    bound = _INT_BOUNDS[size]

    def checked(value: int) -> int:
        if not -bound <= value < bound:
            raise ValueError(f"value out of range for type {name}")
        return value

    def parse(text: str) -> int:
        text = text.strip()
        if _DECIMAL_INT.fullmatch(text):
            return checked(int(text.replace("_", "")))
        prefixed = _PREFIXED_INT.fullmatch(text)
        if prefixed:
            sign, base_letter, digits = prefixed.groups()
            base = {"x": 16, "o": 8, "b": 2}[base_letter.lower()]
            magnitude = int(digits.replace("_", ""), base)
            return checked(-magnitude if sign == "-" else magnitude)
        raise ValueError(f"invalid input syntax for type {name}")

    def coerce(value: object) -> int:
        if isinstance(value, bool):
            raise TypeError("boolean in an integer column")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, Decimal) and value.is_finite() and value == int(value):
            return int(value)
        if isinstance(value, str):
            return parse(value)
        raise TypeError(f"{type(value).__name__} in an integer column")

    return _ColumnType(name, parse, coerce, _ORDERING_OPERATORS | _EQUALITY_OPERATORS)


# NaN is equal to itself and above every number in PostgreSQL, so keys are (is_nan, value).
_NAN_KEY: Final = (1, 0)


def _numeric_parse(text: str) -> tuple[int, Decimal | int]:
    text = text.strip()
    lowered = text.lower()
    if lowered == "nan":
        return _NAN_KEY
    if lowered.lstrip("+-") in ("infinity", "inf"):
        return (0, Decimal("-Infinity") if lowered.startswith("-") else Decimal("Infinity"))
    if not _NUMBER_TEXT.fullmatch(text):
        raise ValueError("invalid input syntax for type numeric")
    return (0, Decimal(text))


def _numeric_coerce(value: object) -> tuple[int, Decimal | int]:
    if isinstance(value, bool):
        raise TypeError("boolean in a numeric column")
    if isinstance(value, int):
        return (0, Decimal(value))
    if isinstance(value, float):
        return _NAN_KEY if math.isnan(value) else (0, Decimal(repr(value)))
    if isinstance(value, Decimal):
        return _NAN_KEY if value.is_nan() else (0, value)
    if isinstance(value, str):
        return _numeric_parse(value)
    raise TypeError(f"{type(value).__name__} in a numeric column")


def _float_type(name: str, single: bool) -> _ColumnType:
    def narrow(value: float) -> float:
        # float4 columns hold single-precision values; round the filter value the same way.
        if single and math.isfinite(value):
            try:
                return float(struct.unpack("<f", struct.pack("<f", value))[0])
            except OverflowError:
                raise ValueError(f"value out of range for type {name}") from None
        return value

    def key(value: float) -> tuple[int, float]:
        return (1, 0.0) if math.isnan(value) else (0, value)

    def parse(text: str) -> tuple[int, float]:
        text = text.strip()
        lowered = text.lower()
        if lowered in ("nan", "+nan", "-nan"):
            return (1, 0.0)
        if lowered.lstrip("+-") in ("infinity", "inf"):
            return (0, -math.inf if lowered.startswith("-") else math.inf)
        if not _NUMBER_TEXT.fullmatch(text):
            raise ValueError(f"invalid input syntax for type {name}")
        value = float(text)
        if math.isinf(value):
            raise ValueError(f"value out of range for type {name}")
        return key(narrow(value))

    def coerce(value: object) -> tuple[int, float]:
        if isinstance(value, bool):
            raise TypeError("boolean in a float column")
        if isinstance(value, int | float | Decimal):
            return key(narrow(float(value)))
        if isinstance(value, str):
            return parse(value)  # row_to_json writes NaN and Infinity as strings
        raise TypeError(f"{type(value).__name__} in a float column")

    return _ColumnType(name, parse, coerce, _ORDERING_OPERATORS | _EQUALITY_OPERATORS)


def _bool_spellings() -> dict[str, bool]:
    # PostgreSQL's boolin accepts these words and any unambiguous prefix of them.
    spellings: dict[str, bool] = {"1": True, "0": False, "on": True, "off": False, "of": False}
    for word, value in (("true", True), ("false", False), ("yes", True), ("no", False)):
        for end in range(1, len(word) + 1):
            spellings[word[:end]] = value
    return spellings


_BOOL_SPELLINGS: Final = _bool_spellings()


def _bool_parse(text: str) -> bool:
    try:
        return _BOOL_SPELLINGS[text.strip().lower()]
    except KeyError:
        raise ValueError("invalid input syntax for type boolean") from None


def _bool_coerce(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _bool_parse(value)
    raise TypeError(f"{type(value).__name__} in a boolean column")


def _text_type(name: str, *, blank_padded: bool = False, citext: bool = False) -> _ColumnType:
    def key(text: str) -> str:
        # bpchar ignores trailing spaces in comparisons; citext compares lower-cased.
        if blank_padded:
            text = text.rstrip(" ")
        return text.lower() if citext else text

    def coerce(value: object) -> str:
        if isinstance(value, str):
            return key(value)
        raise TypeError(f"{type(value).__name__} in a text column")

    return _ColumnType(
        name,
        key,
        coerce,
        _ORDERING_OPERATORS | _EQUALITY_OPERATORS | _PATTERN_OPERATORS,
        case_insensitive_text=citext,
    )


def _uuid_parse(text: str) -> int:
    try:
        return uuid.UUID(text.strip()).int
    except ValueError:
        raise ValueError("invalid input syntax for type uuid") from None


def _uuid_coerce(value: object) -> int:
    if isinstance(value, str):
        return _uuid_parse(value)
    raise TypeError(f"{type(value).__name__} in a uuid column")


# Date/time keys are (rank, value): -infinity < every value < infinity, as in PostgreSQL.
_MINUS_INFINITY: Final = (-1,)
_PLUS_INFINITY: Final = (1,)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _special_time(text: str) -> tuple[int, ...] | str | None:
    lowered = text.strip().lower()
    if lowered in ("infinity", "+infinity"):
        return _PLUS_INFINITY
    if lowered == "-infinity":
        return _MINUS_INFINITY
    if lowered in ("now", "today", "tomorrow", "yesterday", "allballs"):
        # Relative to the moment of subscription in PostgreSQL; meaningless for a live filter.
        raise ValueError(f"{lowered!r} is not supported in filters; use an explicit value")
    if lowered == "epoch":
        return "epoch"
    return None


def _timestamptz_parse(text: str) -> tuple[Any, ...]:
    special = _special_time(text)
    if isinstance(special, tuple):
        return special
    if special == "epoch":
        return (0, _EPOCH)
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        # PostgreSQL reads a zone-less value in the session TimeZone; Fluxbase runs in UTC.
        moment = moment.replace(tzinfo=UTC)
    return (0, moment)


def _timestamp_parse(text: str) -> tuple[Any, ...]:
    special = _special_time(text)
    if isinstance(special, tuple):
        return special
    if special == "epoch":
        return (0, _EPOCH.replace(tzinfo=None))
    # PostgreSQL ignores a zone given for a timestamp without time zone.
    return (0, datetime.fromisoformat(text.strip()).replace(tzinfo=None))


def _date_parse(text: str) -> tuple[Any, ...]:
    special = _special_time(text)
    if isinstance(special, tuple):
        return special
    if special == "epoch":
        return (0, date(1970, 1, 1))
    stripped = text.strip()
    try:
        return (0, date.fromisoformat(stripped))
    except ValueError:
        return (0, datetime.fromisoformat(stripped).date())


def _time_parse(text: str) -> time:
    return time.fromisoformat(text.strip()).replace(tzinfo=None)


def _from_text(parse: Callable[[str], Any], type_name: str) -> Callable[[object], Any]:
    def coerce(value: object) -> Any:
        if isinstance(value, str):
            return parse(value)
        raise TypeError(f"{type(value).__name__} in a {type_name} column")

    return coerce


def _jsonb_key(value: Any) -> Any:
    """A hashable, comparable form with jsonb equality: key order ignored, 1 == 1.0."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("jsonb has no NaN or Infinity")
        return ("number", Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list | tuple):
        return ("array", tuple(_jsonb_key(item) for item in value))
    if isinstance(value, Mapping):
        return ("object", tuple(sorted((str(k), _jsonb_key(v)) for k, v in value.items())))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _jsonb_parse(text: str) -> Any:
    try:
        decoded = json.loads(text, parse_float=Decimal, parse_constant=_reject_json_constant)
    except RecursionError:
        raise ValueError("JSON value is nested too deeply") from None
    return _jsonb_key(decoded)


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _opaque_coerce(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{type(value).__name__} is not text")


def _identity(text: str) -> str:
    return text


_ALL_ORDERED: Final = _ORDERING_OPERATORS | _EQUALITY_OPERATORS

_COLUMN_TYPES: Final[dict[str, _ColumnType]] = {
    "int2": _int_type("smallint", 2),
    "int4": _int_type("integer", 4),
    "int8": _int_type("bigint", 8),
    "numeric": _ColumnType("numeric", _numeric_parse, _numeric_coerce, _ALL_ORDERED),
    "float4": _float_type("real", single=True),
    "float8": _float_type("double precision", single=False),
    "bool": _ColumnType("boolean", _bool_parse, _bool_coerce, _ALL_ORDERED, is_boolean=True),
    "text": _text_type("text"),
    "varchar": _text_type("character varying"),
    "name": _text_type("name"),
    "bpchar": _text_type("character", blank_padded=True),
    "citext": _text_type("citext", citext=True),
    "uuid": _ColumnType("uuid", _uuid_parse, _uuid_coerce, _ALL_ORDERED),
    "timestamptz": _ColumnType(
        "timestamp with time zone",
        _timestamptz_parse,
        _from_text(_timestamptz_parse, "timestamptz"),
        _ALL_ORDERED,
    ),
    "timestamp": _ColumnType(
        "timestamp without time zone",
        _timestamp_parse,
        _from_text(_timestamp_parse, "timestamp"),
        _ALL_ORDERED,
    ),
    "date": _ColumnType("date", _date_parse, _from_text(_date_parse, "date"), _ALL_ORDERED),
    "time": _ColumnType("time without time zone", _time_parse, _from_text(_time_parse, "time"), _ALL_ORDERED),
    # jsonb equality is structural; its cross-type ordering is not worth reproducing.
    "jsonb": _ColumnType("jsonb", _jsonb_parse, _jsonb_key, _EQUALITY_OPERATORS),
    # json has no equality operator in PostgreSQL: only `is.null` applies.
    "json": _ColumnType("json", _identity, _opaque_coerce, frozenset()),
}

_TYPE_ALIASES: Final = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "decimal": "numeric",
    "real": "float4",
    "double precision": "float8",
    "float": "float8",
    "boolean": "bool",
    "character varying": "varchar",
    "character": "bpchar",
    "char": "bpchar",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
}

# Built-in types whose text form is not canonical (or whose ordering we do not reproduce):
# comparing them as text would give wrong answers, so filters on them are refused.
_UNSUPPORTED_TYPES: Final = frozenset(
    {
        "interval", "money", "bytea", "timetz", "time with time zone", "inet", "cidr",
        "macaddr", "macaddr8", "point", "line", "lseg", "box", "path", "polygon", "circle",
        "tsvector", "tsquery", "xml", "bit", "varbit", "bit varying", "int4range",
        "int8range", "numrange", "tsrange", "tstzrange", "daterange", "int4multirange",
        "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange",
        "datemultirange", "oid", "pg_lsn", "\"char\"", "hstore", "vector",
    }
)  # fmt: skip

_TYPE_MODIFIER = re.compile(r"\s*\(\s*\d+\s*(?:,\s*\d+\s*)?\)")


def _column_type(type_name: str, column: str) -> _ColumnType:
    normalised = _TYPE_MODIFIER.sub("", type_name.strip().lower())
    normalised = normalised.removeprefix("pg_catalog.").removeprefix("public.")
    if normalised.endswith("[]") or normalised.startswith("_"):
        raise FilterError(f"filters on array column {column} ({type_name}) are not supported")
    if normalised in _UNSUPPORTED_TYPES:
        raise FilterError(f"filters on column {column} of type {type_name} are not supported")
    canonical = _TYPE_ALIASES.get(normalised, normalised)
    known = _COLUMN_TYPES.get(canonical)
    if known is not None:
        return known
    # Anything else is taken to be an enum or another user type whose values compare by
    # their text label; ordering needs the type's own sort order, so only equality applies.
    return _ColumnType(type_name, _identity, _opaque_coerce, _EQUALITY_OPERATORS)


# --------------------------------------------------------------------------------------------
# Binding and evaluation

_ANY_TYPE: Final = _ColumnType("any", _identity, _opaque_coerce, frozenset())


@dataclass(frozen=True, slots=True)
class _BoundCondition:
    column: str
    operator: Operator
    negated: bool
    column_type: _ColumnType
    operand: Any
    operands: tuple[Any, ...]
    pattern: _LikePattern | None


def _bind_condition(condition: Condition, column_types: Mapping[str, str]) -> _BoundCondition:
    type_name = column_types.get(condition.column)
    if type_name is None:
        raise FilterError(f"invalid column for filter {condition.column}")
    operator = condition.operator
    if operator is Operator.IS and condition.value == "null":
        # IS NULL applies to every type, including those we cannot compare.
        return _BoundCondition(condition.column, operator, condition.negated, _ANY_TYPE, "null", (), None)
    column_type = _column_type(type_name, condition.column)
    operand: Any = None
    operands: tuple[Any, ...] = ()
    pattern: _LikePattern | None = None
    if operator is Operator.IS:
        if condition.value != "null" and not column_type.is_boolean:
            raise FilterError(
                f"is.{condition.value} filter requires a boolean column, got {type_name}"
                f" for {condition.column}"
            )
        operand = condition.value
    elif operator not in column_type.operators:
        raise FilterError(
            f"operator {operator.value} is not supported for column {condition.column} of type {type_name}"
        )
    elif operator in _PATTERN_OPERATORS:
        assert condition.value is not None
        insensitive = operator is Operator.ILIKE or column_type.case_insensitive_text
        pattern = _LikePattern.compile(condition.value, case_insensitive=insensitive)
    elif operator is Operator.IN:
        operands = tuple(
            None if item is None else _convert(column_type, item, condition) for item in condition.values
        )
    else:
        assert condition.value is not None
        operand = _convert(column_type, condition.value, condition)
    return _BoundCondition(
        condition.column, operator, condition.negated, column_type, operand, operands, pattern
    )


def _convert(column_type: _ColumnType, text: str, condition: Condition) -> Any:
    try:
        return column_type.parse(text)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise FilterError(
            f"invalid value {text!r} for column {condition.column} of type"
            f" {column_type.name} in {condition.source!r}: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A filter resolved against one table's column types, ready for per-change evaluation."""

    conditions: tuple[_BoundCondition, ...]

    def matches(self, record: Mapping[str, object]) -> bool:
        """SQL semantics: a condition that is unknown (NULL) does not let the record through."""
        return all(_evaluate(condition, record) is True for condition in self.conditions)


_MISSING: Final = object()


def _evaluate(condition: _BoundCondition, record: Mapping[str, object]) -> bool | None:
    raw = record.get(condition.column, _MISSING)
    if raw is _MISSING:
        return None  # a filter on a column the change does not carry fails closed
    operator = condition.operator
    if operator is Operator.IS:
        return _evaluate_is(condition, raw)
    if raw is None:
        value = None
    else:
        try:
            value = condition.column_type.coerce(raw)
        except (ValueError, TypeError, ArithmeticError, RecursionError):
            return None
    if operator is Operator.ISDISTINCT:
        distinct = value is None or value != condition.operand
        return distinct != condition.negated
    if value is None:
        return None  # comparisons with NULL are unknown, negated or not
    result: bool | None
    if operator is Operator.EQ:
        result = value == condition.operand
    elif operator is Operator.NEQ:
        result = value != condition.operand
    elif operator is Operator.LT:
        result = value < condition.operand
    elif operator is Operator.LTE:
        result = value <= condition.operand
    elif operator is Operator.GT:
        result = value > condition.operand
    elif operator is Operator.GTE:
        result = value >= condition.operand
    elif operator is Operator.IN:
        if any(item is not None and item == value for item in condition.operands):
            result = True
        else:
            result = None if None in condition.operands else False
    else:
        assert condition.pattern is not None
        if not isinstance(value, str):
            return None
        result = condition.pattern.matches(value)
    if result is None:
        return None
    return result != condition.negated


def _evaluate_is(condition: _BoundCondition, raw: object) -> bool:
    keyword = condition.operand
    if keyword in ("null", "unknown"):
        result = raw is None
    else:
        try:
            value = None if raw is None else condition.column_type.coerce(raw)
        except (ValueError, TypeError):
            value = None
        result = value is (keyword == "true")
    return result != condition.negated
