"""The OpenAPI builder on a hand-built schema cache: types, privileges, methods, and a valid 3.0 document."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from openapi_spec_validator import validate

from fluxbase import __version__
from fluxbase.rest.openapi import (
    TABLES_MOUNT,
    Access,
    RelationAccess,
    build_openapi,
    column_schema,
    type_schema,
)
from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Function,
    Parameter,
    QualifiedName,
    RelationKind,
    Relationship,
    SchemaCache,
    Table,
    Volatility,
)

FILMS = QualifiedName("public", "films")
DIRECTORS = QualifiedName("public", "directors")
FILM_TITLES = QualifiedName("public", "film_titles")  # a view that accepts no writes
SECRETS = QualifiedName("private", "secrets")  # another exposed schema
HIDDEN = QualifiedName("private", "hidden")
BASE = "https://api.example.org"


def col(name: str, type_: str, base: str | None = None, **options: Any) -> Column:
    is_array = type_.endswith("[]")
    return Column(name, type_, base or type_.removesuffix("[]"), is_array=is_array, **options)


def fn(
    name: str, *params: Parameter, volatility: Volatility = Volatility.VOLATILE, **options: Any
) -> Function:
    defaults: dict[str, Any] = {"return_type": "integer", "returns_set": False}
    return Function(QualifiedName("public", name), params, volatility=volatility, **{**defaults, **options})


FILM_COLUMNS = (
    col("id", "integer", "int4", nullable=False),
    col("title", "character varying(120)", "varchar", nullable=False, description="As released"),
    col("director_id", "integer", "int4"),
    col("rating", "numeric(3,1)", "numeric"),
    col("tags", "text[]", "text", nullable=False, has_default=True, default="'{}'::text[]"),
    col("data", "jsonb"),
    col("released", "date"),
    col("updated_at", "timestamp with time zone", "timestamptz", nullable=False, has_default=True),
    col("uid", "uuid"),
    col("seen", "boolean", "bool"),
    col("views", "bigint", "int8"),
    col("mood", "public.mood", "mood", enum_values=("happy", "sad")),
    col("tsv", "tsvector", nullable=False, generated_always=True),
)


def make_cache() -> SchemaCache:
    films = Table(
        FILMS,
        RelationKind.TABLE,
        {c.name: c for c in FILM_COLUMNS},
        primary_key=("id",),
        description="Films we know\nwith more lines",
    )
    directors = Table(
        DIRECTORS,
        RelationKind.TABLE,
        {c.name: c for c in (col("id", "integer", "int4", nullable=False), col("last_name", "text"))},
        primary_key=("id",),
    )
    titles = Table(
        FILM_TITLES,
        RelationKind.VIEW,
        {"title": col("title", "text")},
        insertable=False,
        updatable=False,
        deletable=False,
    )
    secrets = Table(SECRETS, RelationKind.TABLE, {"x": col("x", "text")}, primary_key=("x",))
    functions = [
        fn("add", Parameter("a", "integer"), Parameter("b", "integer", has_default=True),
           volatility=Volatility.IMMUTABLE, description="Adds two numbers"),
        fn("add", Parameter("a", "text"), volatility=Volatility.IMMUTABLE, return_type="text"),
        fn("reset", return_type="void"),
        fn("recent", Parameter("since", "date"), volatility=Volatility.STABLE, return_type="public.films",
           returns_set=True, returns_table=FILMS, returns_scalar=False),
        fn("echo", Parameter("", "jsonb"), return_type="jsonb"),
    ]  # fmt: skip
    grouped: dict[QualifiedName, tuple[Function, ...]] = {}
    for function in functions:
        grouped[function.name] = (*grouped.get(function.name, ()), function)
    return SchemaCache(
        schemas=("public", "private"),
        tables={t.name: t for t in (films, directors, titles, secrets)},
        relationships={
            FILMS: (
                Relationship(
                    FILMS,
                    DIRECTORS,
                    Cardinality.MANY_TO_ONE,
                    "films_director_id_fkey",
                    ("director_id",),
                    ("id",),
                ),
            ),
        },
        functions={**grouped, HIDDEN: (replace(fn("hidden"), name=HIDDEN),)},
    )


def everything(cache: SchemaCache) -> dict[str, Any]:
    return build_openapi(cache, "public", Access.everything(cache, "public"), base_url=BASE)


def test_the_whole_document_is_valid_openapi_3_0() -> None:
    document = everything(make_cache())
    validate(document)  # raises on any violation of the OpenAPI 3.0 schema and its rules
    assert document["openapi"].startswith("3.0.")
    assert document["info"]["title"] == "Fluxbase"
    assert document["info"]["version"] == __version__
    assert "Swagger 2.0" in document["info"]["description"]
    assert document["servers"] == [{"url": "https://api.example.org/rest/v1"}]


def test_only_the_selected_schema_is_described() -> None:
    cache = make_cache()
    public = everything(cache)
    assert "/secrets" not in public["paths"]
    assert "/rpc/hidden" not in public["paths"]
    private = build_openapi(cache, "private", Access.everything(cache, "private"), base_url=BASE)
    assert set(private["paths"]) == {"/", "/secrets", "/rpc/hidden"}
    validate(private)


@pytest.mark.parametrize("schema", ["auth", "storage", "pg_catalog", "information_schema"])
def test_internal_schemas_are_never_described(schema: str) -> None:
    cache = make_cache()
    with pytest.raises(ValueError, match="internal"):
        build_openapi(cache, schema, Access({}, frozenset()), base_url=BASE)


def test_columns_are_typed_from_postgresql_types() -> None:
    properties = everything(make_cache())["components"]["schemas"]["films"]["properties"]
    assert properties["id"] == {
        "type": "integer",
        "format": "int32",
        "description": "Note:\nThis is a Primary Key.<pk/>",
    }
    assert properties["title"] == {"type": "string", "maxLength": 120, "description": "As released"}
    assert properties["rating"] == {"type": "number", "nullable": True}
    assert properties["tags"] == {"type": "array", "items": {"type": "string"}}
    assert properties["data"] == {"nullable": True}  # any JSON value
    assert properties["released"] == {"type": "string", "format": "date", "nullable": True}
    assert properties["updated_at"] == {"type": "string", "format": "date-time"}
    assert properties["uid"] == {"type": "string", "format": "uuid", "nullable": True}
    assert properties["seen"] == {"type": "boolean", "nullable": True}
    assert properties["views"] == {"type": "integer", "format": "int64", "nullable": True}
    assert properties["mood"] == {"type": "string", "enum": ["happy", "sad"], "nullable": True}
    assert properties["tsv"] == {"type": "string", "readOnly": True}
    assert properties["director_id"]["description"] == (
        "Note:\nThis is a Foreign Key to `directors.id`.<fk table='directors' column='id'/>"
    )


def test_required_means_not_null_without_default() -> None:
    films = everything(make_cache())["components"]["schemas"]["films"]
    assert films["required"] == ["id", "title"]
    assert films["description"] == "Films we know\nwith more lines"


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (col("n", "smallint", "int2"), {"type": "integer", "format": "int32"}),
        (col("n", "real", "float4"), {"type": "number", "format": "float"}),
        (col("n", "double precision", "float8"), {"type": "number", "format": "double"}),
        (col("c", "character(3)", "bpchar"), {"type": "string", "maxLength": 3}),
        (col("c", "character varying(8)[]", "varchar"),
         {"type": "array", "items": {"type": "string", "maxLength": 8}}),
        (col("d", "public.email", "text"), {"type": "string"}),  # a domain: typed by its base
        (col("m", "public.mood[]", "mood", enum_values=("a",)),
         {"type": "array", "items": {"type": "string", "enum": ["a"]}}),
        (col("t", "timestamp(3) without time zone", "timestamp"), {"type": "string", "format": "date-time"}),
        (col("p", "public.point3d", "point3d"), {}),  # a composite: not guessed
    ],
)  # fmt: skip
def test_column_schema(column: Column, expected: dict[str, Any]) -> None:
    assert column_schema(column) == expected


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("integer", {"type": "integer", "format": "int32"}),
        ("bigint[]", {"type": "array", "items": {"type": "integer", "format": "int64"}}),
        ("character varying", {"type": "string"}),
        ("timestamp with time zone", {"type": "string", "format": "date-time"}),
        ("jsonb", {}),
        ("public.mood", {}),
    ],
)
def test_type_schema(type_name: str, expected: dict[str, Any]) -> None:
    assert type_schema(type_name) == expected


def test_every_relation_gets_query_parameters_and_row_filters() -> None:
    document = everything(make_cache())
    get = document["paths"]["/films"]["get"]
    refs = [p["$ref"].rsplit("/", 1)[-1] for p in get["parameters"]]
    assert refs[: len(FILM_COLUMNS)] == [f"rowFilter.films.{c.name}" for c in FILM_COLUMNS]
    assert {"select", "order", "limit", "offset", "range", "preferCount"} <= set(refs)
    parameters = document["components"]["parameters"]
    assert parameters["rowFilter.films.title"]["name"] == "title"
    assert parameters["rowFilter.films.title"]["in"] == "query"
    assert parameters["range"]["name"] == "Range"
    assert parameters["range"]["in"] == "header"
    assert get["summary"] == "Films we know"
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/films"},
    }


def test_methods_follow_privileges_and_updatability() -> None:
    cache = make_cache()
    full = everything(cache)["paths"]
    assert set(full["/films"]) == {"get", "post", "patch", "delete", "put"}
    assert set(full["/film_titles"]) == {"get"}  # a view that accepts no writes

    read_only = Access(
        {
            FILMS: RelationAccess(frozenset({"id", "title"}), update=True),
            DIRECTORS: RelationAccess(frozenset(), insert=True, update=True, delete=True),
        },
        frozenset(),
    )
    document = build_openapi(cache, "public", read_only, base_url=BASE)
    validate(document)
    assert set(document["paths"]) == {"/", "/films"}  # no SELECT on any column: absent
    assert set(document["paths"]["/films"]) == {"get", "patch"}  # PUT needs INSERT too
    assert set(document["components"]["schemas"]) == {"films"}
    assert list(document["components"]["schemas"]["films"]["properties"]) == ["id", "title"]
    # No row filters for columns the caller cannot see.
    assert not [k for k in document["components"]["parameters"] if k.startswith("rowFilter.directors")]


def test_foreign_key_notes_name_only_what_the_caller_may_select() -> None:
    cache = make_cache()

    def note(directors_columns: frozenset[str]) -> str | None:
        access = Access(
            {
                FILMS: RelationAccess(frozenset({"id", "director_id"})),
                DIRECTORS: RelationAccess(directors_columns),
            },
            frozenset(),
        )
        films = build_openapi(cache, "public", access, base_url=BASE)["components"]["schemas"]["films"]
        description: str | None = films["properties"]["director_id"].get("description")
        return description

    assert note(frozenset({"id", "last_name"})) == (
        "Note:\nThis is a Foreign Key to `directors.id`.<fk table='directors' column='id'/>"
    )
    # No privilege on directors, or not on the referenced column: no note naming them.
    assert note(frozenset()) is None
    assert note(frozenset({"last_name"})) is None


def test_put_needs_a_primary_key() -> None:
    cache = make_cache()
    keyless = Table(QualifiedName("public", "log"), RelationKind.TABLE, {"line": col("line", "text")})
    cache = SchemaCache(cache.schemas, {**cache.tables, keyless.name: keyless}, cache.relationships)
    assert set(everything(cache)["paths"]["/log"]) == {"get", "post", "patch", "delete"}


def test_functions_post_always_and_get_unless_volatile() -> None:
    paths = everything(make_cache())["paths"]
    assert set(paths["/rpc/reset"]) == {"post"}
    assert paths["/rpc/reset"]["post"]["responses"] == {"204": {"description": "No Content"}}
    assert set(paths["/rpc/recent"]) == {"get", "post"}
    recent = paths["/rpc/recent"]["get"]
    assert recent["parameters"] == [
        {"name": "since", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}}
    ]
    assert recent["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/films"},
    }
    echo = paths["/rpc/echo"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert echo == {}  # the single unnamed json parameter takes the body as it is


def test_overloads_merge_and_follow_execute_privileges() -> None:
    cache = make_cache()
    add = everything(cache)["paths"]["/rpc/add"]["post"]
    assert add["summary"] == "Adds two numbers"
    body = add["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"a", "b"}
    assert body["required"] == ["a"]

    add_name = QualifiedName("public", "add")
    only_text = Access({}, frozenset({(add_name, ("text",))}))
    document = build_openapi(cache, "public", only_text, base_url=BASE)
    assert set(document["paths"]) == {"/", "/rpc/add"}
    post = document["paths"]["/rpc/add"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"] == {
        "a": {"type": "string"}
    }
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "string"}


def test_a_function_returning_rows_the_caller_cannot_select_reveals_no_columns() -> None:
    cache = make_cache()
    recent = QualifiedName("public", "recent")
    document = build_openapi(cache, "public", Access({}, frozenset({(recent, ("date",))})), base_url=BASE)
    validate(document)
    schema = document["paths"]["/rpc/recent"]["post"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"] == {"type": "array", "items": {"type": "object"}}


def test_the_fluxbase_mount_keeps_relations_and_functions_apart() -> None:
    cache = make_cache()
    document = build_openapi(cache, "public", Access.everything(cache, "public"), base_url=BASE + "/",
                             mount=TABLES_MOUNT)  # fmt: skip
    assert document["servers"] == [{"url": "https://api.example.org/api/v1"}]
    assert {"/tables/", "/tables/films", "/rpc/add"} <= set(document["paths"])
    assert "/films" not in document["paths"]


def test_any_postgresql_name_gives_valid_paths_and_component_keys() -> None:
    odd = QualifiedName("public", "año/{x} y")
    columns = {n: col(n, "text") for n in ("a b", "a_b", "ñ")}
    table = Table(odd, RelationKind.TABLE, columns, primary_key=("a b",))
    cache = SchemaCache(("public",), {odd: table})
    document = everything(cache)
    validate(document)
    assert "/a%C3%B1o%2F%7Bx%7D%20y" in document["paths"]
    keys = [k for k in document["components"]["parameters"] if k.startswith("rowFilter.")]
    assert len(set(keys)) == 3  # "a b" and "a_b" do not collide
    assert [document["components"]["parameters"][k]["name"] for k in keys] == ["a b", "a_b", "ñ"]
