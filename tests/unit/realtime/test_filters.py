"""postgres_changes filters: the data API's grammar for each `column=op.value`, comma = AND.

PostgreSQL evaluates them: tests/sql/realtime_visible_changes.sql, and
tests/integration/test_realtime_filters.py compares them with /rest/v1 under a real collation.
"""

from __future__ import annotations

import pytest

from fluxbase.query_grammar.filters import IsValue, OpCompare, Operator, OpIn, OpIs
from fluxbase.realtime.filters import (
    MAX_CONDITIONS,
    MAX_FILTER_LENGTH,
    Condition,
    Filter,
    FilterError,
    parse_filter,
)


def test_single_condition() -> None:
    assert parse_filter("id=eq.1") == Filter((Condition("id", OpCompare(Operator.EQ, "1")),), "id=eq.1")


def test_empty_and_blank_filters_match_everything() -> None:
    assert parse_filter("") == Filter(())
    assert parse_filter("   ") == Filter(())
    assert parse_filter("").to_json() == {"c": []}


def test_commas_join_conditions_with_and() -> None:
    parsed = parse_filter("id=gt.0, id=lt.100")
    assert [c.to_json() for c in parsed.conditions] == [
        {"col": "id", "op": "gt", "not": False, "v": "0"},
        {"col": "id", "op": "lt", "not": False, "v": "100"},
    ]


def test_not_prefix_negates_and_star_is_percent_as_in_the_data_api() -> None:
    (condition,) = parse_filter("name=not.like.hey*").conditions
    assert condition == Condition("name", OpCompare(Operator.LIKE, "hey%"), True)


def test_value_keeps_dots_after_the_operator() -> None:
    (condition,) = parse_filter("email=eq.a.b@example.com").conditions
    assert condition.operation == OpCompare(Operator.EQ, "a.b@example.com")


def test_in_lists_are_read_as_the_data_api_reads_them() -> None:
    (condition,) = parse_filter('name=in.(a,"b,c","say \\"hi\\"",NULL)').conditions
    assert condition.operation == OpIn(("a", "b,c", 'say "hi"', "NULL"))
    assert parse_filter("id=in.()").conditions[0].operation == OpIn(())


def test_quoted_values_protect_commas() -> None:
    parsed = parse_filter('name=eq."Oslo, Norway",id=eq.1')
    assert [c.to_json()["v"] for c in parsed.conditions] == ["Oslo, Norway", "1"]
    assert parse_filter('name=eq."a\\"b\\\\c"').conditions[0].operation == OpCompare(Operator.EQ, 'a"b\\c')
    assert parse_filter('name=eq.""').conditions[0].operation == OpCompare(Operator.EQ, "")


def test_quote_in_the_middle_of_a_value_is_literal() -> None:
    assert parse_filter('name=eq.a"b').conditions[0].operation == OpCompare(Operator.EQ, 'a"b')


def test_is_values_case_insensitive_including_not_null() -> None:
    assert parse_filter("done=is.TRUE").conditions[0].operation == OpIs(IsValue.TRUE)
    (condition,) = parse_filter("at=not.is.null").conditions
    assert condition == Condition("at", OpIs(IsValue.NULL), True)
    assert parse_filter("at=is.not_null").conditions[0].to_json()["v"] == "not_null"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id", "has no '='"),
        ("=eq.1", "has no column name"),
        ("id=eq", 'expecting "."'),
        ("id=foo.1", "unknown single value operator foo"),
        ("id=EQ.1", "expecting operator"),
        ("id=not.not.eq.1", "unknown single value operator not"),
        ("name=match.^a", "regular expressions"),
        ("name=imatch.^a", "regular expressions"),
        ("tags=cs.{a}", "unsupported operator 'cs'"),
        ("body=fts.cat", "unsupported operator 'fts'"),
        ("id=eq(any).{1,2}", "quantifiers are not supported"),
        ("id=eq.1,,name=eq.x", "empty conditions"),
        ("id=eq.1,", "empty conditions"),
        ("id=in.1,2", 'expecting "("'),
        ("id=eq.(x)", "join conditions with ','"),
        ("done=is.maybe", "expecting null or trilean value"),
        ("undefined", "has no '='"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("(", r"\(")):
        parse_filter(text)


def test_parse_limits() -> None:
    with pytest.raises(FilterError, match="longer than"):
        parse_filter("id=eq." + "1" * MAX_FILTER_LENGTH)
    with pytest.raises(FilterError, match="more than 16 conditions"):
        parse_filter(",".join(["id=eq.1"] * (MAX_CONDITIONS + 1)))
    with pytest.raises(FilterError, match="more than 100 values"):
        parse_filter("id=in.(" + ",".join(str(n) for n in range(101)) + ")")
    assert len(parse_filter("id=in.(" + ",".join(str(n) for n in range(100)) + ")").conditions) == 1


def test_non_string_filter() -> None:
    with pytest.raises(FilterError, match="must be a string"):
        parse_filter(None)  # type: ignore[arg-type]


def test_json_for_the_database_carries_every_condition() -> None:
    parsed = parse_filter('name=not.ilike.a*b,id=in.(1,2),done=is.TRUE,title=eq."x,y",n=isdistinct.3')
    assert parsed.source == 'name=not.ilike.a*b,id=in.(1,2),done=is.TRUE,title=eq."x,y",n=isdistinct.3'
    assert parsed.columns == {"name", "id", "done", "title", "n"}
    assert parsed.to_json() == {
        "c": [
            {"col": "name", "op": "ilike", "not": True, "v": "a%b"},
            {"col": "id", "op": "in", "not": False, "vs": ["1", "2"]},
            {"col": "done", "op": "is", "not": False, "v": "true"},
            {"col": "title", "op": "eq", "not": False, "v": "x,y"},
            {"col": "n", "op": "isdistinct", "not": False, "v": "3"},
        ]
    }
