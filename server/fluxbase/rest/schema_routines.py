"""The schema cache's functions: RPC overloads, their result shapes, computed fields and relationships.

Part of the schema cache loader (rest/schema_cache.py): FUNCTIONS_QUERY runs in
the loader's snapshot; everything else here is pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Function,
    Parameter,
    QualifiedName,
    Relationship,
    Table,
    Volatility,
)

# Plain functions only (prokind 'f': no aggregates, window functions or
# procedures), none that belongs to an extension, none that only a trigger can call.
# argument_bases are the types' pg_type names (the element's for arrays), as Column.base_type.
FUNCTIONS_QUERY = r"""
select p.oid, n.nspname as schema, p.proname::text as name,
       obj_description(p.oid, 'pg_proc') as description,
       format_type(p.prorettype, null) as return_type,
       p.proretset as returns_set,
       p.prorows as rows,
       p.provolatile::text as volatility,
       rt.typtype = 'c' or p.prorettype = 'record'::regtype as returns_composite,
       rt.typrelid as return_relation,
       coalesce(relem.typname, rt.typname)::text as return_base,
       relem.oid is not null as return_is_array,
       p.pronargdefaults as defaults,
       case when p.pronargs = 1 then (select t.typrelid from pg_type t where t.oid = p.proargtypes[0])
       end as row_argument_relation,
       coalesce(p.proargnames::text[], '{}') as argument_names,
       coalesce(p.proargmodes::text[], '{}') as argument_modes,
       array(
         select format_type(t.oid, null)
         from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as u(type, ord)
         join pg_type t on t.oid = u.type
         order by u.ord
       ) as argument_types,
       array(
         select coalesce(elem.typname, t.typname)::text
         from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as u(type, ord)
         join pg_type t on t.oid = u.type
         left join pg_type elem on t.typelem <> 0 and t.typlen = -1 and elem.oid = t.typelem
         order by u.ord
       ) as argument_bases,
       array(
         select t.typelem <> 0 and t.typlen = -1
         from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as u(type, ord)
         join pg_type t on t.oid = u.type
         order by u.ord
       ) as argument_arrays
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type rt on rt.oid = p.prorettype
left join pg_type relem on rt.typelem <> 0 and rt.typlen = -1 and relem.oid = rt.typelem
where n.nspname = any($1::text[])
  and not n.nspname = any($2::text[])
  and n.nspname not like 'pg\_%'
  and p.prokind = 'f'
  and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
  and not exists (
    select from pg_depend d
    where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
  )
order by n.nspname, p.proname, p.oid
"""

# PostGIS's ST_AsGeoJSON(record) in whatever schema the extension lives.
GEOJSON_QUERY = r"""
select n.nspname as schema, p.proname::text as name
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where p.proname = 'st_asgeojson' and p.pronargs >= 1 and p.proargtypes[0] = 'record'::regtype
order by p.pronargs
limit 1
"""

_VOLATILITIES = {"i": Volatility.IMMUTABLE, "s": Volatility.STABLE, "v": Volatility.VOLATILE}
# pg_proc.proargmodes: the modes of parameters a caller passes, and of those that shape the result.
_INPUT_MODES = frozenset({"i", "b", "v"})
_OUTPUT_MODES = frozenset({"o", "b", "t"})


def load_functions(
    function_rows: Sequence[Any], names: Mapping[int, QualifiedName]
) -> dict[QualifiedName, tuple[Function, ...]]:
    """Each function's overloads, in creation order.

    Parameters are the inputs (IN, INOUT, VARIADIC).  OUT, INOUT and TABLE
    parameters shape the result instead: with several, the function returns
    `record`, which is composite (returns_scalar False) with no returns_table
    but with result_columns; with a single one it returns that parameter's
    type like any scalar function.  `void` counts as scalar: the plan tells it
    apart by return_type.
    """
    functions: dict[QualifiedName, list[Function]] = defaultdict(list)
    for row in function_rows:
        name = QualifiedName(row["schema"], row["name"])
        functions[name].append(
            Function(
                name=name,
                parameters=_parameters(row),
                return_type=row["return_type"],
                returns_set=row["returns_set"],
                volatility=_VOLATILITIES[row["volatility"]],
                returns_table=names.get(row["return_relation"]),
                returns_scalar=not row["returns_composite"],
                description=row["description"],
                result_columns=_result_columns(row) if row["returns_composite"] else (),
            )
        )
    return {name: tuple(overloads) for name, overloads in functions.items()}


def _parameters(row: Any) -> tuple[Parameter, ...]:
    types: list[str] = row["argument_types"]
    modes: list[str] = row["argument_modes"] or ["i"] * len(types)
    names: list[str] = row["argument_names"]
    inputs = [
        (names[index] if index < len(names) else "", types[index], mode == "v")
        for index, mode in enumerate(modes)
        if mode in _INPUT_MODES
    ]
    # Defaults belong to the last pronargdefaults input parameters.
    first_default = len(inputs) - row["defaults"]
    return tuple(
        Parameter(name=name, type=type_, has_default=index >= first_default, variadic=variadic)
        for index, (name, type_, variadic) in enumerate(inputs)
    )


def _result_columns(row: Any) -> tuple[Column, ...]:
    modes: list[str] = row["argument_modes"]
    names: list[str] = row["argument_names"]
    return tuple(
        Column(
            name=names[index],
            type=row["argument_types"][index],
            base_type=row["argument_bases"][index],
            is_array=row["argument_arrays"][index],
        )
        for index, mode in enumerate(modes)
        if mode in _OUTPUT_MODES and index < len(names) and names[index]
    )


def computed_members(
    function_rows: Sequence[Any],
    names: Mapping[int, QualifiedName],
    tables: Mapping[QualifiedName, Table],
) -> tuple[dict[QualifiedName, dict[str, Column]], list[Relationship]]:
    """Computed fields and computed relationships: functions of one argument, a table's row type.

    One returning a scalar is a field of that table named after the function; one
    returning rows of another relation is a relationship to it, to-one when it
    returns a single row or is declared `ROWS 1`, as PostgREST decides.
    """
    fields: dict[QualifiedName, dict[str, Column]] = defaultdict(dict)
    relationships: list[Relationship] = []
    for row in function_rows:
        source = names.get(row["row_argument_relation"])
        if source is None or source not in tables or row["argument_modes"]:
            continue
        function = QualifiedName(row["schema"], row["name"])
        target = names.get(row["return_relation"])
        if target is not None and target in tables:
            to_one = not row["returns_set"] or row["rows"] == 1
            relationships.append(
                Relationship(
                    source=source,
                    target=target,
                    cardinality=Cardinality.MANY_TO_ONE if to_one else Cardinality.ONE_TO_MANY,
                    constraint=function.name,
                    source_columns=(),
                    target_columns=(),
                    function=function,
                )
            )
        elif not row["returns_composite"] and not row["returns_set"] and row["return_type"] != "void":
            if function.name in tables[source].columns:
                continue  # a real column wins over a function of the same name
            fields[source][function.name] = Column(
                name=function.name,
                type=row["return_type"],
                base_type=row["return_base"],
                is_array=row["return_is_array"],
                computed_by=function,
            )
    return dict(fields), relationships
