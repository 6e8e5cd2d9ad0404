"""Parse stage: exact structures for every form of POSTGREST.md 1.2-1.11, and exact errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from fluxbase.query_grammar.cursor import ParseLimits
from fluxbase.query_grammar.filters import (
    Filter,
    FtsOperator,
    IsValue,
    OpCompare,
    Operator,
    OpFts,
    OpIn,
    OpIs,
    Quantifier,
)
from fluxbase.query_grammar.names import FieldPath, JsonStep
from fluxbase.rest.errors import ApiError
from fluxbase.rest.request.action import Action, PathKind
from fluxbase.rest.request.api_request import ApiRequest, check_profile, parse_request
from fluxbase.rest.request.columns import parse_columns
from fluxbase.rest.request.filters import (
    EmbeddedFilter,
    EmbeddedLogic,
    LogicOperator,
    LogicTree,
    parse_filter_key,
    parse_filter_value,
    parse_logic_key,
    parse_logic_tree,
)
from fluxbase.rest.request.media import (
    MediaKind,
    MediaType,
    PlanOption,
    decode_media_type,
    negotiate_accept,
    parse_accept,
    parse_content_type,
)
from fluxbase.rest.request.order import Direction, EmbeddedOrder, Nulls, OrderTerm, parse_order
from fluxbase.rest.request.preferences import (
    CountPreference,
    HandlingPreference,
    MissingPreference,
    Preferences,
    ResolutionPreference,
    ReturnPreference,
    TxPreference,
    parse_prefer,
)
from fluxbase.rest.request.ranges import EmbeddedPage, Page, intersect_pages, parse_range_header
from fluxbase.rest.request.select import (
    Aggregate,
    JoinType,
    SelectColumn,
    SelectEmbed,
    SelectStar,
    parse_select,
)


def raises(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def col(name: str, *path: JsonStep) -> FieldPath:
    return FieldPath(name, tuple(path))


def key(name: str, arrow: str = "->") -> JsonStep:
    return JsonStep(arrow, name)  # type: ignore[arg-type]


def idx(index: int, arrow: str = "->") -> JsonStep:
    return JsonStep(arrow, str(index), index)  # type: ignore[arg-type]


def column(name: str, **kwargs: object) -> SelectColumn:
    return SelectColumn(col(name), **kwargs)  # type: ignore[arg-type]


def filt(value: str, field: str = "a") -> Filter:
    return parse_filter_value(col(field), value)


def request(
    method: str = "GET",
    query: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    kind: PathKind = "relation",
    target: str = "films",
    **kwargs: object,
) -> ApiRequest:
    return parse_request(method, kind, target, query, headers or {}, **kwargs)  # type: ignore[arg-type]


# --- select ------------------------------------------------------------------------------


def test_select_columns_and_star() -> None:
    assert parse_select("id,name") == (column("id"), column("name"))
    assert parse_select("*") == (SelectStar(),)
    assert parse_select("*,id") == (SelectStar(), column("id"))


def test_select_default_is_star() -> None:
    assert request().select == (SelectStar(),)


def test_select_empty_selects_nothing() -> None:
    assert parse_select("") == ()


def test_select_rename() -> None:
    assert parse_select("fullName:full_name") == (column("full_name", alias="fullName"),)


def test_select_cast() -> None:
    assert parse_select("salary::text") == (column("salary", cast="text"),)


@pytest.mark.parametrize(
    ("text", "cast"),
    [
        ("a::numeric(10,2)", "numeric(10,2)"),
        ("a::numeric( 10 , 2 )", "numeric(10,2)"),
        ("a::text[]", "text[]"),
        ("a::int[][]", "int[][]"),
        ("a::int[3]", "int[3]"),
        ("a::character varying", "character varying"),
        ("a::character varying(10)", "character varying(10)"),
        ("a::Character Varying", "character varying"),
        ("a::double precision", "double precision"),
        ("a::timestamp with time zone", "timestamp with time zone"),
        ("a::timestamp without time zone[]", "timestamp without time zone[]"),
        ("a::public.mood", "public.mood"),
        ("a::pg_catalog.int4[]", "pg_catalog.int4[]"),
        ("a::varchar(255)", "varchar(255)"),
        ("a::int4", "int4"),
    ],
)
def test_select_cast_type_grammar(text: str, cast: str) -> None:
    assert parse_select(text) == (column("a", cast=cast),)


@pytest.mark.parametrize(
    "text",
    [
        "a::int or true",  # a free word sequence would be an expression in SQL
        "a::int or pg_sleep(10)",
        "a::text);drop table x;--",
        "a::",
        "a::1int",
        "a::numeric(a)",
        "a::numeric(1,2,3)",
        "a::numeric(",
        "a::text[x]",
        'a::"text"',
        "a::int[][][][][][][]",
        "a::timestamp with",
        "a::" + "t" * 64,
    ],
)
def test_select_cast_rejects_anything_but_a_type(text: str) -> None:
    error = raises(lambda: parse_select(text))
    assert (error.status, error.code) == (400, "PGRST100")


def test_select_single_word_of_multi_word_type_is_a_plain_type() -> None:
    assert parse_select("a::character") == (column("a", cast="character"),)
    assert parse_select("a::timestamp") == (column("a", cast="timestamp"),)


def test_select_json_paths() -> None:
    assert parse_select("id,data->>blood_type,data->phones->0->>number") == (
        column("id"),
        SelectColumn(col("data", key("blood_type", "->>"))),
        SelectColumn(col("data", key("phones"), idx(0), key("number", "->>"))),
    )


def test_select_json_path_negative_index_and_quoted_key() -> None:
    assert parse_select('data->-1,data->"a.b,c"') == (
        SelectColumn(col("data", idx(-1))),
        SelectColumn(col("data", key("a.b,c"))),
    )


def test_select_json_index_needs_an_end() -> None:
    # `->78xy` is a key, `->>-78xy` is an error, as upstream.
    assert parse_select("data->78xy") == (SelectColumn(col("data", key("78xy"))),)
    assert raises(lambda: parse_select("data->>-78xy")).code == "PGRST100"


def test_select_json_path_with_alias_and_cast() -> None:
    assert parse_select("bt:data->>blood_type::text") == (
        SelectColumn(col("data", key("blood_type", "->>")), alias="bt", cast="text"),
    )


def test_select_aggregates() -> None:
    assert parse_select("amount.sum(),order_date") == (
        column("amount", aggregate=Aggregate.SUM),
        column("order_date"),
    )
    assert parse_select("count()") == (SelectColumn(None, aggregate=Aggregate.COUNT),)
    assert parse_select("n:count()::int") == (
        SelectColumn(None, alias="n", aggregate=Aggregate.COUNT, aggregate_cast="int"),
    )
    assert parse_select("total:amount.sum()::int") == (
        column("amount", alias="total", aggregate=Aggregate.SUM, aggregate_cast="int"),
    )
    assert parse_select("data->x::numeric.sum()") == (
        SelectColumn(col("data", key("x")), cast="numeric", aggregate=Aggregate.SUM),
    )


@pytest.mark.parametrize("function", ["avg", "count", "max", "min", "sum"])
def test_select_every_aggregate(function: str) -> None:
    assert parse_select(f"a.{function}()") == (column("a", aggregate=Aggregate(function)),)


def test_select_unknown_aggregate_is_an_error() -> None:
    assert raises(lambda: parse_select("a.median()")).code == "PGRST100"


def test_select_schema_qualified_cast_followed_by_aggregate() -> None:
    assert parse_select("a::public.money.sum()") == (
        column("a", cast="public.money", aggregate=Aggregate.SUM),
    )


def test_select_embed() -> None:
    assert parse_select("title,directors(id,last_name)") == (
        column("title"),
        SelectEmbed("directors", (column("id"), column("last_name"))),
    )


def test_select_embed_alias_hint_and_join() -> None:
    assert parse_select("billing:addresses!billing(name)") == (
        SelectEmbed("addresses", (column("name"),), alias="billing", hint="billing"),
    )
    assert parse_select("rel!inner(*)") == (SelectEmbed("rel", (SelectStar(),), join=JoinType.INNER),)
    assert parse_select("rel!left(*)") == (SelectEmbed("rel", (SelectStar(),), join=JoinType.LEFT),)
    expected = SelectEmbed("rel", (SelectStar(),), hint="fk", join=JoinType.INNER)
    assert parse_select("rel!fk!inner(*)") == (expected,)
    assert parse_select("rel!inner!fk(*)") == (expected,)


def test_select_embed_two_hints_is_an_error() -> None:
    assert raises(lambda: parse_select("rel!a!b(*)")).code == "PGRST100"
    assert raises(lambda: parse_select("rel!inner!left(*)")).code == "PGRST100"


def test_select_empty_embed() -> None:
    assert parse_select("title,actors()") == (column("title"), SelectEmbed("actors", ()))


def test_select_spread() -> None:
    assert parse_select("title,...directors(last_name)") == (
        column("title"),
        SelectEmbed("directors", (column("last_name"),), spread=True),
    )
    assert parse_select("...rel!fk!inner(*)") == (
        SelectEmbed("rel", (SelectStar(),), hint="fk", join=JoinType.INNER, spread=True),
    )


def test_select_nested_spread_flattens_junction() -> None:
    assert parse_select("actors:roles(character,...actors(first_name))") == (
        SelectEmbed(
            "roles",
            (column("character"), SelectEmbed("actors", (column("first_name"),), spread=True)),
            alias="actors",
        ),
    )


def test_select_spread_with_alias_is_an_error() -> None:
    assert raises(lambda: parse_select("x:...rel(*)")).code == "PGRST100"


def test_select_deep_nesting_within_limit() -> None:
    text = "a(" * 10 + "*" + ")" * 10
    parsed = parse_select(text)
    depth = 0
    item = parsed[0]
    while isinstance(item, SelectEmbed):
        depth += 1
        item = item.children[0]
    assert depth == 10


def test_select_nesting_limit() -> None:
    error = raises(lambda: parse_select("a(" * 11 + "*" + ")" * 11))
    assert (error.status, error.code) == (400, "PGRST100")
    assert error.details == "select is nested deeper than 10 levels"


def test_select_nesting_limit_is_configurable() -> None:
    limits = ParseLimits(max_select_depth=1)
    assert parse_select("a(b)", limits=limits) == (SelectEmbed("a", (column("b"),)),)
    assert raises(lambda: parse_select("a(b(c))", limits=limits)).code == "PGRST100"


def test_select_item_count_limit() -> None:
    limits = ParseLimits(max_select_items=3)
    assert len(parse_select("a,b,c", limits=limits)) == 3
    assert raises(lambda: parse_select("a,b,c,d", limits=limits)).code == "PGRST100"


def test_select_whitespace_and_unicode_names() -> None:
    assert parse_select(' id , name with spaces ,名前,"a,b",x-y') == (
        column("id"),
        column("name with spaces"),
        column("名前"),
        column("a,b"),
        column("x-y"),
    )


def test_select_identifier_length_limit() -> None:
    assert parse_select("a" * 63) == (column("a" * 63),)
    error = raises(lambda: parse_select("a" * 64))
    assert error.code == "PGRST100"
    assert error.details == "identifier is longer than 63 bytes"
    # bytes, not characters: 32 two-byte letters are 64 bytes
    assert raises(lambda: parse_select("é" * 32)).code == "PGRST100"


def test_select_long_quoted_json_key_is_allowed() -> None:
    assert parse_select('data->"' + "k" * 500 + '"') == (SelectColumn(col("data", key("k" * 500))),)
    assert raises(lambda: parse_select('data->"' + "k" * 1025 + '"')).code == "PGRST100"


def test_select_error_message_is_upstream_style() -> None:
    error = raises(lambda: parse_select("id,clients(name[])"))
    assert error.status == 400
    assert error.body() == {
        "code": "PGRST100",
        "message": '"failed to parse select parameter (id,clients(name[]))" (line 1, column 16)',
        "details": 'unexpected \'[\' expecting "," or ")" or end of input',
        "hint": None,
    }


@pytest.mark.parametrize(
    "text", ["a,,b", "a,", "(", ")", "a)", "a(", "a(b", "name!hint", "*!hint", "a:", '"abc', "a->"]
)
def test_select_malformed(text: str) -> None:
    error = raises(lambda: parse_select(text))
    assert (error.status, error.code) == (400, "PGRST100")


def test_select_embed_name_with_json_path_is_an_error() -> None:
    assert raises(lambda: parse_select("rel->x(*)")).code == "PGRST100"


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operator",
    [
        "eq",
        "neq",
        "gt",
        "gte",
        "lt",
        "lte",
        "match",
        "imatch",
        "isdistinct",
        "cs",
        "cd",
        "ov",
        "sl",
        "sr",
        "nxr",
        "nxl",
        "adj",
    ],
)
def test_filter_every_simple_operator(operator: str) -> None:
    assert filt(f"{operator}.some value") == Filter(col("a"), OpCompare(Operator(operator), "some value"))


def test_filter_examples() -> None:
    assert filt("gte.18", "age") == Filter(col("age"), OpCompare(Operator.GTE, "18"))
    assert filt("match.^J") == Filter(col("a"), OpCompare(Operator.MATCH, "^J"))
    assert filt("ov.[2017-01-01,2017-06-30]") == Filter(
        col("a"), OpCompare(Operator.OV, "[2017-01-01,2017-06-30]")
    )
    assert filt('cs.{"a":1}') == Filter(col("a"), OpCompare(Operator.CS, '{"a":1}'))
    assert filt("sl.(1,10)") == Filter(col("a"), OpCompare(Operator.SL, "(1,10)"))


def test_filter_value_is_raw_rest_of_text() -> None:
    # Top-level values are never unquoted or split: dots, quotes and commas stay.
    assert filt('eq."a.b",c') == Filter(col("a"), OpCompare(Operator.EQ, '"a.b",c'))
    assert filt("eq.") == Filter(col("a"), OpCompare(Operator.EQ, ""))
    assert filt("eq.x'); drop table t;--") == Filter(col("a"), OpCompare(Operator.EQ, "x'); drop table t;--"))


@pytest.mark.parametrize("operator", ["like", "ilike"])
def test_filter_like_star_becomes_percent(operator: str) -> None:
    assert filt(f"{operator}.*smith*") == Filter(col("a"), OpCompare(Operator(operator), "%smith%"))


def test_filter_not_prefix() -> None:
    assert filt("not.eq.2") == Filter(col("a"), OpCompare(Operator.EQ, "2"), negated=True)
    assert filt("not.in.(1,2)") == Filter(col("a"), OpIn(("1", "2")), negated=True)
    assert filt("not.is.null") == Filter(col("a"), OpIs(IsValue.NULL), negated=True)


@pytest.mark.parametrize("operator", ["eq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"])
@pytest.mark.parametrize("quantifier", ["any", "all"])
def test_filter_quantifiers(operator: str, quantifier: str) -> None:
    expected_value = "{O%,P%}" if operator in ("like", "ilike") else "{O*,P*}"
    assert filt(f"{operator}({quantifier}).{{O*,P*}}") == Filter(
        col("a"), OpCompare(Operator(operator), expected_value, Quantifier(quantifier))
    )


@pytest.mark.parametrize("operator", ["neq", "isdistinct", "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj"])
def test_filter_quantifier_not_allowed(operator: str) -> None:
    error = raises(lambda: filt(f"{operator}(any).{{1,2}}"))
    assert (error.status, error.code) == (400, "PGRST100")


def test_filter_bad_quantifier() -> None:
    assert raises(lambda: filt("eq(some).{1}")).code == "PGRST100"
    assert raises(lambda: filt("in(any).(1)")).code == "PGRST100"
    assert filt("not.eq(all).{1,2}") == Filter(
        col("a"), OpCompare(Operator.EQ, "{1,2}", Quantifier.ALL), negated=True
    )


@pytest.mark.parametrize("operator", ["fts", "plfts", "phfts", "wfts"])
def test_filter_full_text_search(operator: str) -> None:
    assert filt(f"{operator}.cat & dog") == Filter(col("a"), OpFts(FtsOperator(operator), "cat & dog"))
    assert filt(f"{operator}(french).amusant") == Filter(
        col("a"), OpFts(FtsOperator(operator), "amusant", "french")
    )


def test_filter_negated_fts_with_language() -> None:
    assert filt("not.phfts(english).fat cats", "tsv") == Filter(
        col("tsv"), OpFts(FtsOperator.PHFTS, "fat cats", "english"), negated=True
    )


def test_filter_fts_bad_language() -> None:
    assert raises(lambda: filt("fts().x")).code == "PGRST100"
    assert raises(lambda: filt("fts(en'glish).x")).code == "PGRST100"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null", IsValue.NULL),
        ("NULL", IsValue.NULL),
        ("not_null", IsValue.NOT_NULL),
        ("Not_Null", IsValue.NOT_NULL),
        ("true", IsValue.TRUE),
        ("TRUE", IsValue.TRUE),
        ("false", IsValue.FALSE),
        ("unknown", IsValue.UNKNOWN),
        ("Unknown", IsValue.UNKNOWN),
    ],
)
def test_filter_is_values(text: str, value: IsValue) -> None:
    assert filt(f"is.{text}") == Filter(col("a"), OpIs(value))


@pytest.mark.parametrize("text", ["is.nul", "is.nullx", "is.1", "is.", "is.'null'"])
def test_filter_is_rejects_other_values(text: str) -> None:
    error = raises(lambda: filt(text))
    assert (error.status, error.code) == (400, "PGRST100")


def test_filter_in_lists() -> None:
    assert filt("in.(1,2,3)", "id") == Filter(col("id"), OpIn(("1", "2", "3")))
    assert filt('in.("a,b","c")', "n") == Filter(col("n"), OpIn(("a,b", "c")))
    assert filt('in.("Hebdon,John")') == Filter(col("a"), OpIn(("Hebdon,John",)))
    assert filt("in.()") == Filter(col("a"), OpIn(()))
    assert filt("in.(,)") == Filter(col("a"), OpIn(("", "")))


def test_filter_in_list_escapes() -> None:
    assert filt(r'in.("a\"b","c\\d","e\)f")') == Filter(col("a"), OpIn(('a"b', "c\\d", "e)f")))


def test_filter_in_list_keeps_spaces_and_unbalanced_quotes() -> None:
    assert filt('in.(1, 2,"x"y,"z)') == Filter(col("a"), OpIn(("1", " 2", '"x"y', '"z')))


def test_filter_in_list_malformed() -> None:
    for text in ("in.1,2", "in.(1,2", "in.(1,2)x", "in.", "in"):
        assert raises(lambda text=text: filt(text)).code == "PGRST100"  # type: ignore[misc]


def test_filter_in_list_limit() -> None:
    assert len(filt("in.(" + ",".join("1" * 1000) + ")").operation.values) == 1000  # type: ignore[union-attr]
    error = raises(lambda: filt("in.(" + ",".join("1" * 1001) + ")"))
    assert error.code == "PGRST100"
    assert error.details == "in list has more than 1000 values"


def test_filter_unknown_operator_message() -> None:
    error = raises(lambda: filt("eqq.5"))
    assert error.status == 400
    assert error.body() == {
        "code": "PGRST100",
        "message": '"failed to parse filter (eqq.5)" (line 1, column 5)',
        "details": "unknown single value operator eqq",
        "hint": None,
    }


@pytest.mark.parametrize("text", ["5", "eq", "EQ.1", "not.not.eq.1", "not.", "", ".eq.1", "noop.0", "not.eq"])
def test_filter_malformed(text: str) -> None:
    error = raises(lambda: filt(text))
    assert (error.status, error.code) == (400, "PGRST100")


def test_filter_keys() -> None:
    assert parse_filter_key("age") == ((), col("age"))
    assert parse_filter_key("data->>blood_type") == ((), col("data", key("blood_type", "->>")))
    assert parse_filter_key("data->age") == ((), col("data", key("age")))
    assert parse_filter_key("location->lat") == ((), col("location", key("lat")))
    assert parse_filter_key("arr->0") == ((), col("arr", idx(0)))
    assert parse_filter_key('"information.cpe"') == ((), col("information.cpe"))
    assert parse_filter_key("actors.first_name") == (("actors",), col("first_name"))
    assert parse_filter_key("roles.actors.first_name") == (("roles", "actors"), col("first_name"))
    assert parse_filter_key("90_comps.year") == (("90_comps",), col("year"))
    assert parse_filter_key("actors.data->x") == (("actors",), col("data", key("x")))


def test_filter_key_cast_is_not_allowed() -> None:
    error = raises(lambda: parse_filter_key("a::text"))
    assert (error.status, error.code) == (400, "PGRST100")
    assert error.message == '"failed to parse tree path (a::text)" (line 1, column 2)'


@pytest.mark.parametrize("text", ["", ".", "a.", ".a", "a..b", "a->", "a->>", 'a"b"', "a(b)"])
def test_filter_key_malformed(text: str) -> None:
    assert raises(lambda: parse_filter_key(text)).code == "PGRST100"


def test_request_filters_keep_order_and_embed_paths() -> None:
    parsed = request(
        query=[
            ("age", "gte.18"),
            ("actors.first_name", "like.*Tom*"),
            ("actors", "not.is.null"),
            ("age", "lt.65"),
        ]
    )
    assert parsed.filters == (
        EmbeddedFilter((), Filter(col("age"), OpCompare(Operator.GTE, "18"))),
        EmbeddedFilter(("actors",), Filter(col("first_name"), OpCompare(Operator.LIKE, "%Tom%"))),
        EmbeddedFilter((), Filter(col("actors"), OpIs(IsValue.NULL), negated=True)),
        EmbeddedFilter((), Filter(col("age"), OpCompare(Operator.LT, "65"))),
    )


def test_request_every_unreserved_parameter_is_a_filter_on_relations() -> None:
    error = raises(lambda: request(query=[("a", "5")]))
    assert error.code == "PGRST100"
    assert error.message == '"failed to parse filter (5)" (line 1, column 1)'


def test_request_filter_count_limit() -> None:
    limits = ParseLimits(max_filters=3)
    request(query=[("a", "eq.1"), ("or", "(b.eq.1,c.eq.2)")], limits=limits)
    error = raises(lambda: request(query=[("a", "eq.1"), ("or", "(b.eq.1,c.eq.2,d.eq.3)")], limits=limits))
    assert error.code == "PGRST100"
    error = raises(lambda: request(query=[("a", "eq.1")] * 4, limits=limits))
    assert (error.code, error.details) == ("PGRST100", "at most 3 filters are allowed")


def test_request_query_parameter_count_limit() -> None:
    limits = ParseLimits(max_query_params=2)
    assert raises(lambda: request(query=[("limit", "1")] * 3, limits=limits)).code == "PGRST100"


# --- logic trees -------------------------------------------------------------------------


def test_logic_keys() -> None:
    assert parse_logic_key("or") == ((), False, LogicOperator.OR)
    assert parse_logic_key("and") == ((), False, LogicOperator.AND)
    assert parse_logic_key("not.or") == ((), True, LogicOperator.OR)
    assert parse_logic_key("actors.or") == (("actors",), False, LogicOperator.OR)
    assert parse_logic_key("roles.actors.not.and") == (("roles", "actors"), True, LogicOperator.AND)


def test_logic_simple_or() -> None:
    assert parse_logic_tree(LogicOperator.OR, "(age.lt.18,age.gt.21)") == LogicTree(
        LogicOperator.OR,
        (
            Filter(col("age"), OpCompare(Operator.LT, "18")),
            Filter(col("age"), OpCompare(Operator.GT, "21")),
        ),
    )


def test_logic_nested_negated() -> None:
    assert parse_logic_tree(LogicOperator.OR, "(age.eq.14,not.and(age.gte.11,age.lte.17))") == LogicTree(
        LogicOperator.OR,
        (
            Filter(col("age"), OpCompare(Operator.EQ, "14")),
            LogicTree(
                LogicOperator.AND,
                (
                    Filter(col("age"), OpCompare(Operator.GTE, "11")),
                    Filter(col("age"), OpCompare(Operator.LTE, "17")),
                ),
                negated=True,
            ),
        ),
    )


def test_logic_conditions_of_every_kind() -> None:
    tree = parse_logic_tree(
        LogicOperator.AND,
        '(a.in.(1,"x,y"),b.is.NULL,c.not.like.*z*,d.fts(english).cat,e.cs.{1,2},'
        'f.eq(any).{a,b},g.eq."q,(u)",data->>k.eq.v,h.eq.)',
    )
    assert tree.children == (
        Filter(col("a"), OpIn(("1", "x,y"))),
        Filter(col("b"), OpIs(IsValue.NULL)),
        Filter(col("c"), OpCompare(Operator.LIKE, "%z%"), negated=True),
        Filter(col("d"), OpFts(FtsOperator.FTS, "cat", "english")),
        Filter(col("e"), OpCompare(Operator.CS, "{1,2}")),
        Filter(col("f"), OpCompare(Operator.EQ, "{a,b}", Quantifier.ANY)),
        Filter(col("g"), OpCompare(Operator.EQ, "q,(u)")),
        Filter(col("data", key("k", "->>")), OpCompare(Operator.EQ, "v")),
        Filter(col("h"), OpCompare(Operator.EQ, "")),
    )


def test_logic_quoted_value_escapes() -> None:
    tree = parse_logic_tree(LogicOperator.OR, r'(a.eq."say \"hi\", \\o/")')
    assert tree.children == (Filter(col("a"), OpCompare(Operator.EQ, 'say "hi", \\o/')),)


def test_logic_embed_semi_joins() -> None:
    tree = parse_logic_tree(LogicOperator.OR, "(actors.not.is.null,directors.not.is.null)")
    assert tree.children == (
        Filter(col("actors"), OpIs(IsValue.NULL), negated=True),
        Filter(col("directors"), OpIs(IsValue.NULL), negated=True),
    )


def test_logic_in_request_with_prefixes() -> None:
    parsed = request(
        query=[
            ("roles.or", "(character.eq.A,character.eq.B)"),
            ("not.or", "(a.eq.1,b.eq.2)"),
            ("and", "(c.eq.3,or(d.eq.4,e.eq.5))"),
        ]
    )
    assert parsed.logic == (
        EmbeddedLogic(
            ("roles",),
            LogicTree(
                LogicOperator.OR,
                (
                    Filter(col("character"), OpCompare(Operator.EQ, "A")),
                    Filter(col("character"), OpCompare(Operator.EQ, "B")),
                ),
            ),
        ),
        EmbeddedLogic(
            (),
            LogicTree(
                LogicOperator.OR,
                (
                    Filter(col("a"), OpCompare(Operator.EQ, "1")),
                    Filter(col("b"), OpCompare(Operator.EQ, "2")),
                ),
                negated=True,
            ),
        ),
        EmbeddedLogic(
            (),
            LogicTree(
                LogicOperator.AND,
                (
                    Filter(col("c"), OpCompare(Operator.EQ, "3")),
                    LogicTree(
                        LogicOperator.OR,
                        (
                            Filter(col("d"), OpCompare(Operator.EQ, "4")),
                            Filter(col("e"), OpCompare(Operator.EQ, "5")),
                        ),
                    ),
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    "text",
    [
        "()",
        "(id.in.1,2,id.eq.3)",
        ")(",
        "(ord(id.eq.1,id.eq.1),id.eq.2)",
        "(id.eq.1,not.xor(id.eq.2,id.eq.3))",
        "(a.eq.1",
        "(a.eq.1))",
        "a.eq.1",
        "(a.eqq.1)",
        "(a.eq.1,)",
        "(a)",
        "(a::int.eq.1)",
        "(a.is.nope)",
    ],
)
def test_logic_malformed(text: str) -> None:
    error = raises(lambda: parse_logic_tree(LogicOperator.OR, text))
    assert (error.status, error.code) == (400, "PGRST100")
    assert error.message.startswith(f'"failed to parse logic tree ({text})"')


def test_logic_depth_limit() -> None:
    def nested(depth: int) -> str:
        return "(" + "or(" * (depth - 1) + "a.eq.1" + ")" * depth

    parse_logic_tree(LogicOperator.OR, nested(10))
    error = raises(lambda: parse_logic_tree(LogicOperator.OR, nested(11)))
    assert (error.code, error.details) == ("PGRST100", "logic tree is nested deeper than 10 levels")


def test_logic_key_malformed() -> None:
    assert raises(lambda: parse_logic_key("xor")).code == "PGRST100"
    assert raises(lambda: parse_logic_key(".or")).code == "PGRST100"


# --- order -------------------------------------------------------------------------------


def test_order_terms() -> None:
    assert parse_order("age.desc,height.asc") == (
        OrderTerm(col("age"), Direction.DESC),
        OrderTerm(col("height"), Direction.ASC),
    )
    assert parse_order("age") == (OrderTerm(col("age")),)
    assert parse_order("age.nullsfirst") == (OrderTerm(col("age"), nulls=Nulls.FIRST),)
    assert parse_order("age.desc.nullslast") == (OrderTerm(col("age"), Direction.DESC, Nulls.LAST),)


def test_order_json_paths_and_related() -> None:
    assert parse_order("data->>age.desc,json_col->key.asc.nullslast,arr->0") == (
        OrderTerm(col("data", key("age", "->>")), Direction.DESC),
        OrderTerm(col("json_col", key("key")), Direction.ASC, Nulls.LAST),
        OrderTerm(col("arr", idx(0))),
    )
    assert parse_order("directors(last_name).desc,clients(data->x).asc.nullsfirst") == (
        OrderTerm(col("last_name"), Direction.DESC, relation="directors"),
        OrderTerm(col("data", key("x")), Direction.ASC, Nulls.FIRST, relation="clients"),
    )


def test_order_with_embed_prefix_in_request() -> None:
    parsed = request(query=[("order", "title"), ("actors.order", "last_name.desc")])
    assert parsed.order == (
        EmbeddedOrder((), (OrderTerm(col("title")),)),
        EmbeddedOrder(("actors",), (OrderTerm(col("last_name"), Direction.DESC),)),
    )


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("id.asc.nullslasttt", 8),
        ("id.ac", 4),
        ("id.descc", 4),
        ("id.nulsfist", 4),
        ("id.asc.nlsfst", 8),
        ("id.nullsfirst.asc", 14),
    ],
)
def test_order_malformed(text: str, column: int) -> None:
    error = raises(lambda: parse_order(text))
    assert (error.status, error.code) == (400, "PGRST100")
    assert error.message == f'"failed to parse order ({text})" (line 1, column {column})'


@pytest.mark.parametrize("text", ["", ",", "a,", "clients(name,id)", "a.asc.nullsfirst.x", "a::int"])
def test_order_other_malformed(text: str) -> None:
    assert raises(lambda: parse_order(text)).code == "PGRST100"


def test_order_term_limit() -> None:
    limits = ParseLimits(max_order_terms=2)
    assert len(parse_order("a,b", limits=limits)) == 2
    assert raises(lambda: parse_order("a,b,c", limits=limits)).code == "PGRST100"


def test_duplicate_singleton_parameters_are_errors() -> None:
    for name in ("select", "order", "limit", "offset", "columns", "on_conflict", "actors.order"):
        value = "1" if name in ("limit", "offset") else "a"
        error = raises(lambda name=name, value=value: request(query=[(name, value), (name, value)]))  # type: ignore[misc]
        assert (error.status, error.code) == (400, "PGRST100")


# --- pagination, Range, columns, on_conflict ---------------------------------------------


def test_limit_offset() -> None:
    parsed = request(query=[("limit", "15"), ("offset", "30")])
    assert parsed.pages == (EmbeddedPage((), Page(30, 15)),)
    assert parsed.top_page == Page(30, 15)


def test_embedded_limit_offset() -> None:
    parsed = request(query=[("actors.limit", "10"), ("actors.offset", "2")])
    assert parsed.pages == (EmbeddedPage(("actors",), Page(2, 10)),)
    assert parsed.top_page == Page()


def test_offset_alone() -> None:
    assert request(query=[("offset", "5")]).top_page == Page(5, None)


def test_negative_limit_is_416() -> None:
    error = raises(lambda: request(query=[("limit", "-1")]))
    assert (error.status, error.code) == (416, "PGRST103")
    assert error.details == "Limit should be greater than or equal to zero."


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "x"),
        ("limit", "1.5"),
        ("limit", ""),
        ("offset", "-1"),
        ("offset", "ten"),
        ("limit", "9" * 30),
        ("offset", "1e3"),
    ],
)
def test_bad_limit_offset(name: str, value: str) -> None:
    error = raises(lambda: request(query=[(name, value)]))
    assert (error.status, error.code) == (400, "PGRST100")


def test_range_header() -> None:
    assert parse_range_header("0-19") == Page(0, 20)
    assert parse_range_header("10-") == Page(10, None)
    assert parse_range_header("5-5") == Page(5, 1)
    assert request(headers={"Range": "0-19", "Range-Unit": "items"}).top_page == Page(0, 20)


def test_range_header_unparseable_is_ignored() -> None:
    for value in ("items=0-9", "abc", "-5", "1-2-3", ""):
        assert parse_range_header(value) is None
    assert request(headers={"range": "bytes=0-9"}).top_page == Page()


def test_range_reversed_is_416() -> None:
    error = raises(lambda: request(headers={"Range": "5-2"}))
    assert (error.status, error.code) == (416, "PGRST103")
    assert error.details == (
        "The lower boundary must be lower than or equal to the upper boundary in the Range header."
    )


def test_range_combines_with_limit_offset() -> None:
    assert request(query=[("limit", "10"), ("offset", "2")], headers={"Range": "0-4"}).top_page == Page(2, 3)
    assert intersect_pages(Page(0, 5), Page(10, None)) == Page(10, 0)
    assert intersect_pages(Page(), Page()) == Page()


def test_range_header_applies_to_reads_only() -> None:
    assert request("DELETE", headers={"Range": "0-4"}).top_page == Page()


def test_put_with_limit_or_offset() -> None:
    for name in ("limit", "offset"):
        error = raises(lambda name=name: request("PUT", query=[(name, "1")]))  # type: ignore[misc]
        assert (error.status, error.code) == (400, "PGRST114")


def test_columns_and_on_conflict() -> None:
    parsed = request("POST", query=[("columns", '"id","name",other'), ("on_conflict", "a, b")])
    assert parsed.columns == ("id", "name", "other")
    assert parsed.on_conflict == ("a", "b")
    assert request().columns is None


def test_columns_malformed() -> None:
    error = raises(lambda: parse_columns("a,,b"))
    assert error.code == "PGRST100"
    assert error.message.startswith('"failed to parse columns parameter (a,,b)"')
    error = raises(lambda: request("POST", query=[("on_conflict", "")]))
    assert error.message.startswith('"failed to parse on_conflict parameter ()"')


# --- Prefer ------------------------------------------------------------------------------


def test_prefer_all_preferences() -> None:
    assert parse_prefer(
        "return=representation, count=exact,resolution=merge-duplicates,missing=default,"
        "handling=lenient,tx=rollback,max-affected=5,timezone=America/Los_Angeles"
    ) == Preferences(
        return_=ReturnPreference.REPRESENTATION,
        count=CountPreference.EXACT,
        resolution=ResolutionPreference.MERGE_DUPLICATES,
        missing=MissingPreference.DEFAULT,
        handling=HandlingPreference.LENIENT,
        tx=TxPreference.ROLLBACK,
        max_affected=5,
        timezone="America/Los_Angeles",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("return=minimal", Preferences(return_=ReturnPreference.MINIMAL)),
        ("return=headers-only", Preferences(return_=ReturnPreference.HEADERS_ONLY)),
        ("count=planned", Preferences(count=CountPreference.PLANNED)),
        ("count=estimated", Preferences(count=CountPreference.ESTIMATED)),
        (
            "resolution=ignore-duplicates",
            Preferences(resolution=ResolutionPreference.IGNORE_DUPLICATES),
        ),
        ("missing=null", Preferences(missing=MissingPreference.NULL)),
        ("tx=commit", Preferences(tx=TxPreference.COMMIT)),
        ("handling=strict", Preferences(handling=HandlingPreference.STRICT)),
        ("timezone=05:30", Preferences(timezone="05:30")),
        ("timezone=-4", Preferences(timezone="-4")),
    ],
)
def test_prefer_values(text: str, expected: Preferences) -> None:
    assert parse_prefer(text) == expected


def test_prefer_first_value_wins() -> None:
    assert parse_prefer("tx=commit, tx=rollback").tx is TxPreference.COMMIT


def test_prefer_repeated_headers_joined_by_caller() -> None:
    parsed = request(headers={"Prefer": "return=representation", "prefer": "count=exact"})
    assert parsed.preferences.return_ is ReturnPreference.REPRESENTATION
    assert parsed.preferences.count is CountPreference.EXACT


def test_prefer_lenient_ignores_unknown() -> None:
    assert parse_prefer("count=exact, anything, return=everything, params=single-object") == (
        Preferences(
            count=CountPreference.EXACT,
            invalid=("anything", "return=everything", "params=single-object"),
        )
    )


def test_prefer_strict_rejects_unknown() -> None:
    error = raises(lambda: parse_prefer("handling=strict, foo, bar=baz"))
    assert error.status == 400
    assert error.body() == {
        "code": "PGRST122",
        "message": "Invalid preferences given with handling=strict",
        "details": "Invalid preferences: foo, bar=baz",
        "hint": None,
    }


def test_prefer_strict_with_valid_preferences() -> None:
    assert parse_prefer("handling=strict,max-affected=10") == Preferences(
        handling=HandlingPreference.STRICT, max_affected=10
    )


@pytest.mark.parametrize("text", ["max-affected=-1", "max-affected=x", "max-affected=" + "9" * 19])
def test_prefer_bad_max_affected(text: str) -> None:
    assert parse_prefer(text).invalid == (text,)
    assert raises(lambda: parse_prefer("handling=strict," + text)).code == "PGRST122"


def test_prefer_empty() -> None:
    assert parse_prefer(None) == Preferences()
    assert parse_prefer(" , ,") == Preferences()


# --- Accept, Content-Type, profiles ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (None, MediaKind.JSON),
        ("application/json", MediaKind.JSON),
        ("*/*", MediaKind.JSON),
        ("text/csv", MediaKind.CSV),
        ("application/vnd.pgrst.object+json", MediaKind.SINGULAR),
        ("application/vnd.pgrst.object", MediaKind.SINGULAR),
        ("application/vnd.pgrst.array+json", MediaKind.JSON),
        ("application/vnd.pgrst.array+json;nulls=stripped", MediaKind.ARRAY_STRIPPED),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", MediaKind.JSON),
        ("text/csv;q=0.5, application/json", MediaKind.JSON),
        ("application/json;q=0.5, text/csv", MediaKind.CSV),
        ("Application/JSON", MediaKind.JSON),
    ],
)
def test_accept_negotiation(header: str | None, kind: MediaKind) -> None:
    headers = {} if header is None else {"Accept": header}
    assert request(headers=headers).accept.kind is kind


def test_accept_singular_nulls_stripped() -> None:
    media = request(headers={"Accept": "application/vnd.pgrst.object+json;nulls=stripped"}).accept
    assert media == MediaType(MediaKind.SINGULAR, "application/vnd.pgrst.object+json", nulls_stripped=True)


def test_accept_unsupported_is_406() -> None:
    error = raises(lambda: request(headers={"Accept": "text/html, application/xml"}))
    assert error.status == 406
    assert error.body() == {
        "code": "PGRST107",
        "message": "None of these media types are available: text/html, application/xml",
        "details": None,
        "hint": None,
    }


def test_accept_q_zero_excludes() -> None:
    error = raises(lambda: request(headers={"Accept": "application/json;q=0"}))
    assert (error.code, error.message) == (
        "PGRST107",
        "None of these media types are available: application/json",
    )
    assert request(headers={"Accept": "application/json;q=0, text/csv"}).accept.kind is (MediaKind.CSV)


def test_accept_geojson_is_negotiated_for_reads() -> None:
    # Whether PostGIS is there is the schema cache's to say (406 PGRST107 when it is not:
    # tests/integration/test_rest_compat_writes.py); the parse stage accepts the type.
    assert request(headers={"Accept": "application/geo+json"}).accept.kind == MediaKind.GEOJSON
    error = raises(lambda: request(headers={"Accept": "application/geo+json"}, kind="root"))
    assert (error.status, error.code) == (406, "PGRST107")


def test_accept_plan_media_type() -> None:
    header = 'application/vnd.pgrst.plan+json; for="application/json"; options=analyze|verbose;'
    assert parse_accept(header) == (
        MediaType(
            MediaKind.PLAN,
            "application/vnd.pgrst.plan+json",
            plan_for=MediaType(MediaKind.JSON, "application/json"),
            plan_format="json",
            plan_options=(PlanOption.ANALYZE, PlanOption.VERBOSE),
        ),
    )
    assert decode_media_type("application/vnd.pgrst.plan").plan_format == "text"
    assert decode_media_type('application/vnd.pgrst.plan+text;for="text/csv"').plan_for == (
        MediaType(MediaKind.CSV, "text/csv")
    )


def test_accept_plan_needs_plan_enabled() -> None:
    headers = {"Accept": "application/vnd.pgrst.plan"}
    assert raises(lambda: request(headers=headers)).code == "PGRST107"
    assert request(headers=headers, plan_enabled=True).accept.kind is MediaKind.PLAN


def test_accept_root_is_openapi() -> None:
    assert request(kind="root", target="").accept.kind is MediaKind.OPENAPI
    assert request(kind="root", target="", headers={"Accept": "*/*"}).accept.kind is (MediaKind.OPENAPI)
    assert raises(lambda: request(kind="root", target="", headers={"Accept": "text/csv"})).code == (
        "PGRST107"
    )


def test_negotiate_accept_direct() -> None:
    assert negotiate_accept((), "rpc") == MediaType(MediaKind.JSON, "application/json")


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (None, MediaKind.JSON),
        ("application/json; charset=utf-8", MediaKind.JSON),
        ("text/csv", MediaKind.CSV),
        ("application/x-www-form-urlencoded", MediaKind.URLENCODED),
    ],
)
def test_content_type_for_relations(header: str | None, kind: MediaKind) -> None:
    headers = {} if header is None else {"Content-Type": header}
    assert request("POST", headers=headers).content_type.kind is kind  # type: ignore[union-attr]


@pytest.mark.parametrize("header", ["text/plain", "application/octet-stream", "text/xml", "application/json"])
def test_content_type_for_rpc(header: str) -> None:
    parsed = request("POST", kind="rpc", target="f", headers={"content-type": header})
    assert parsed.content_type is not None and parsed.content_type.mime == header


def test_content_type_unsupported() -> None:
    error = raises(lambda: parse_content_type("application/x-custom", "relation"))
    assert error.status == 400
    assert error.body()["message"] == "Content-Type not acceptable: application/x-custom"
    assert raises(lambda: parse_content_type("text/plain", "relation")).code == "PGRST102"


def test_content_type_only_for_body_methods() -> None:
    assert request("GET", headers={"Content-Type": "image/png"}).content_type is None


def test_profiles() -> None:
    assert request(headers={"Accept-Profile": "tenant2"}).profile == "tenant2"
    assert request("POST", headers={"Content-Profile": "tenant2"}).profile == "tenant2"
    assert request("POST", headers={"Accept-Profile": "tenant2"}).profile is None
    assert request().profile is None


def test_check_profile() -> None:
    assert check_profile(None, ["api", "tenant2"]) == "api"
    assert check_profile("tenant2", ["api", "tenant2"]) == "tenant2"
    error = raises(lambda: check_profile("auth", ["api", "tenant2"]))
    assert error.status == 406
    assert error.body() == {
        "code": "PGRST106",
        "message": "Invalid schema: auth",
        "details": None,
        "hint": "Only the following schemas are exposed: api, tenant2",
    }


# --- methods, actions, RPC ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("GET", Action.READ),
        ("HEAD", Action.READ),
        ("POST", Action.INSERT),
        ("PATCH", Action.UPDATE),
        ("PUT", Action.UPSERT_ONE),
        ("DELETE", Action.DELETE),
        ("OPTIONS", Action.INFO),
    ],
)
def test_relation_actions(method: str, action: Action) -> None:
    assert request(method).action is action


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_rpc_method_not_allowed(method: str) -> None:
    error = raises(lambda: request(method, kind="rpc", target="f"))
    assert error.status == 405
    assert error.body() == {
        "code": "PGRST101",
        "message": f"Cannot use the {method} method on RPC",
        "details": None,
        "hint": None,
    }


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_rpc_methods(method: str) -> None:
    assert request(method, kind="rpc", target="f").action is Action.CALL


@pytest.mark.parametrize(("kind", "target"), [("relation", "films"), ("rpc", "f"), ("root", "")])
def test_unknown_method(kind: PathKind, target: str) -> None:
    error = raises(lambda: request("TRACE", kind=kind, target=target))
    assert (error.status, error.code) == (405, "PGRST117")
    assert error.message == "Unsupported HTTP method: TRACE"


def test_root_methods() -> None:
    assert request(kind="root", target="").action is Action.OPENAPI
    assert raises(lambda: request("POST", kind="root", target="")).code == "PGRST117"


def test_target_name_too_long_or_empty() -> None:
    for target in ("", "t" * 64):
        error = raises(lambda target=target: request(target=target))  # type: ignore[misc]
        assert (error.status, error.code) == (404, "PGRST125")


def test_rpc_get_arguments_and_filters() -> None:
    parsed = request(
        kind="rpc",
        target="f",
        query=[("a", "1"), ("v", "1"), ("v", "2"), ("b", "eq.2"), ("c", "{1,2}"), ("d", "x.y")],
    )
    assert parsed.rpc_args == (("a", "1"), ("v", "1"), ("v", "2"), ("c", "{1,2}"), ("d", "x.y"))
    assert parsed.filters == (EmbeddedFilter((), Filter(col("b"), OpCompare(Operator.EQ, "2"))),)


def test_rpc_post_parameters_are_filters() -> None:
    assert raises(lambda: request("POST", kind="rpc", target="f", query=[("a", "1")])).code == ("PGRST100")


def test_is_read_only() -> None:
    assert request("GET").is_read_only
    assert not request("POST").is_read_only


def test_whole_request() -> None:
    parsed = request(
        query=[
            ("select", "title,actors(first_name)"),
            ("actors.first_name", "eq.Tom"),
            ("actors", "not.is.null"),
            ("order", "title.desc"),
            ("limit", "2"),
        ],
        headers={"Prefer": "count=exact", "Accept": "text/csv", "Accept-Profile": "api"},
    )
    assert parsed == ApiRequest(
        method="GET",
        path_kind="relation",
        target="films",
        action=Action.READ,
        select=(column("title"), SelectEmbed("actors", (column("first_name"),))),
        filters=(
            EmbeddedFilter(("actors",), Filter(col("first_name"), OpCompare(Operator.EQ, "Tom"))),
            EmbeddedFilter((), Filter(col("actors"), OpIs(IsValue.NULL), negated=True)),
        ),
        order=(EmbeddedOrder((), (OrderTerm(col("title"), Direction.DESC),)),),
        pages=(EmbeddedPage((), Page(0, 2)),),
        top_page=Page(0, 2),
        preferences=Preferences(count=CountPreference.EXACT),
        accept=MediaType(MediaKind.CSV, "text/csv"),
        profile="api",
    )


def test_parse_output_is_frozen() -> None:
    parsed = request()
    with pytest.raises(AttributeError):
        parsed.target = "other"  # type: ignore[misc]


def test_select_parses_once_per_text_and_errors_are_never_cached() -> None:
    from fluxbase.rest.request import select

    text = "id,title,projects(id,name)"
    first = parse_select(text)
    assert parse_select(text) is first  # the cached tree: immutable, so sharing it is safe
    for _ in range(2):
        with pytest.raises(ApiError):
            parse_select("id,(")
    limits = ParseLimits(max_select_items=1)
    with pytest.raises(ApiError):
        parse_select(text, limits=limits)  # the limits are part of the key
    long_text = ",".join(f"c{i}" for i in range(select.SELECT_CACHE_MAX_CHARS // 3))
    assert parse_select(long_text) == parse_select(long_text)
    assert parse_select(long_text) is not parse_select(long_text)  # too long to keep
