"""Planning writes: INSERT (upsert), UPDATE, PUT and DELETE on one table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fluxbase.query_grammar.filters import OpCompare, Operator
from fluxbase.rest.errors import (
    ApiError,
    column_not_found,
    not_implemented,
    pgrst_error,
)
from fluxbase.rest.plan.model import MutatePlan, PlanSettings, Predicate, ReadPlan
from fluxbase.rest.plan.read import ReadBuilder, column_does_not_exist, resolve_table
from fluxbase.rest.request.action import Action
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.request.preferences import MissingPreference, ResolutionPreference, ReturnPreference
from fluxbase.rest.request.ranges import Page
from fluxbase.rest.schema import (
    Column,
    SchemaCache,
    Table,
)


def body_columns(table: Table, payload: object, columns_param: tuple[str, ...] | None) -> tuple[Column, ...]:
    """The columns a JSON body writes: `columns=` when given, else the keys every object shares."""
    if columns_param is not None:
        names: Sequence[str] = columns_param
    else:
        objects: list[Any] = payload if isinstance(payload, list) else [payload]
        if not objects:
            return ()
        if not all(isinstance(o, dict) for o in objects):
            raise pgrst_error("PGRST102", "All array elements must be objects")
        first = list(objects[0])
        if any(set(o) != set(first) for o in objects[1:]):
            raise pgrst_error("PGRST102", "All object keys must match")
        names = first
    resolved = []
    for name in names:
        column = table.column(name)
        if column is None:
            raise column_not_found(table.name.name, name)
        resolved.append(column)
    return tuple(resolved)


def plan_mutation(
    request: ApiRequest, cache: SchemaCache, schema: str, settings: PlanSettings, payload: object
) -> MutatePlan:
    table = resolve_table(cache, schema, request.target)
    action = request.action
    builder = ReadBuilder(request, cache, settings)
    where: tuple[Predicate, ...] = ()
    if action in (Action.UPDATE, Action.DELETE, Action.UPSERT_ONE):
        filtered = builder.build(table, (), (), Page())
        where = filtered.where
    if action in (Action.UPDATE, Action.DELETE) and (
        request.top_page.limit is not None or request.top_page.offset
    ):
        raise not_implemented("limit and offset on PATCH and DELETE are not supported")
    columns: tuple[Column, ...] = ()
    if action in (Action.INSERT, Action.UPDATE, Action.UPSERT_ONE):
        if action == Action.UPDATE and not isinstance(payload, dict):
            raise pgrst_error("PGRST102", "A PATCH body must be a JSON object")
        columns = body_columns(table, payload, request.columns)
        for column in columns:
            if column.generated_always and action != Action.UPSERT_ONE:
                raise ApiError(400, "428C9", f'cannot insert a non-DEFAULT value into column "{column.name}"')
    conflict: tuple[str, ...] = ()
    preferences = request.preferences
    resolution = preferences.resolution if action == Action.INSERT else None
    if action == Action.UPSERT_ONE:
        conflict = _put_key(table, request, payload)
        resolution = ResolutionPreference.MERGE_DUPLICATES
    elif resolution is not None:
        conflict = request.on_conflict or table.primary_key
        if not conflict:
            raise pgrst_error("PGRST127", details="an upsert needs on_conflict= or a primary key")
        for name in conflict:
            if table.column(name) is None:
                raise column_does_not_exist(table, name)
    representation = None
    if preferences.return_ == ReturnPreference.REPRESENTATION:
        representation = builder.build(table, request.select, (), Page())
        representation = ReadPlan(representation.table, representation.fields, representation.embeds)
        builder.used_paths.add(())
    location = action == Action.INSERT and preferences.return_ == ReturnPreference.HEADERS_ONLY
    return MutatePlan(
        action,
        table,
        columns,
        where,
        conflict,
        resolution,
        preferences.missing == MissingPreference.DEFAULT,
        representation,
        location and bool(table.primary_key),
    )


def _put_key(table: Table, request: ApiRequest, payload: object) -> tuple[str, ...]:
    """PUT names one row by its whole primary key with eq filters, and the body must agree."""
    if request.top_page.limit is not None or request.top_page.offset:
        raise pgrst_error("PGRST114")
    pk = table.primary_key
    root = [f.filter for f in request.filters if not f.path]
    eq_filters = {
        f.field.name: f.operation.value
        for f in root
        if isinstance(f.operation, OpCompare) and f.operation.operator == Operator.EQ and not f.negated
    }
    if not pk or request.logic or len(root) != len(pk) or set(eq_filters) != set(pk):
        raise pgrst_error("PGRST105")
    if not isinstance(payload, dict):
        raise pgrst_error("PGRST102", "A PUT body must be a single JSON object")
    for name in pk:
        if name not in payload or str(payload[name]) != eq_filters[name]:
            raise pgrst_error("PGRST115")
    return pk
