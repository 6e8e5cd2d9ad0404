"""postgres_changes filters: parsing as Supabase Realtime does (PostgreSQL evaluates them:
tests/sql/realtime_visible_changes.sql, tests/integration/test_realtime_filters.py)."""

from __future__ import annotations

import pytest

from fluxbase.realtime.filters import (
    MAX_CONDITIONS,
    MAX_FILTER_LENGTH,
    Condition,
    Filter,
    FilterError,
    Operator,
    parse_filter,
)

# --- parsing ---


def test_single_condition() -> None:
    expected = Filter((Condition("id", Operator.EQ, False, "1", (), "id=eq.1"),), "id=eq.1")
    assert parse_filter("id=eq.1") == expected


def test_empty_and_blank_filters_match_everything() -> None:
    assert parse_filter("") == Filter(())
    assert parse_filter("   ") == Filter(())


def test_commas_join_conditions_with_and() -> None:
    parsed = parse_filter("id=gt.0, id=lt.100")
    assert [(c.column, c.operator, c.value) for c in parsed.conditions] == [
        ("id", Operator.GT, "0"),
        ("id", Operator.LT, "100"),
    ]


def test_not_prefix_negates() -> None:
    (condition,) = parse_filter("name=not.like.hey%").conditions
    assert (condition.operator, condition.negated, condition.value) == (Operator.LIKE, True, "hey%")


def test_value_keeps_dots_after_the_operator() -> None:
    (condition,) = parse_filter("email=eq.a.b@example.com").conditions
    assert condition.value == "a.b@example.com"


def test_in_list_uses_array_literal_rules() -> None:
    (condition,) = parse_filter('name=in.(a, "b,c" ,"say \\"hi\\"",NULL,"NULL", d e )').conditions
    assert condition.values == ("a", "b,c", 'say "hi"', None, "NULL", "d e")
    assert parse_filter("id=in.()").conditions[0].values == ()


def test_quoted_values_protect_commas() -> None:
    parsed = parse_filter('name=eq."Oslo, Norway",id=eq.1')
    assert [c.value for c in parsed.conditions] == ["Oslo, Norway", "1"]
    assert parse_filter('name=eq."a\\"b\\\\c"').conditions[0].value == 'a"b\\c'
    assert parse_filter('name=eq.""').conditions[0].value == ""


def test_quote_in_the_middle_of_a_value_is_literal() -> None:
    assert parse_filter('name=eq.a"b').conditions[0].value == 'a"b'


def test_is_keywords_case_insensitive() -> None:
    assert parse_filter("done=is.TRUE").conditions[0].value == "true"
    (condition,) = parse_filter("at=not.is.null").conditions
    assert (condition.operator, condition.negated, condition.value) == (Operator.IS, True, "null")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id", "has no '='"),
        ("=eq.1", "has no column name"),
        ("id=eq", "must look like column=operator.value"),
        ("id=foo.1", "unsupported operator 'foo'"),
        ("id=EQ.1", "unsupported operator 'EQ'"),
        ("id=not.not.eq.1", "unsupported operator 'not'"),
        ("name=match.^a", "regular expressions"),
        ("name=imatch.^a", "regular expressions"),
        ("id=eq.1,,name=eq.x", "empty conditions"),
        ("id=eq.1,", "empty conditions"),
        ("id=in.1,2", "wrapped in parentheses"),
        ("id=in.(1,,2)", "empty value"),
        ("id=in.(1,{2})", "unexpected '{'"),
        ('id=in.("1)', "unterminated double quote"),
        ('id=in.("1"x)', "expected ','"),
        ('name=eq."abc', "unterminated double quote"),
        ('name=eq."a"b', "text after the closing quote"),
        ("done=is.maybe", "`is` accepts null, true, false or unknown"),
        ("undefined", "has no '='"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


def test_parse_limits() -> None:
    with pytest.raises(FilterError, match="longer than"):
        parse_filter("id=eq." + "1" * MAX_FILTER_LENGTH)
    with pytest.raises(FilterError, match="more than 16 conditions"):
        parse_filter(",".join(["id=eq.1"] * (MAX_CONDITIONS + 1)))
    with pytest.raises(FilterError, match="Maximum 100"):
        parse_filter("id=in.(" + ",".join(str(n) for n in range(101)) + ")")
    assert len(parse_filter("id=in.(" + ",".join(str(n) for n in range(100)) + ")").conditions) == 1


def test_non_string_filter() -> None:
    with pytest.raises(FilterError, match="must be a string"):
        parse_filter(None)  # type: ignore[arg-type]


def test_json_for_the_database_carries_every_condition() -> None:
    parsed = parse_filter('name=not.ilike.a*b,id=in.(1,NULL),done=is.TRUE,title=eq."x,y"')
    assert parsed.source == 'name=not.ilike.a*b,id=in.(1,NULL),done=is.TRUE,title=eq."x,y"'
    assert parsed.columns == {"name", "id", "done", "title"}
    assert parsed.to_json() == {
        "c": [
            {"col": "name", "op": "ilike", "not": True, "v": "a%b"},
            {"col": "id", "op": "in", "not": False, "vs": ["1", None]},
            {"col": "done", "op": "is", "not": False, "v": "true"},
            {"col": "title", "op": "eq", "not": False, "v": "x,y"},
        ]
    }
    assert parse_filter("").to_json() == {"c": []}
