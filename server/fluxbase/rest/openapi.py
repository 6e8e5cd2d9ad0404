"""The data API's root: an OpenAPI 3.0 description of one exposed schema, as far as the caller may use it.

`build_openapi` is a pure function of the schema cache and an `Access` (what the
caller's role may select, write and execute); `load_access` reads that Access with
one catalog query inside the caller's role-switched transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fluxbase import __version__
from fluxbase.config import is_internal_schema
from fluxbase.db.transaction import RoleSwitchedTransaction
from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Function,
    Parameter,
    QualifiedName,
    SchemaCache,
    Table,
    Volatility,
)

OPENAPI_VERSION = "3.0.3"

# The values of api.openapi_mode, PostgREST's openapi-mode names.
FOLLOW_PRIVILEGES = "follow-privileges"
IGNORE_PRIVILEGES = "ignore-privileges"
DISABLED = "disabled"
OPENAPI_MODES = (FOLLOW_PRIVILEGES, IGNORE_PRIVILEGES, DISABLED)

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Mount:
    """Where a description is served: the server URL's path, and the prefix of relation paths.

    /rest/v1/films and /api/v1/tables/films are the same relation, but functions live at
    /rest/v1/rpc/fn and /api/v1/rpc/fn: so the Fluxbase mount's server is /api/v1 and its
    relations are /tables/{name}, which keeps both kinds of paths true under one server URL.
    """

    server_path: str
    relation_prefix: str = ""


REST_MOUNT = Mount("/rest/v1")
TABLES_MOUNT = Mount("/api/v1", "/tables")


@dataclass(frozen=True, slots=True)
class RelationAccess:
    """What the caller may do with one relation."""

    columns: frozenset[str]  # the columns it may select; none means the relation is not listed
    insert: bool = False
    update: bool = False
    delete: bool = False


@dataclass(frozen=True, slots=True)
class Access:
    """What the caller's role may use in one schema: relations, and functions by (name, input types)."""

    relations: Mapping[QualifiedName, RelationAccess]
    functions: frozenset[tuple[QualifiedName, tuple[str, ...]]]

    @staticmethod
    def everything(cache: SchemaCache, schema: str) -> Access:
        """Every relation, column and function of `schema` (api.openapi_mode: ignore-privileges)."""
        return Access(
            relations={
                name: RelationAccess(frozenset(table.columns), insert=True, update=True, delete=True)
                for name, table in cache.tables.items()
                if name.schema == schema
            },
            functions=frozenset(
                (name, _input_types(overload))
                for name, overloads in cache.functions.items()
                if name.schema == schema
                for overload in overloads
            ),
        )


def _input_types(function: Function) -> tuple[str, ...]:
    return tuple(parameter.type for parameter in function.parameters)


# -- What the caller may use -------------------------------------------------------------------
# One statement, run as the caller's role, so has_*_privilege answers for that role
# (its grants, those of roles it belongs to, and PUBLIC's). USAGE on the schema is
# needed for anything in it. Function input types are formatted with format_type()
# under an empty search_path, exactly as the schema cache formats them, so that each
# overload is matched to its own EXECUTE privilege.
ACCESS_QUERY = r"""
select 'relation' as kind, c.relname::text as name,
       array(
         select a.attname::text from pg_attribute a
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
           and has_column_privilege(c.oid, a.attnum, 'SELECT')
         order by a.attnum
       ) as names,
       has_any_column_privilege(c.oid, 'INSERT') as can_insert,
       has_any_column_privilege(c.oid, 'UPDATE') as can_update,
       has_table_privilege(c.oid, 'DELETE') as can_delete
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1 and has_schema_privilege(n.oid, 'USAGE')
  and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
union all
select 'function', p.proname::text,
       array(
         select format_type(u.type, null)
         from unnest(p.proargtypes::oid[]) with ordinality as u(type, ord)
         order by u.ord
       ),
       false, false, false
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname = $1 and has_schema_privilege(n.oid, 'USAGE')
  and p.prokind = 'f' and has_function_privilege(p.oid, 'EXECUTE')
"""


async def load_access(tx: RoleSwitchedTransaction, schema: str) -> Access:
    """What the role `tx` runs as may use in `schema` (api.openapi_mode: follow-privileges)."""
    if is_internal_schema(schema):
        raise ValueError(f"schema {schema!r} is internal and never described")
    # Transaction-local, like every request setting: see ACCESS_QUERY for why it is empty.
    await tx.execute("select set_config('search_path', '', true)")
    rows = await tx.fetch(ACCESS_QUERY, schema)
    relations: dict[QualifiedName, RelationAccess] = {}
    functions: set[tuple[QualifiedName, tuple[str, ...]]] = set()
    for row in rows:
        name = QualifiedName(schema, row["name"])
        if row["kind"] == "relation":
            relations[name] = RelationAccess(
                frozenset(row["names"]),
                insert=row["can_insert"],
                update=row["can_update"],
                delete=row["can_delete"],
            )
        else:
            functions.add((name, tuple(row["names"])))
    return Access(relations, frozenset(functions))


# -- PostgreSQL types as JSON Schema -------------------------------------------------------------

# By pg_type.typname (what Column.base_type holds). OpenAPI has no 16-bit format: smallint is int32.
_TYPNAME_SCHEMAS: Mapping[str, JsonObject] = {
    "int2": {"type": "integer", "format": "int32"},
    "int4": {"type": "integer", "format": "int32"},
    "int8": {"type": "integer", "format": "int64"},
    "float4": {"type": "number", "format": "float"},
    "float8": {"type": "number", "format": "double"},
    "numeric": {"type": "number"},
    "bool": {"type": "boolean"},
    "uuid": {"type": "string", "format": "uuid"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "timestamptz": {"type": "string", "format": "date-time"},
    # json and jsonb hold any JSON value: the empty schema.
    "json": {},
    "jsonb": {},
    # Everything below reaches clients as its text form.
    **{
        typname: {"type": "string"}
        for typname in (
            "text", "varchar", "bpchar", "char", "name", "citext", "time", "timetz", "interval",
            "money", "bytea", "tsvector", "tsquery", "inet", "cidr", "macaddr", "macaddr8", "xml",
            "bit", "varbit", "int4range", "int8range", "numrange", "tsrange", "tstzrange",
            "daterange", "point", "line", "lseg", "box", "path", "polygon", "circle", "ltree",
        )
    },
}  # fmt: skip

# format_type()'s names (what Parameter.type and Function.return_type hold) -> typname.
_DISPLAY_TYPNAMES: Mapping[str, str] = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "character varying": "varchar",
    "character": "bpchar",
    '"char"': "char",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "time with time zone": "timetz",
    "bit varying": "varbit",
}
_TYPMOD = re.compile(r"\([^)]*\)")
_LENGTH_TYPMOD = re.compile(r"^(?:character varying|character)\((\d+)\)(?:\[\])?$")


def column_schema(column: Column) -> JsonObject:
    """A column's JSON Schema: typed from its (domain-resolved) base type, arrays as arrays."""
    item: JsonObject
    if column.enum_values:
        item = {"type": "string", "enum": list(column.enum_values)}
    else:
        item = dict(_TYPNAME_SCHEMAS.get(column.base_type, {}))
        length = _LENGTH_TYPMOD.match(column.type)
        if length is not None:
            item["maxLength"] = int(length.group(1))
    return {"type": "array", "items": item} if column.is_array else item


def type_schema(type_name: str) -> JsonObject:
    """The JSON Schema of a type known only by its format_type() name (function parameters, results).

    Types outside pg_catalog come back qualified ("public.mood") and may be enums,
    domains or composites: they get the empty schema rather than a wrong guess.
    """
    if type_name.endswith("[]"):
        return {"type": "array", "items": type_schema(type_name[:-2])}
    bare = _TYPMOD.sub("", type_name).strip()
    typname = _DISPLAY_TYPNAMES.get(bare, bare)
    return dict(_TYPNAME_SCHEMAS.get(typname, {}))


# -- The document ------------------------------------------------------------------------------

_COMPONENT_KEY = re.compile(r"^[A-Za-z0-9._-]+$")
_NOT_KEY_CHAR = re.compile(r"[^A-Za-z0-9._-]")


class _ComponentKeys:
    """Component names: OpenAPI 3.0 allows only [A-Za-z0-9._-] in them; PostgreSQL names are anything.

    Other characters become `_`; a name that then collides with one already taken gets a
    numeric suffix, so every relation and column keeps a key of its own.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken: dict[tuple[str, ...], str] = {}
        self._used: set[str] = set(reserved)

    def key(self, *parts: str) -> str:
        if parts in self._taken:
            return self._taken[parts]
        candidate = ".".join(
            p if _COMPONENT_KEY.match(p) else _NOT_KEY_CHAR.sub("_", p) or "_" for p in parts
        )
        unique, counter = candidate, 1
        while unique in self._used:
            counter += 1
            unique = f"{candidate}-{counter}"
        self._taken[parts] = unique
        self._used.add(unique)
        return unique


def _path_segment(name: str) -> str:
    """A relation or function name as one URL path segment: PostgREST percent-decodes it again."""
    return quote(name, safe="!$&'()*+,;=:@-._~")


def _ref(kind: str, key: str) -> JsonObject:
    return {"$ref": f"#/components/{kind}/{key}"}


def _join(*parts: str | None) -> str | None:
    present = [part for part in parts if part]
    return "\n\n".join(present) if present else None


# PostgREST's notes, which tools parse (<pk/>, <fk table='...' column='...'/>).
def _primary_key_note() -> str:
    return "Note:\nThis is a Primary Key.<pk/>"


def _foreign_key_note(target: QualifiedName, column: str) -> str:
    tag = f"<fk table='{target.name}' column='{column}'/>"
    return f"Note:\nThis is a Foreign Key to `{target.name}.{column}`.{tag}"


_COMMON_PARAMETERS: Mapping[str, JsonObject] = {
    "select": {
        "name": "select",
        "in": "query",
        "description": "Columns to return, with renames, casts and embeds: `id,title,directors(*)`",
        "schema": {"type": "string"},
    },
    "order": {
        "name": "order",
        "in": "query",
        "description": "Ordering: `column.asc|desc.nullsfirst|nullslast`, comma-separated",
        "schema": {"type": "string"},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "description": "At most this many rows",
        "schema": {"type": "integer", "minimum": 0},
    },
    "offset": {
        "name": "offset",
        "in": "query",
        "description": "Skip this many rows",
        "schema": {"type": "integer", "minimum": 0},
    },
    "on_conflict": {
        "name": "on_conflict",
        "in": "query",
        "description": "Columns of the unique key an upsert resolves conflicts on",
        "schema": {"type": "string"},
    },
    "columns": {
        "name": "columns",
        "in": "query",
        "description": "The keys of the body to insert; others are ignored",
        "schema": {"type": "string"},
    },
    "range": {
        "name": "Range",
        "in": "header",
        "description": "Limiting and pagination: `first-last`, zero-based, inclusive",
        "schema": {"type": "string", "pattern": "^[0-9]+-[0-9]*$"},
    },
    "rangeUnit": {
        "name": "Range-Unit",
        "in": "header",
        "description": "The unit of Range",
        "schema": {"type": "string", "default": "items"},
    },
    "preferCount": {
        "name": "Prefer",
        "in": "header",
        "description": "Count the rows and report the total in Content-Range",
        "schema": {"type": "string", "enum": ["count=exact", "count=planned", "count=estimated"]},
    },
    "preferReturn": {
        "name": "Prefer",
        "in": "header",
        "description": "What a write returns: nothing, the Location header only, or the rows",
        "schema": {
            "type": "string",
            "enum": ["return=minimal", "return=headers-only", "return=representation"],
        },
    },
    "preferPost": {
        "name": "Prefer",
        "in": "header",
        "description": (
            "return=minimal|headers-only|representation, resolution=merge-duplicates|ignore-duplicates "
            "(upsert), missing=default, count=exact, tx=commit|rollback; comma-separated"
        ),
        "schema": {"type": "string"},
    },
    "preferParams": {
        "name": "Prefer",
        "in": "header",
        "description": "params=single-object passes the whole body as the function's one json argument",
        "schema": {"type": "string", "enum": ["params=single-object"]},
    },
}

_JSON = "application/json"
_SINGULAR = "application/vnd.pgrst.object+json"
_CSV = "text/csv"


def build_openapi(
    cache: SchemaCache,
    schema: str,
    access: Access,
    *,
    base_url: str,
    mount: Mount = REST_MOUNT,
) -> JsonObject:
    """The OpenAPI 3.0 document of `schema`: what `access` allows of its relations and functions.

    A relation appears with the columns the caller may select (none: it is absent);
    POST/PATCH/DELETE/PUT appear when the caller holds the privilege and the relation
    accepts the command (views that are not updatable do not); PUT also needs a primary
    key.  A function appears with the overloads the caller may execute: POST always, GET
    unless every such overload is VOLATILE.
    """
    if is_internal_schema(schema):
        raise ValueError(f"schema {schema!r} is internal and never described")
    keys = _ComponentKeys()  # components.schemas
    parameter_keys = _ComponentKeys(reserved=_COMMON_PARAMETERS)
    tables = [
        (table, access.relations[name])
        for name, table in sorted(cache.tables.items())
        if name.schema == schema and name in access.relations and access.relations[name].columns
    ]
    described = {table.name: keys.key(table.name.name) for table, _ in tables}
    selectable = {table.name: relation_access.columns for table, relation_access in tables}

    schemas: JsonObject = {}
    parameters: JsonObject = dict(_COMMON_PARAMETERS)
    paths: JsonObject = {
        (mount.relation_prefix or "") + "/": {
            "get": {
                "tags": ["Introspection"],
                "summary": "This description: OpenAPI 3.0 of what the caller may use",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/openapi+json": {"schema": {}}, _JSON: {"schema": {}}},
                    }
                },
            }
        }
    }
    for table, relation_access in tables:
        key = described[table.name]
        visible = [column for column in table.columns.values() if column.name in relation_access.columns]
        schemas[key] = _table_schema(table, visible, cache, selectable)
        filters = []
        for column in visible:
            parameter_key = parameter_keys.key("rowFilter", table.name.name, column.name)
            parameters[parameter_key] = {
                "name": column.name,
                "in": "query",
                "description": f"Filter on {column.name} ({column.type}): `operator.value`, e.g. `eq.1`",
                "schema": {"type": "string"},
            }
            filters.append(_ref("parameters", parameter_key))
        path = f"{mount.relation_prefix}/{_path_segment(table.name.name)}"
        paths[path] = _relation_operations(table, relation_access, key, filters)

    for name, overloads in sorted(cache.functions.items()):
        if name.schema != schema:
            continue
        callable_overloads = [f for f in overloads if (name, _input_types(f)) in access.functions]
        if callable_overloads:
            paths[f"/rpc/{_path_segment(name.name)}"] = _function_operations(callable_overloads, described)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Fluxbase",
            "version": __version__,
            "description": (
                f"The data API over schema `{schema}`, listing what the requesting role may use. "
                "Requests follow PostgREST's grammar; PostgREST serves Swagger 2.0 at its root, "
                "Fluxbase serves OpenAPI 3.0."
            ),
        },
        "servers": [{"url": base_url.rstrip("/") + mount.server_path}],
        "security": [{}, {"apikey": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": parameters,
            "securitySchemes": {
                "apikey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "apikey",
                    "description": "The anon or service_role key",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A user's access token",
                },
            },
        },
    }


def _table_schema(
    table: Table,
    visible: Sequence[Column],
    cache: SchemaCache,
    described: Mapping[QualifiedName, frozenset[str]],
) -> JsonObject:
    foreign_keys = _foreign_key_targets(table, cache, described)
    properties: JsonObject = {}
    for column in visible:
        prop = column_schema(column)
        note = _join(
            column.description,
            _primary_key_note() if column.name in table.primary_key else None,
            _foreign_key_note(*foreign_keys[column.name]) if column.name in foreign_keys else None,
        )
        if note:
            prop["description"] = note
        if column.nullable:
            prop["nullable"] = True
        if column.generated_always:
            prop["readOnly"] = True  # refused on insert and update
        properties[column.name] = prop
    # What an insert must carry: NOT NULL without a default (identity counts as a default).
    required = [c.name for c in visible if not c.nullable and not c.has_default and not c.generated_always]
    result: JsonObject = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    if table.description:
        result["description"] = table.description
    return result


def _foreign_key_targets(
    table: Table, cache: SchemaCache, described: Mapping[QualifiedName, frozenset[str]]
) -> dict[str, tuple[QualifiedName, str]]:
    """Single-column foreign keys of `table` into columns this document lists.

    A note names the referenced relation and column, so both must be ones the caller may
    select (issue 10: notes must not reveal relations or columns hidden from the caller).
    """
    targets: dict[str, tuple[QualifiedName, str]] = {}
    for relationship in cache.relationships_from(table.name):
        # Only many-to-one is surely the side that holds the key; one-to-one looks the same both ways.
        if relationship.cardinality is not Cardinality.MANY_TO_ONE or len(relationship.source_columns) != 1:
            continue
        if relationship.target_columns[0] in described.get(relationship.target, frozenset()):
            targets.setdefault(
                relationship.source_columns[0], (relationship.target, relationship.target_columns[0])
            )
    return targets


def _relation_operations(
    table: Table, access: RelationAccess, key: str, filters: list[JsonObject]
) -> JsonObject:
    row = _ref("schemas", key)
    rows = {"type": "array", "items": row}
    tags = [table.name.name]
    summary = table.description.split("\n", 1)[0] if table.description else None
    read_content = {_JSON: {"schema": rows}, _SINGULAR: {"schema": row}, _CSV: {"schema": {"type": "string"}}}
    written = {
        "200": {
            "description": "OK: the rows written (Prefer: return=representation)",
            "content": read_content,
        },
        "204": {"description": "No Content"},
    }
    operations: JsonObject = {
        "get": {
            "tags": tags,
            "parameters": [
                *filters,
                *(
                    _ref("parameters", name)
                    for name in ("select", "order", "range", "rangeUnit", "offset", "limit", "preferCount")
                ),
            ],
            "responses": {
                "200": {"description": "OK", "content": read_content},
                "206": {"description": "Partial Content", "content": read_content},
            },
        }
    }
    if access.insert and table.insertable:
        operations["post"] = {
            "tags": tags,
            "parameters": [
                _ref("parameters", name) for name in ("select", "columns", "on_conflict", "preferPost")
            ],
            "requestBody": {
                "description": "One row, or an array of rows",
                "content": {_JSON: {"schema": {"oneOf": [row, rows]}}},
            },
            "responses": {
                "201": {"description": "Created", "content": read_content},
                **written,
            },
        }
    if access.update and table.updatable:
        operations["patch"] = {
            "tags": tags,
            "parameters": [*filters, _ref("parameters", "select"), _ref("parameters", "preferReturn")],
            "requestBody": {
                "description": "The columns to change (any subset)",
                "content": {_JSON: {"schema": row}},
            },
            "responses": written,
        }
    if access.delete and table.deletable:
        operations["delete"] = {
            "tags": tags,
            "parameters": [*filters, _ref("parameters", "select"), _ref("parameters", "preferReturn")],
            "responses": written,
        }
    # PUT inserts or replaces the row its primary-key filters name: it needs both privileges.
    if table.primary_key and access.insert and access.update and table.insertable and table.updatable:
        operations["put"] = {
            "tags": tags,
            "description": "Insert or replace one row, named by `eq` filters on every primary-key column",
            "parameters": [*filters, _ref("parameters", "select"), _ref("parameters", "preferReturn")],
            "requestBody": {"content": {_JSON: {"schema": row}}, "required": True},
            "responses": {"201": {"description": "Created", "content": read_content}, **written},
        }
    if summary:
        for operation in operations.values():
            operation["summary"] = summary
    return operations


def _function_operations(overloads: Sequence[Function], described: Mapping[QualifiedName, str]) -> JsonObject:
    """POST (and GET unless every overload is VOLATILE) for the overloads the caller may execute."""
    first = overloads[0]
    tags = [f"(rpc) {first.name.name}"]
    named = _named_parameters(overloads)
    required = _required_parameters(overloads)
    responses = _function_responses(first, described)
    common: JsonObject = {"tags": tags}
    description = next((f.description for f in overloads if f.description), None)
    if description:
        common["summary"] = description.split("\n", 1)[0]
        common["description"] = description

    body_schema: JsonObject
    if _takes_whole_body(overloads):
        body_schema = {}  # a single unnamed json parameter receives the body as it is
    else:
        body_schema = {"type": "object", "properties": {n: type_schema(p.type) for n, p in named.items()}}
        if required:
            body_schema["required"] = sorted(required)
    operations: JsonObject = {
        "post": {
            **common,
            "parameters": [_ref("parameters", "preferParams")],
            "requestBody": {"content": {_JSON: {"schema": body_schema}}, "required": bool(required)},
            "responses": responses,
        }
    }
    if any(f.volatility is not Volatility.VOLATILE for f in overloads):
        operations["get"] = {
            **common,
            "parameters": [
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": type_schema(parameter.type),
                }
                for name, parameter in named.items()
            ],
            "responses": responses,
        }
    return operations


def _named_parameters(overloads: Iterable[Function]) -> dict[str, Parameter]:
    named: dict[str, Parameter] = {}
    for overload in overloads:
        for parameter in overload.parameters:
            if parameter.name:  # unnamed parameters cannot be passed by name
                named.setdefault(parameter.name, parameter)
    return named


def _required_parameters(overloads: Sequence[Function]) -> set[str]:
    """The names every callable overload needs: a call that omits any other still finds one."""
    sets = [{p.name for p in f.parameters if p.name and not p.has_default} for f in overloads]
    return set.intersection(*sets) if sets else set()


def _takes_whole_body(overloads: Sequence[Function]) -> bool:
    return len(overloads) == 1 and [p.name for p in overloads[0].parameters] == [""]


def _function_responses(function: Function, described: Mapping[QualifiedName, str]) -> JsonObject:
    if function.return_type == "void" and not function.returns_set:
        return {"204": {"description": "No Content"}}
    if function.returns_table is not None and function.returns_table in described:
        item: JsonObject = _ref("schemas", described[function.returns_table])
    elif not function.returns_scalar:
        # A row type the caller may not select, or a record: its columns stay undescribed.
        item = {"type": "object"}
    else:
        item = type_schema(function.return_type)
    result = {"type": "array", "items": item} if function.returns_set else item
    return {"200": {"description": "OK", "content": {_JSON: {"schema": result}}}}
