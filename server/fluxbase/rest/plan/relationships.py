"""Choosing the relationship an embed means (PostgREST's findRel), and its errors PGRST200/201.

Pure: reads the schema cache's relationships. The rules, as PostgREST applies them:
the target names the related table, a foreign key constraint or a single foreign
key column of the origin (the last two not towards a view); a hint picks among
several by constraint, column (either side) or junction table; in a self-referencing
relationship the table name means the one-to-many side and the column name the
many-to-one side, and a hint names the referenced column.
"""

from __future__ import annotations

import difflib

from fluxbase.rest.errors import ApiError, pgrst_error
from fluxbase.rest.schema import Cardinality, RelationKind, Relationship, SchemaCache, Table

# PostgREST's fuzzy matching answers below a similarity of about a third; difflib's ratio is
# stricter for short names, so half keeps suggestions sensible without naming unrelated tables.
_HINT_CUTOFF = 0.5


def _single(relationship: Relationship) -> tuple[str, str] | None:
    if relationship.junction is not None or relationship.function is not None:
        return None
    if len(relationship.source_columns) != 1:
        return None
    return relationship.source_columns[0], relationship.target_columns[0]


def _matches(cache: SchemaCache, relationship: Relationship, target: str, hint: str | None) -> bool:
    if relationship.function is not None:
        return target == relationship.function.name
    single = _single(relationship)
    cardinality = relationship.cardinality
    to_many = cardinality == Cardinality.ONE_TO_MANY
    junction = relationship.junction
    # PostgREST's relColumns: (origin's column, target's column) of a single-column key.
    fk_column = single[0] if single else None
    ref_column = single[1] if single else None
    constraint = relationship.constraint if junction is None else None
    if relationship.is_self:
        if hint is None:
            return (target == relationship.target.name and to_many) or (
                cardinality == Cardinality.MANY_TO_ONE and fk_column == target
            )
        return target == relationship.target.name and to_many and ref_column == hint
    if hint is None:
        target_table = cache.tables.get(relationship.target)
        towards_view = target_table is not None and target_table.kind == RelationKind.VIEW
        return (
            target == relationship.target.name
            or (constraint == target and not towards_view)
            or (fk_column == target and not towards_view)
        )
    return target == relationship.target.name and (
        constraint == hint
        or fk_column == hint
        or ref_column == hint
        or (junction is not None and junction.table.name == hint)
    )


def find_relationship(cache: SchemaCache, origin: Table, target: str, hint: str | None) -> Relationship:
    """The one relationship `origin?select=target!hint(...)` means; PGRST200 or PGRST201 otherwise."""
    candidates = [r for r in cache.relationships_from(origin.name) if _matches(cache, r, target, hint)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _no_relationship(cache, origin, target, hint)
    raise _ambiguous(origin, target, candidates)


def _no_relationship(cache: SchemaCache, origin: Table, target: str, hint: str | None) -> ApiError:
    schema, name = origin.name.schema, origin.name.name
    return pgrst_error(
        "PGRST200",
        f"Could not find a relationship between '{name}' and '{target}' in the schema cache",
        details=f"Searched for a foreign key relationship between '{name}' and '{target}'"
        + (f" using the hint '{hint}'" if hint else "")
        + f" in the schema '{schema}', but no matches were found.",
        hint=_no_relationship_hint(cache, origin, target),
    )


def _no_relationship_hint(cache: SchemaCache, origin: Table, target: str) -> str | None:
    """PostgREST's suggestion: the closest related table's name, other than the one asked for."""
    related = sorted({r.target.name for r in cache.relationships_from(origin.name)} - {target})
    close = difflib.get_close_matches(target, related, n=1, cutoff=_HINT_CUTOFF)
    return f"Perhaps you meant '{close[0]}' instead of '{target}'." if close else None


def _ambiguous(origin: Table, target: str, candidates: list[Relationship]) -> ApiError:
    return pgrst_error(
        "PGRST201",
        "Could not embed because more than one relationship was found for "
        f"'{origin.name.name}' and '{target}'",
        details=[_compressed(r) for r in candidates],
        hint=f"Try changing '{target}' to one of the following: "
        + ", ".join(f"'{r.target.name}!{_hint_name(r)}'" for r in candidates)
        + ". Find the desired relationship in the 'details' key.",
    )


def _hint_name(relationship: Relationship) -> str:
    return relationship.junction.table.name if relationship.junction else relationship.constraint


_CARDINALITY_WORDS = {
    Cardinality.MANY_TO_ONE: "many-to-one",
    Cardinality.ONE_TO_MANY: "one-to-many",
    Cardinality.ONE_TO_ONE: "one-to-one",
    Cardinality.MANY_TO_MANY: "many-to-many",
}


def _compressed(r: Relationship) -> dict[str, str]:
    """One candidate as PostgREST lists it in PGRST201's details."""
    junction = r.junction
    if junction is not None:
        description = (
            f"{junction.table.name} using {junction.source_constraint}({', '.join(junction.source_columns)})"
            f" and {junction.target_constraint}({', '.join(junction.target_columns)})"
        )
    else:
        description = (
            f"{r.constraint} using {r.source.name}({', '.join(r.source_columns)})"
            f" and {r.target.name}({', '.join(r.target_columns)})"
        )
    return {
        "cardinality": _CARDINALITY_WORDS[r.cardinality],
        "embedding": f"{r.source.name} with {r.target.name}",
        "relationship": description,
    }
