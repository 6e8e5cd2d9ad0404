"""Statements of reads: the body, the count and the planned count in one statement."""

from __future__ import annotations

from fluxbase.rest.plan.model import (
    ReadPlan,
)
from fluxbase.rest.query.render import RESPONSE_SETTINGS, Renderer, Statement, quote_name
from fluxbase.rest.schema import QualifiedName

# PostgREST's CSV rows: each row's text form (a record literal) without its parentheses,
# so quoting follows PostgreSQL's record output: fields with spaces, commas, quotes or
# parentheses are double-quoted, quotes doubled, NULL is empty, JSON values as their text.
CSV_ROWS = "coalesce(string_agg(substring(_t::text, 2, length(_t::text) - 2), E'\\n'), '')"


def read_statement(
    plan: ReadPlan, *, exact_count: bool, body: str = "json", geojson: QualifiedName | None = None
) -> Statement:
    """One statement for a read: the total (when counted), the page's row count and the body.

    Result columns: total (bigint or null), page_total (bigint), body (text or null). `body` is
    json, single (one object), csv (the rows; the header is the plan's keys), geojson (a
    FeatureCollection through PostGIS's `geojson` function) or none.
    """
    statement = Statement()
    renderer = Renderer(statement)
    source = renderer.read(plan)
    total = "NULL::bigint"
    if exact_count:
        total = f"(SELECT count(*) FROM ({renderer.read(plan, count_only=True)}) AS _c)"
    if body == "json":
        body_sql = "coalesce(json_agg(_t), '[]')::text"
    elif body == "single":
        body_sql = "(json_agg(_t) -> 0)::text"
    elif body == "csv":
        body_sql = CSV_ROWS
    elif body == "geojson" and geojson is not None:
        features = f"coalesce(json_agg({quote_name(geojson)}(_t)::json), '[]')"
        body_sql = f"json_build_object('type', 'FeatureCollection', 'features', {features})::text"
    else:
        body_sql = "NULL::text"
    statement.sql = (
        f"SELECT {total} AS total, count(_t) AS page_total, {body_sql} AS body, {RESPONSE_SETTINGS} "
        f"FROM ({source}) AS _t"
    )
    return statement


def planned_count_statement(plan: ReadPlan) -> Statement:
    """EXPLAIN of the count query: its top node's row estimate is Prefer: count=planned."""
    statement = Statement()
    renderer = Renderer(statement)
    statement.sql = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM ({renderer.read(plan, count_only=True)}) AS _c"
    return statement
