"""Planning /rpc/fn: choosing the overload and shaping its result."""

from __future__ import annotations

from fluxbase.rest.errors import (
    max_affected_rpc_violation,
    not_implemented,
    pgrst_error,
)
from fluxbase.rest.plan.model import JSON_TYPES, Argument, CallPlan, PlanSettings
from fluxbase.rest.plan.read import ReadBuilder
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.request.preferences import HandlingPreference
from fluxbase.rest.request.ranges import Page
from fluxbase.rest.schema import (
    Function,
    RelationKind,
    SchemaCache,
    Table,
    Volatility,
)


def _single_unnamed_json(function: Function) -> bool:
    parameters = function.parameters
    return len(parameters) == 1 and not parameters[0].name and parameters[0].type in JSON_TYPES


def plan_call(
    request: ApiRequest,
    cache: SchemaCache,
    schema: str,
    settings: PlanSettings,
    payload: object,
) -> CallPlan:
    """Resolves /rpc/{fn} by argument names among the overloads, as PostgREST does."""
    overloads = cache.function_overloads(schema, request.target)
    if request.method in ("GET", "HEAD"):
        given: dict[str, object] = {}
        for name, value in request.rpc_args:
            given[name] = value
    elif isinstance(payload, dict):
        given = dict(payload)
    else:
        given = {}
    names = set(given)
    matches = [
        f
        for f in overloads
        if names <= {p.name for p in f.parameters if p.name}
        and {p.name for p in f.parameters if not p.has_default} <= names
        and not _single_unnamed_json(f)
    ]
    whole_body = False
    if not matches and request.method == "POST":
        matches = [f for f in overloads if _single_unnamed_json(f)]
        whole_body = bool(matches)
    if not matches:
        listed = ", ".join(sorted(names))
        raise pgrst_error(
            "PGRST202",
            f"Could not find the function {schema}.{request.target}({listed}) in the schema cache",
            details=f"Searched for the function {schema}.{request.target} with parameters {listed or 'none'}"
            " or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
        )
    if len(matches) > 1:
        candidates = ", ".join(
            f"{f.name}({', '.join(f'{p.name} => {p.type}' for p in f.parameters)})" for f in matches
        )
        raise pgrst_error(
            "PGRST203",
            f"Could not choose the best candidate function between: {candidates}",
            hint="Try renaming the parameters or the function itself so that overloads differ by name",
        )
    function = matches[0]
    arguments = (
        ()
        if whole_body
        else tuple(Argument(p, given[p.name]) for p in function.parameters if p.name in given)
    )
    preferences = request.preferences
    if (
        preferences.handling == HandlingPreference.STRICT
        and preferences.max_affected is not None
        and not function.returns_set
    ):
        raise max_affected_rpc_violation()
    read = None
    table = _result_relation(cache, function)
    page = request.top_page
    if settings.max_rows is not None and (page.limit is None or page.limit > settings.max_rows):
        page = Page(page.offset, settings.max_rows)
    if table is not None:
        builder = ReadBuilder(request, cache, settings)
        read = builder.build(table, request.select, (), page)
        builder.check_all_paths_used()
    elif request.filters or request.logic or request.order:
        raise not_implemented("filters and order apply only to functions that return rows")
    read_only = request.method in ("GET", "HEAD") or function.volatility != Volatility.VOLATILE
    return CallPlan(function, arguments, whole_body, read, read_only, page)


def _result_relation(cache: SchemaCache, function: Function) -> Table | None:
    """The relation a function's rows are read as: its table, or its RETURNS TABLE columns."""
    if function.returns_table is not None:
        return cache.tables.get(function.returns_table)
    if function.result_columns:
        return Table(
            name=function.name,
            kind=RelationKind.TABLE,
            columns={column.name: column for column in function.result_columns},
            insertable=False,
            updatable=False,
            deletable=False,
        )
    return None
