"""Statements of writes: one data-modifying CTE that writes and answers."""

from __future__ import annotations

from fluxbase.db.identifiers import quote_ident
from fluxbase.rest.plan.model import (
    MutatePlan,
)
from fluxbase.rest.query.render import RESPONSE_SETTINGS, Renderer, Statement, quote_name
from fluxbase.rest.request.action import Action
from fluxbase.rest.request.preferences import ResolutionPreference
from fluxbase.rest.schema import RelationKind

MUTATED = "pgrst_mutated"
INSERTED = "pgrst_inserted"  # the RETURNING column that marks rows an insert created


def _payload_rows(renderer: Renderer, plan: MutatePlan, body: bytes) -> str:
    """The body's rows as a record set of the table's row type (one JSON parameter)."""
    table = quote_name(plan.table.name)
    payload = renderer.statement.bind(body.decode())
    as_array = "CASE WHEN json_typeof(_j) = 'array' THEN _j ELSE json_build_array(_j) END"
    array = f"(SELECT {as_array} FROM (SELECT {payload}::json AS _j) AS _p)"
    if not plan.missing_default:
        return f"SELECT * FROM json_populate_recordset(NULL::{table}, {array})"
    # Absent keys take the column's DEFAULT (the catalog's own expression, or the identity's
    # sequence), present ones the value.
    values = []
    for column in plan.columns:
        default = column.default or "NULL"
        if column.default is None and column.has_default and not column.generated_always:
            bind = renderer.statement.bind
            default = f"nextval(pg_get_serial_sequence({bind(table)}, {bind(column.name)}))"
        values.append(
            f"CASE WHEN _e.value::jsonb ? {renderer.statement.bind(column.name)}::text "
            f"THEN _r.{quote_ident(column.name)} ELSE {default} END AS {quote_ident(column.name)}"
        )
    return (
        f"SELECT {', '.join(values) or '1'} FROM json_array_elements({array}) AS _e, "
        f"LATERAL json_populate_record(NULL::{table}, _e.value) AS _r"
    )


def mutation_statement(plan: MutatePlan, body: bytes | None, *, single: bool = False) -> Statement:
    """One statement that writes and answers: total, page_total (rows affected), body, location.

    The write is a data-modifying CTE, so it runs in full whether or not its rows are read.
    """
    statement = Statement()
    renderer = Renderer(statement)
    table = quote_name(plan.table.name)
    target = renderer.alias()
    names = [quote_ident(c.name) for c in plan.columns]
    if plan.action in (Action.INSERT, Action.UPSERT_ONE):
        rows = _payload_rows(renderer, plan, body or b"null")
        column_list = ", ".join(names)
        mutation = (
            f"INSERT INTO {table} AS {target} ({column_list}) SELECT {column_list} FROM ({rows}) AS _rows"
        )
        if plan.conflict:
            conflict = ", ".join(quote_ident(c) for c in plan.conflict)
            updates = [n for n in names if n not in {quote_ident(c) for c in plan.conflict}]
            if plan.resolution == ResolutionPreference.IGNORE_DUPLICATES or not names:
                mutation += f" ON CONFLICT ({conflict}) DO NOTHING"
            else:
                # A body of only the conflict columns still "updates" them, as PostgREST does,
                # so the existing row is returned rather than nothing.
                assignments = ", ".join(f"{n} = EXCLUDED.{n}" for n in updates or names)
                mutation += f" ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
            if plan.action == Action.UPSERT_ONE:
                conditions = [renderer.predicate(target, p, {}) for p in plan.where]
                if conditions:
                    mutation += " WHERE " + " AND ".join(conditions)
    elif plan.action == Action.UPDATE:
        body_alias = renderer.alias()
        payload = statement.bind((body or b"{}").decode())
        assignments = ", ".join(f"{n} = {body_alias}.{n}" for n in names)
        conditions = [renderer.predicate(target, p, {}) for p in plan.where]
        mutation = (
            f"UPDATE {table} AS {target} SET {assignments} "
            f"FROM (SELECT * FROM json_populate_record(NULL::{table}, {payload}::json)) AS {body_alias}"
        )
        if conditions:
            mutation += " WHERE " + " AND ".join(conditions)
    else:
        conditions = [renderer.predicate(target, p, {}) for p in plan.where]
        mutation = f"DELETE FROM {table} AS {target}"
        if conditions:
            mutation += " WHERE " + " AND ".join(conditions)
    # xmax is 0 on a row version this statement inserted, not on one ON CONFLICT updated:
    # that tells a merge-duplicates upsert that inserted nothing (200) from one that did (201).
    # Only tables have xmax; elsewhere `inserted` stays NULL (unknown, answered as 201).
    inserting = (
        plan.action == Action.INSERT
        and plan.resolution == ResolutionPreference.MERGE_DUPLICATES
        and plan.table.kind in (RelationKind.TABLE, RelationKind.PARTITIONED_TABLE)
    )
    mutation += f" RETURNING {target}.*"
    if inserting:
        mutation += f", ({target}.xmax = 0) AS {INSERTED}"
    if not names and plan.action != Action.DELETE:
        # An empty body ({} or []) writes nothing; the answer is the usual one with no rows.
        marker = f", FALSE AS {INSERTED}" if inserting else ""
        mutation = f"SELECT {target}.*{marker} FROM {table} AS {target} WHERE FALSE"

    body_sql = "NULL::text"
    if plan.representation is not None:
        read = renderer.read(plan.representation, source=MUTATED)
        body_sql = (
            f"(SELECT (json_agg(_t) -> 0)::text FROM ({read}) AS _t)"
            if single
            else f"(SELECT coalesce(json_agg(_t), '[]')::text FROM ({read}) AS _t)"
        )
    location_sql = "NULL::text"
    if plan.location:
        pk = ", ".join(f"{quote_ident(c)}::text" for c in plan.table.primary_key)
        location_sql = f"(SELECT json_build_array({pk})::text FROM {MUTATED} LIMIT 1)"
    statement.sql = (
        f"WITH {MUTATED} AS ({mutation}) "
        f"SELECT NULL::bigint AS total, (SELECT count(*) FROM {MUTATED}) AS page_total, "
        f"{body_sql} AS body, {location_sql} AS location, {RESPONSE_SETTINGS}, "
        + (f"(SELECT count(*) FROM {MUTATED} WHERE {INSERTED})" if inserting else "NULL::bigint")
        + " AS inserted"
    )
    return statement
