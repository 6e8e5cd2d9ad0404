"""Statements of /rpc/fn calls."""

from __future__ import annotations

import orjson

from fluxbase.db.identifiers import quote_ident
from fluxbase.rest.plan.model import (
    JSON_TYPES,
    Argument,
    CallPlan,
)
from fluxbase.rest.query.render import RESPONSE_SETTINGS, Renderer, Statement, quote_name


def _argument(renderer: Renderer, argument: Argument, *, from_query: bool) -> str:
    """One named argument: its value bound as text and converted to the parameter's type."""
    parameter = argument.parameter
    value = argument.value
    sql_type = parameter.type
    if value is None:
        expression = f"NULL::{sql_type}"
    elif from_query:
        expression = renderer.typed_value(str(value), sql_type)
    elif sql_type in JSON_TYPES:
        expression = f"({renderer.statement.bind(orjson.dumps(value).decode())}::text)::{sql_type}"
    elif isinstance(value, list) and sql_type.endswith("[]"):
        param = renderer.statement.bind(orjson.dumps(value).decode())
        expression = f"ARRAY(SELECT json_array_elements_text({param}::json))::{sql_type}"
    elif isinstance(value, dict):
        param = renderer.statement.bind(orjson.dumps(value).decode())
        expression = f"json_populate_record(NULL::{sql_type}, {param}::json)"
    else:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        expression = renderer.typed_value(text, sql_type)
    prefix = "VARIADIC " if parameter.variadic else ""
    return f"{quote_ident(parameter.name)} => {prefix}{expression}"


CALL_SOURCE = "pgrst_source"


def call_statement(
    plan: CallPlan, body: bytes | None, *, from_query: bool, exact_count: bool, single: bool
) -> Statement:
    """One statement calling the function: total, page_total, body and the response.* settings."""
    statement = Statement()
    renderer = Renderer(statement)
    function = quote_name(plan.function.name)
    if plan.whole_body:
        call = f"{function}({statement.bind((body or b'{}').decode())}::{plan.function.parameters[0].type})"
    else:
        call = (
            f"{function}({', '.join(_argument(renderer, a, from_query=from_query) for a in plan.arguments)})"
        )
    # The call runs once, materialized, however often the page and the count read it.
    source = CALL_SOURCE
    total = "NULL::bigint"
    if plan.read is not None:
        with_source = f"WITH {source} AS MATERIALIZED (SELECT * FROM {call} AS _f) "
        page = renderer.read(plan.read, source=source)
        if exact_count:
            total = (
                f"(SELECT count(*) FROM ({renderer.read(plan.read, source=source, count_only=True)}) AS _c)"
            )
        single_row = single or not plan.function.returns_set
        body_sql = "(json_agg(_t) -> 0)::text" if single_row else "coalesce(json_agg(_t), '[]')::text"
        select = (
            f"{with_source}SELECT {total} AS total, count(_t) AS page_total, {body_sql} AS body "
            f"FROM ({page}) AS _t"
        )
    elif plan.returns_void:
        # PostgREST counts the rows of the result that are not NULL: none for void.
        select = (
            "SELECT NULL::bigint AS total, 0::bigint AS page_total, NULL::text AS body "
            f"FROM (SELECT {call}) AS _v"
        )
    elif plan.function.returns_scalar and not plan.function.returns_set:
        select = (
            "SELECT NULL::bigint AS total, (CASE WHEN _t.v IS NULL THEN 0 ELSE 1 END)::bigint AS page_total, "
            f"to_json(_t.v)::text AS body FROM (SELECT {call} AS v) AS _t"
        )
    elif plan.function.returns_scalar:
        with_source = f"WITH {source} AS MATERIALIZED (SELECT _f.v FROM {call} AS _f(v)) "
        if exact_count:
            total = f"(SELECT count(*) FROM {source})"
        page = f"SELECT {source}.v FROM {source}{renderer.page(plan.page)}"
        select = (
            f"{with_source}SELECT {total} AS total, count(*) AS page_total, "
            f"coalesce(json_agg(_t.v), '[]')::text AS body FROM ({page}) AS _t"
        )
    else:
        body_sql = (
            "coalesce(json_agg(_t), '[]')::text" if plan.function.returns_set else "(json_agg(_t) -> 0)::text"
        )
        select = (
            f"SELECT NULL::bigint AS total, count(_t) AS page_total, {body_sql} AS body FROM {call} AS _t"
        )
    statement.sql = f"SELECT _r.*, {RESPONSE_SETTINGS} FROM ({select}) AS _r"
    return statement
