"""A hand-built schema cache for the pure plan and query stages (films, directors, actors)."""

from __future__ import annotations

import pytest

from fluxbase.rest.schema import (
    Cardinality,
    Column,
    Junction,
    QualifiedName,
    RelationKind,
    Relationship,
    SchemaCache,
    Table,
)

FILMS = QualifiedName("public", "films")
DIRECTORS = QualifiedName("public", "directors")
ACTORS = QualifiedName("public", "actors")
ROLES = QualifiedName("public", "roles")


def table(name: QualifiedName, *columns: tuple[str, str], pk: tuple[str, ...] = ("id",)) -> Table:
    return Table(
        name,
        RelationKind.TABLE,
        {c: Column(c, t, t.removesuffix("[]"), is_array=t.endswith("[]")) for c, t in columns},
        primary_key=pk,
    )


@pytest.fixture
def cache() -> SchemaCache:
    films = table(FILMS, ("id", "integer"), ("title", "text"), ("director_id", "integer"),
                  ("data", "jsonb"),
                  ("tags", "text[]"), ("tsv", "tsvector"))  # fmt: skip
    directors = table(DIRECTORS, ("id", "integer"), ("last_name", "text"))
    actors = table(ACTORS, ("id", "integer"), ("name", "text"))
    roles = table(ROLES, ("film_id", "integer"), ("actor_id", "integer"), ("character", "text"),
                  pk=("film_id", "actor_id"))  # fmt: skip
    junction = Junction(ROLES, "roles_film_id_fkey", ("film_id",), "roles_actor_id_fkey", ("actor_id",))
    return SchemaCache(
        schemas=("public",),
        tables={t.name: t for t in (films, directors, actors, roles)},
        relationships={
            FILMS: (
                Relationship(FILMS, DIRECTORS, Cardinality.MANY_TO_ONE, "films_director_id_fkey",
                             ("director_id",), ("id",)),
                Relationship(FILMS, ROLES, Cardinality.ONE_TO_MANY, "roles_film_id_fkey",
                             ("id",), ("film_id",)),
                Relationship(FILMS, ACTORS, Cardinality.MANY_TO_MANY, "roles",
                             ("id",), ("id",), junction),
            ),
            DIRECTORS: (
                Relationship(DIRECTORS, FILMS, Cardinality.ONE_TO_MANY, "films_director_id_fkey",
                             ("id",), ("director_id",)),
            ),
        },
    )  # fmt: skip
