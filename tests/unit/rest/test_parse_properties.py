"""Property tests: whatever text reaches a parser, the only exception is a 4xx ApiError."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from fluxbase.query_grammar.cursor import Cursor, ParseLimits, is_name_char
from fluxbase.query_grammar.names import FieldPath
from fluxbase.rest.errors import ApiError
from fluxbase.rest.request.api_request import parse_request
from fluxbase.rest.request.columns import parse_columns
from fluxbase.rest.request.filters import (
    LogicOperator,
    parse_filter_key,
    parse_filter_value,
    parse_logic_key,
    parse_logic_tree,
)
from fluxbase.rest.request.media import negotiate_accept, parse_accept, parse_content_type
from fluxbase.rest.request.order import parse_order
from fluxbase.rest.request.preferences import parse_prefer
from fluxbase.rest.request.ranges import parse_range_header
from fluxbase.rest.request.select import parse_select

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters the grammars give meaning to, so generated text hits real branches often.
GRAMMAR_CHARS = [
    *',.:*()!"\\-> {}[]=;|/_$+0123456789',
    "eq",
    "not.",
    "in.",
    "is.",
    "like",
    "fts(",
    "(any)",
    "(all)",
    "or(",
    "and(",
    "->>",
    "::",
    "...",
    "asc",
    "desc",
    "nullsfirst",
    "count()",
    ".sum()",
    "null",
    "q=",
    "*/*",
    "\t",
    "\n",
    "\x00",
    "é",
    "名",
    "\u202e",
    "\ufffd",
]

grammar_text = st.lists(st.one_of(st.sampled_from(GRAMMAR_CHARS), st.text(max_size=3)), max_size=60).map(
    "".join
)
any_text = st.one_of(st.text(max_size=200), grammar_text)


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=0, max_value=400))
    opener = draw(st.sampled_from(["a(", "or(", "(", "x!inner(", "...r(", "not.and(", '"']))
    middle = draw(grammar_text)
    closer = draw(st.sampled_from([")", "", ",)", '"']))
    return opener * depth + middle + closer * draw(st.integers(0, depth))


hostile_text = st.one_of(any_text, deep_nesting())


def only_client_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiError as error:
        assert 400 <= error.status < 500, error.body()
        assert error.code.startswith("PGRST")
        body = error.body()
        assert set(body) == {"code", "message", "details", "hint"}


@PROPERTY_SETTINGS
@given(hostile_text)
def test_select_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_select(text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_select_with_tight_limits_never_crashes(text: str) -> None:
    limits = ParseLimits(max_select_depth=2, max_select_items=5, max_identifier_bytes=8)
    only_client_errors(lambda: parse_select(text, limits=limits))


@PROPERTY_SETTINGS
@given(
    st.one_of(st.sampled_from(["eq.", "not.", "in.(", "is.", "like(any).", "fts(", ""]), any_text),
    hostile_text,
)
def test_filter_value_never_crashes(prefix: str, text: str) -> None:
    only_client_errors(lambda: parse_filter_value(FieldPath("a"), prefix + text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_filter_key_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_filter_key(text))


@PROPERTY_SETTINGS
@given(st.sampled_from(list(LogicOperator)), st.booleans(), hostile_text)
def test_logic_tree_never_crashes(operator: LogicOperator, negated: bool, text: str) -> None:
    only_client_errors(lambda: parse_logic_tree(operator, "(" + text, negated=negated))
    only_client_errors(lambda: parse_logic_tree(operator, text, negated=negated))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_logic_key_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_logic_key(text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_order_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_order(text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_columns_never_crash(text: str) -> None:
    only_client_errors(lambda: parse_columns(text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_prefer_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_prefer(text))
    only_client_errors(lambda: parse_prefer("handling=strict," + text))


@PROPERTY_SETTINGS
@given(hostile_text)
def test_range_never_crashes(text: str) -> None:
    only_client_errors(lambda: parse_range_header(text))


@PROPERTY_SETTINGS
@given(hostile_text, st.sampled_from(["relation", "rpc", "root"]), st.booleans())
def test_accept_never_crashes(text: str, kind: str, plan_enabled: bool) -> None:
    only_client_errors(
        lambda: negotiate_accept(parse_accept(text), kind, plan_enabled=plan_enabled)  # type: ignore[arg-type]
    )
    only_client_errors(lambda: parse_content_type(text, kind))  # type: ignore[arg-type]


query_names = st.one_of(
    st.sampled_from(
        [
            "select",
            "order",
            "limit",
            "offset",
            "or",
            "and",
            "not.or",
            "a.or",
            "columns",
            "on_conflict",
            "a.limit",
            "x",
            "a.b",
            "actors.order",
        ]
    ),
    any_text,
)


@PROPERTY_SETTINGS
@given(
    st.sampled_from(["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS", "TRACE", "", "get"]),
    st.sampled_from(["relation", "rpc", "root"]),
    any_text,
    st.lists(st.tuples(query_names, hostile_text), max_size=8),
    st.dictionaries(
        st.sampled_from(
            [
                "Prefer",
                "Accept",
                "Range",
                "Range-Unit",
                "Content-Type",
                "Accept-Profile",
                "Content-Profile",
                "X-Other",
            ]
        ),
        any_text,
        max_size=6,
    ),
)
def test_whole_request_never_crashes(
    method: str,
    kind: str,
    target: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
) -> None:
    only_client_errors(
        lambda: parse_request(method, kind, target, query, headers)  # type: ignore[arg-type]
    )


def test_pathological_sizes_fail_fast() -> None:
    # Each of these must answer a clear 400 (or parse) without recursion or quadratic blowup.
    huge = [
        "(" * 100_000,
        "a(" * 100_000,
        "a," * 50_000,
        "a->" * 50_000 + "b",
        '"' + "\\" * 100_001,
        "a::" + "int[]" * 10_000,
    ]
    for text in huge:
        only_client_errors(lambda text=text: parse_select(text))  # type: ignore[misc]
        only_client_errors(lambda text=text: parse_order(text))  # type: ignore[misc]
        only_client_errors(lambda text=text: parse_logic_tree(LogicOperator.OR, text))  # type: ignore[misc]
        only_client_errors(lambda text=text: parse_filter_value(FieldPath("a"), "in." + text))  # type: ignore[misc]
    only_client_errors(lambda: parse_filter_value(FieldPath("a"), "in.(" + '"x,' * 50_000))
    only_client_errors(lambda: parse_filter_value(FieldPath("a"), "in.(" + "9" * 10_000 + ")"))
    only_client_errors(lambda: parse_request("GET", "relation", "t", [("limit", "9" * 10_000)], {}))


# Name characters of several scripts and classes: ASCII, accented and CJK letters, digits that are
# not ASCII (not name characters), marks and symbols.
NAME_TEXT = st.text(alphabet=st.sampled_from([*"aZ09_$ -.,(\t\"'", "é", "ß", "名", "٣", "²", "\u0301", "€"]))


@PROPERTY_SETTINGS
@given(text=NAME_TEXT, start=st.integers(min_value=0, max_value=12))
def test_name_scan_stops_where_the_character_test_does(text: str, start: int) -> None:
    """The one-step ASCII scan of field names ends exactly where is_name_char would end it."""
    cursor = Cursor(text, ParseLimits())
    cursor.pos = min(start, len(text))
    expected = cursor.pos
    while expected < len(text) and is_name_char(text[expected]):
        expected += 1
    cursor.skip_name_chars()
    assert cursor.pos == expected


@PROPERTY_SETTINGS
@given(
    headers=st.lists(
        st.tuples(st.sampled_from(["Prefer", "prefer", "PREFER", "Accept", "Range", "X-Other"]), NAME_TEXT),
        max_size=6,
    )
)
def test_multidict_headers_parse_like_a_plain_mapping(headers: list[tuple[str, str]]) -> None:
    """aiohttp's headers (looked up case-insensitively) give the same request as a scan of pairs."""

    class Pairs(Mapping[str, str]):
        # A mapping that may repeat a name in different cases, as the wire can.
        def __getitem__(self, key: str) -> str:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            return iter([])

        def __len__(self) -> int:
            return len(headers)

        def items(self) -> Any:
            return list(headers)

    outcomes = []
    for mapping in (Pairs(), CIMultiDict(headers)):
        try:
            outcomes.append(parse_request("GET", "relation", "t", [], mapping))
        except ApiError as error:
            outcomes.append(error.body())
    assert outcomes[0] == outcomes[1]
