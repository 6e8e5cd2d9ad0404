"""postgres_changes filters: parsing as Supabase Realtime does, evaluation as PostgreSQL would."""

from __future__ import annotations

from decimal import Decimal

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

TYPES = {
    "id": "int4",
    "big": "int8",
    "small": "int2",
    "price": "numeric",
    "score": "float8",
    "ratio": "float4",
    "name": "text",
    "title": "character varying(200)",
    "code": "bpchar",
    "email": "citext",
    "done": "bool",
    "uid": "uuid",
    "at": "timestamptz",
    "local_at": "timestamp",
    "day": "date",
    "clock": "time",
    "doc": "jsonb",
    "raw": "json",
    "mood": "mood_enum",
    "tags": "_text",
    "span": "interval",
}


def matches(text: str, record: dict[str, object]) -> bool:
    return parse_filter(text).matches(record, TYPES)


# --- parsing ---


def test_single_condition() -> None:
    assert parse_filter("id=eq.1") == Filter((Condition("id", Operator.EQ, False, "1", (), "id=eq.1"),))


def test_empty_and_blank_filters_match_everything() -> None:
    assert parse_filter("") == Filter(())
    assert parse_filter("   ") == Filter(())
    assert parse_filter("").matches({}, {})


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
        ("name=like.abc\\", "must not end with escape character"),
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


# --- subscribe-time checks ---


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope=eq.1", "invalid column for filter nope"),
        ("id=gt.abc", "invalid value 'abc' for column id of type integer"),
        ("id=eq.1.5", "invalid value"),
        ("small=eq.40000", "out of range for type smallint"),
        ("id=eq.2147483648", "out of range for type integer"),
        ("big=eq.9223372036854775808", "out of range for type bigint"),
        ("price=eq.12abc", "invalid input syntax for type numeric"),
        ("score=gt.1e400", "out of range for type double precision"),
        ("ratio=gt.1e39", "out of range for type real"),
        ("done=eq.maybe", "invalid input syntax for type boolean"),
        ("uid=eq.not-a-uuid", "invalid input syntax for type uuid"),
        ("at=gt.yesterday-ish", "invalid value"),
        ("at=gt.now", "'now' is not supported"),
        ("day=eq.2024-02-30", "invalid value"),
        ("doc=eq.{bad", "invalid value"),
        ("doc=eq.NaN", "invalid value"),
        ("doc=lt.1", "operator lt is not supported for column doc of type jsonb"),
        ("raw=eq.{}", "operator eq is not supported for column raw of type json"),
        ("id=like.1%", "operator like is not supported for column id"),
        ("name=is.true", "is.true filter requires a boolean column, got text"),
        ("id=is.unknown", "requires a boolean column"),
        ("mood=gt.happy", "operator gt is not supported for column mood of type mood_enum"),
        ("tags=eq.{a}", "array column tags"),
        ("span=eq.1 day", "column span of type interval are not supported"),
        ("id=in.(1,x)", "invalid value 'x'"),
    ],
)
def test_check_columns_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(text).check_columns(TYPES)


@pytest.mark.parametrize(
    "text",
    [
        "id=eq.1",
        "id=eq. 42 ",
        "id=eq.1_000",
        "id=eq.0x1F",
        "price=gte.1e3",
        "price=eq.NaN",
        "score=lt.-Infinity",
        "done=eq.yes",
        "uid=eq.{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}",
        "at=gt.2024-01-01 10:00:00+02",
        "at=lt.infinity",
        "local_at=gt.2024-01-01T10:00:00",
        "day=gte.2024-02-29",
        "clock=lt.12:30",
        'doc=eq."{\\"a\\": [1, 2.50]}"',
        "raw=is.null",
        "mood=in.(happy,sad)",
        "tags=is.null",
        "span=not.is.null",
        "name=isdistinct.x",
    ],
)
def test_check_columns_accepts(text: str) -> None:
    parse_filter(text).check_columns(TYPES)


# --- evaluation by column type ---


def test_integers_compare_numerically() -> None:
    assert matches("id=gt.9", {"id": 10})
    assert not matches("id=gt.9", {"id": 9})
    assert matches("id=lte.-3", {"id": -3})
    assert matches("big=eq.9007199254740993", {"big": 9007199254740993})
    assert matches("id=eq.2", {"id": 2.0})


def test_text_compares_as_text() -> None:
    assert matches("name=lt.b", {"name": "a"})
    assert not matches("name=lt.b", {"name": "ba"})
    assert matches("name=gt.10", {"name": "9"})  # text order, not numbers
    assert matches("title=eq.x y", {"title": "x y"})


def test_numeric_is_exact_and_orders_nan_last() -> None:
    assert matches("price=eq.1.10", {"price": 1.1})
    assert matches("price=eq.0.1", {"price": Decimal("0.1")})
    assert not matches("price=eq.0.3", {"price": 0.30000000000000004})
    assert matches("price=gt.1e9", {"price": "NaN"})
    assert matches("price=eq.nan", {"price": "NaN"})
    assert matches("price=lt.Infinity", {"price": 1e300})


def test_floats() -> None:
    assert matches("score=gt.1.5", {"score": 2})
    assert matches("score=eq.NaN", {"score": "NaN"})
    assert matches("score=gt.1e308", {"score": "Infinity"})
    assert matches("ratio=eq.0.1", {"ratio": 0.1})  # both sides rounded to single precision


def test_booleans() -> None:
    assert matches("done=eq.t", {"done": True})
    assert matches("done=eq.off", {"done": False})
    assert matches("done=is.true", {"done": True})
    assert not matches("done=is.true", {"done": None})
    assert matches("done=not.is.true", {"done": None})
    assert matches("done=not.is.true", {"done": False})
    assert matches("done=is.false", {"done": False})
    assert matches("done=is.unknown", {"done": None})
    assert matches("done=lt.true", {"done": False})


def test_is_null() -> None:
    assert matches("name=is.null", {"name": None})
    assert not matches("name=is.null", {"name": ""})
    assert matches("name=not.is.null", {"name": ""})
    assert not matches("name=is.null", {})  # column missing from the change: fail closed


def test_uuid_case_insensitive() -> None:
    assert matches(
        "uid=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        {"uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    )
    # ordering is bytewise, as PostgreSQL compares uuids
    assert matches("uid=lt.FFFFFFFF-0000-0000-0000-000000000000", {"uid": "0" * 32})


def test_timestamps_compare_as_instants() -> None:
    assert matches("at=eq.2024-01-01T12:00:00+02:00", {"at": "2024-01-01T10:00:00+00:00"})
    assert matches("at=gt.2024-01-01 09:59:59.999999+00", {"at": "2024-01-01T10:00:00+00:00"})
    assert matches("at=gt.2024-01-01T10:00:00", {"at": "2024-01-01T10:00:00.000001+00:00"})
    assert matches("at=lt.infinity", {"at": "2024-01-01T10:00:00+00:00"})
    assert matches("at=gt.-infinity", {"at": "infinity"})
    assert matches("at=eq.epoch", {"at": "1970-01-01T00:00:00+00:00"})
    # timestamp without time zone ignores offsets, as PostgreSQL does on input
    assert matches("local_at=eq.2024-01-01T10:00:00+05:00", {"local_at": "2024-01-01T10:00:00"})
    assert matches("day=lt.2024-03-01", {"day": "2024-02-29"})
    assert matches("clock=gte.08:00", {"clock": "08:00:00"})


def test_bpchar_ignores_trailing_blanks_and_citext_ignores_case() -> None:
    assert matches("code=eq.ab", {"code": "ab   "})
    assert matches("code=like.a_", {"code": "ab   "})
    assert matches("email=eq.Ann@Example.com", {"email": "ann@example.COM"})
    assert matches("email=like.ANN%", {"email": "ann@x"})


def test_jsonb_equality_is_structural() -> None:
    assert matches('doc=eq."{\\"b\\": [1], \\"a\\": 1.0}"', {"doc": {"a": 1, "b": [1]}})
    assert not matches('doc=eq."{\\"a\\": true}"', {"doc": {"a": 1}})
    assert matches('doc=eq."\\"text\\""', {"doc": "text"})
    assert matches("doc=neq.1", {"doc": [1]})


def test_enum_equality_by_label() -> None:
    assert matches("mood=eq.happy", {"mood": "happy"})
    assert matches("mood=in.(sad,happy)", {"mood": "happy"})
    assert not matches("mood=neq.happy", {"mood": "happy"})


def test_in_lists() -> None:
    assert matches("id=in.(1,2,3)", {"id": 2})
    assert not matches("id=in.(1,2,3)", {"id": 4})
    assert matches("id=not.in.(1,2,3)", {"id": 4})
    assert matches('name=in.("a,b",c)', {"name": "a,b"})
    assert not matches("id=in.()", {"id": 1})
    assert matches("id=not.in.()", {"id": 1})
    # x = ANY('{1,NULL}') is NULL when x is not 1, so neither form lets the row through
    assert matches("id=in.(1,NULL)", {"id": 1})
    assert not matches("id=in.(1,NULL)", {"id": 2})
    assert not matches("id=not.in.(1,NULL)", {"id": 2})


def test_null_column_values_never_match_comparisons() -> None:
    for text in ("id=eq.1", "id=neq.1", "id=not.eq.1", "id=lt.1", "id=in.(1)", "name=like.%"):
        assert not matches(text, {"id": None, "name": None}), text


def test_isdistinct_handles_null() -> None:
    assert matches("id=isdistinct.1", {"id": None})
    assert matches("id=isdistinct.1", {"id": 2})
    assert not matches("id=isdistinct.1", {"id": 1})
    assert matches("id=not.isdistinct.1", {"id": 1})
    assert not matches("id=not.isdistinct.1", {"id": None})


def test_not_prefix_on_comparisons() -> None:
    assert matches("id=not.eq.1", {"id": 2})
    assert not matches("id=not.gt.1", {"id": 2})
    assert matches("name=not.like.a%", {"name": "ba"})


def test_all_conditions_must_hold() -> None:
    text = "id=gt.0,id=lt.100,name=eq.x"
    assert matches(text, {"id": 5, "name": "x"})
    assert not matches(text, {"id": 500, "name": "x"})
    assert not matches(text, {"id": 5, "name": "y"})


def test_unconvertible_record_values_do_not_match_or_raise() -> None:
    assert not matches("id=eq.1", {"id": "one"})
    assert not matches("id=eq.1", {"id": True})
    assert not matches("id=eq.1", {"id": 1.5})
    assert not matches("name=eq.1", {"name": 1})
    assert not matches("uid=eq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {"uid": "zzz"})
    assert not matches("at=gt.2024-01-01", {"at": "10000-01-01T00:00:00+00:00"})
    assert not matches("doc=eq.1", {"doc": {1, 2}})
    assert not matches("done=is.true", {"done": "nah"})
    nested: object = []
    for _ in range(5000):
        nested = [nested]
    assert not matches("doc=eq.1", {"doc": nested})


def test_filter_that_no_longer_fits_the_table_matches_nothing() -> None:
    parsed = parse_filter("id=eq.1")
    assert parsed.matches({"id": 1}, {"id": "int4"})
    assert not parsed.matches({"id": 1}, {"other": "int4"})
    assert not parsed.matches({"id": 1}, {"id": "uuid"})


def test_bind_once_then_match_many() -> None:
    bound = parse_filter("id=gte.10").bind(TYPES)
    assert [bound.matches({"id": n}) for n in (9, 10, 11)] == [False, True, True]


# --- LIKE / ILIKE ---


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("abc", "abc", True),
        ("abc", "abcd", False),
        ("a%", "abc", True),
        ("a*", "abc", True),
        ("%c", "abc", True),
        ("%b%", "abc", True),
        ("%x%", "abc", False),
        ("a_c", "abc", True),
        ("a_c", "ac", False),
        ("_%_", "a", False),
        ("%", "", True),
        ("", "", True),
        ("", "a", False),
        ("a%b%c", "aXbYc", True),
        ("a%b%c", "acb", False),
        ("%aa%aa%", "aaa", False),
        ("%aa%aa%", "aaaa", True),
        ("a\\%", "a%", True),
        ("a\\%", "ab", False),
        ("a\\*", "a*", True),
        ("a\\_", "a_", True),
        ("a\\_", "ab", False),
        ("%.%", "a.b", True),
        ("(%)", "(x)", True),
        ("%_", "\n", True),
        ("ab%ab", "ab", False),
        ("ab%ba", "aba", False),
        ("ab%ba", "abba", True),
    ],
)
def test_like(pattern: str, text: str, expected: bool) -> None:
    assert matches(f"name=like.{pattern}", {"name": text}) is expected


def test_quoting_consumes_one_level_of_backslashes() -> None:
    # The filter's own quoting unescapes first, so a literal % inside quotes needs two.
    literal_percent = r'name=like."50\\%, off"'
    assert matches(literal_percent, {"name": "50%, off"})
    assert not matches(literal_percent, {"name": "50 euros, off"})
    assert matches(r'name=like."50\%, off"', {"name": "50 euros, off"})


def test_ilike_ignores_case_like_does_not() -> None:
    assert matches("name=ilike.HELLO%", {"name": "hello world"})
    assert not matches("name=like.HELLO%", {"name": "hello world"})
    assert matches("name=not.ilike.%x%", {"name": "ABC"})


def test_like_is_linear_enough_on_hostile_input() -> None:
    pattern = "%" + "a%" * 30 + "b"
    assert not matches(f"name=like.{pattern}", {"name": "a" * 100_000})
