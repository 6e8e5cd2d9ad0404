"""The schema cache's model: what the plan stage knows about the exposed database.

Plain frozen values, built by rest/schema_cache.py from the catalogs (or by
hand in tests), so that planning stays a pure function of (request, schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True, order=True)
class QualifiedName:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


class RelationKind(StrEnum):
    TABLE = "table"
    PARTITIONED_TABLE = "partitioned_table"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized_view"
    FOREIGN_TABLE = "foreign_table"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    # The type as format_type() writes it ("integer", "character varying(20)", "text[]"):
    # used for casts of bound values and for OpenAPI.
    type: str
    # The element type's name for arrays, the type's own name otherwise (pg_type.typname
    # of the base type): lets the plan tell tsvector, json(b), ranges and arrays apart.
    base_type: str
    nullable: bool = True
    has_default: bool = False
    default: str | None = None
    # GENERATED ALWAYS columns (identity or stored): refused on insert/update.
    generated_always: bool = False
    is_array: bool = False
    enum_values: tuple[str, ...] = ()
    description: str | None = None
    # A computed field: the function (taking the table's row type) that yields the value.
    # Usable in select, filters and order like a column, never part of `*`.
    computed_by: QualifiedName | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A table, view, materialized view or foreign table of an exposed schema."""

    name: QualifiedName
    kind: RelationKind
    columns: Mapping[str, Column]  # in ordinal order
    primary_key: tuple[str, ...] = ()
    insertable: bool = True
    updatable: bool = True
    deletable: bool = True
    description: str | None = None

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """One foreign-key constraint: table(columns) references foreign_table(foreign_columns)."""

    constraint: str
    table: QualifiedName
    columns: tuple[str, ...]
    foreign_table: QualifiedName
    foreign_columns: tuple[str, ...]


class Cardinality(StrEnum):
    MANY_TO_ONE = "m2o"  # source holds the foreign key: embed is an object or null
    ONE_TO_MANY = "o2m"  # target holds the foreign key: embed is an array
    ONE_TO_ONE = "o2o"  # the foreign key is also unique: embed is an object or null
    MANY_TO_MANY = "m2m"  # through a junction table: embed is an array


@dataclass(frozen=True, slots=True)
class Junction:
    """The table between two sides of a many-to-many relationship, and its two foreign keys."""

    table: QualifiedName
    source_constraint: str
    source_columns: tuple[str, ...]  # junction columns referencing the source
    target_constraint: str
    target_columns: tuple[str, ...]  # junction columns referencing the target


@dataclass(frozen=True, slots=True)
class Relationship:
    """How rows of `source` relate to rows of `target`, derived from foreign keys.

    For m2o/o2o-from-the-holder, source_columns are the foreign-key columns in
    source and target_columns the referenced ones; for o2m and the other side
    of o2o it is the reverse. For m2m, source_columns/target_columns are the
    referenced keys on each side and `junction` holds the middle table.
    """

    source: QualifiedName
    target: QualifiedName
    cardinality: Cardinality
    constraint: str  # the foreign key's name (for m2m, the junction's name)
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    junction: Junction | None = None
    # A computed relationship: a function taking the source's row type and returning
    # rows of the target (to-one when it returns one row or is declared ROWS 1).
    function: QualifiedName | None = None

    @property
    def is_self(self) -> bool:
        return self.source == self.target and self.function is None and self.junction is None


class Volatility(StrEnum):
    IMMUTABLE = "immutable"
    STABLE = "stable"
    VOLATILE = "volatile"


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str  # "" for unnamed parameters (not callable by name)
    type: str
    has_default: bool = False
    variadic: bool = False


@dataclass(frozen=True, slots=True)
class Function:
    """One overload of a function in an exposed schema."""

    name: QualifiedName
    parameters: tuple[Parameter, ...]
    return_type: str
    returns_set: bool
    volatility: Volatility
    # When it returns a table's row type (or SETOF it), that table: filters, order
    # and embedding then apply to its result as to the table itself.
    returns_table: QualifiedName | None = None
    # Returns a scalar (not a composite): results are the bare values.
    returns_scalar: bool = True
    description: str | None = None
    # RETURNS TABLE (...) or OUT parameters: the result's columns, so that select,
    # filters and order apply to it as to a relation.
    result_columns: tuple[Column, ...] = ()


@dataclass(frozen=True, slots=True)
class SchemaCache:
    """Everything the plan stage may reference, for the exposed schemas only."""

    schemas: tuple[str, ...]  # exposed, in configuration order; the first is the default
    tables: Mapping[QualifiedName, Table] = field(default_factory=dict)
    relationships: Mapping[QualifiedName, tuple[Relationship, ...]] = field(default_factory=dict)
    functions: Mapping[QualifiedName, tuple[Function, ...]] = field(default_factory=dict)
    # Computed fields by table, by name (see Column.computed_by).
    computed_fields: Mapping[QualifiedName, Mapping[str, Column]] = field(default_factory=dict)
    # PostGIS's ST_AsGeoJSON(record), when installed: application/geo+json output needs it.
    geojson_function: QualifiedName | None = None

    def table(self, schema: str, name: str) -> Table | None:
        return self.tables.get(QualifiedName(schema, name))

    def computed_field(self, table: QualifiedName, name: str) -> Column | None:
        return self.computed_fields.get(table, {}).get(name)

    def relationships_from(self, source: QualifiedName) -> tuple[Relationship, ...]:
        return self.relationships.get(source, ())

    def function_overloads(self, schema: str, name: str) -> tuple[Function, ...]:
        return self.functions.get(QualifiedName(schema, name), ())
