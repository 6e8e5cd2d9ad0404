"""The shared filter grammar on its own: pure values out, GrammarFailure (not HTTP) on errors.

Realtime reads its filters with this grammar too, so its contract is tested without rest/.
"""

from __future__ import annotations

import pytest

from fluxbase.query_grammar.cursor import Cursor, GrammarFailure, ParseLimits
from fluxbase.query_grammar.filters import (
    IsValue,
    OpCompare,
    Operation,
    Operator,
    OpIn,
    OpIs,
    Quantifier,
    read_operation,
)
from fluxbase.query_grammar.names import FieldPath, JsonStep, read_field


def operation(text: str, *, in_logic: bool = False) -> tuple[bool, Operation, str]:
    cursor = Cursor(text, ParseLimits())
    negated, op = read_operation(cursor, in_logic=in_logic)
    return negated, op, text[cursor.pos :]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eq.5", (False, OpCompare(Operator.EQ, "5"))),
        ("not.neq.a,b", (True, OpCompare(Operator.NEQ, "a,b"))),
        ("lte.2024-01-01", (False, OpCompare(Operator.LTE, "2024-01-01"))),
        ("like.*ab*", (False, OpCompare(Operator.LIKE, "%ab%"))),
        ("ilike(any).{a*,b*}", (False, OpCompare(Operator.ILIKE, "{a%,b%}", Quantifier.ANY))),
        ('in.(1,"a,b",)', (False, OpIn(("1", "a,b", "")))),
        ("in.()", (False, OpIn(()))),
        ("not.is.NULL", (True, OpIs(IsValue.NULL))),
        ("is.not_null", (False, OpIs(IsValue.NOT_NULL))),
    ],
)
def test_operations_read_at_top_level(text: str, expected: tuple[bool, Operation]) -> None:
    negated, op, rest = operation(text)
    assert (negated, op) == expected
    assert rest == ""


def test_inside_a_logic_tree_a_value_ends_at_comma_or_parenthesis() -> None:
    assert operation('eq."a,b"),x', in_logic=True) == (False, OpCompare(Operator.EQ, "a,b"), "),x")
    assert operation("gt.3,y", in_logic=True) == (False, OpCompare(Operator.GT, "3"), ",y")


@pytest.mark.parametrize(
    ("text", "position"),
    [("eqq.5", 4), ("is.maybe", 3), ("in.(1,2", 7), ("neq(any).1", 3), (".5", 0)],
)
def test_errors_are_grammar_failures_at_the_offending_position(text: str, position: int) -> None:
    with pytest.raises(GrammarFailure) as failure:
        operation(text)
    assert failure.value.pos == position


def test_field_with_json_path() -> None:
    cursor = Cursor("data->phones->0->>number", ParseLimits())
    assert read_field(cursor) == FieldPath(
        "data", (JsonStep("->", "phones"), JsonStep("->", "0", 0), JsonStep("->>", "number"))
    )
