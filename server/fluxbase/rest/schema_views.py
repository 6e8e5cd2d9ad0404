"""Keys of views, derived from their definitions: what lets embedding and PUT work through views.

Part of the schema cache loader (rest/schema_cache.py). As PostgREST does, each
view column is traced through the view's `_RETURN` rule (pg_rewrite) to the
base table column it shows, through views of views too; a view then carries
the base table's primary key and foreign keys whose columns it shows in full,
under its own column names. The base tables may live in unexposed schemas:
they are only traced through, never exposed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluxbase.rest.schema import ForeignKey, QualifiedName

# Every view's (and materialized view's) definition outside PostgreSQL's own schemas: views in
# unexposed schemas are traced through when an exposed view reads from them.
VIEW_RULES_QUERY = r"""
select r.ev_class as view, r.ev_action::text as action
from pg_rewrite r
join pg_class c on c.oid = r.ev_class
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('v', 'm') and r.rulename = '_RETURN'
  and n.nspname not in ('pg_catalog', 'information_schema')
"""

# Names of the relations and columns the views lead to (possibly in unexposed schemas).
BASE_COLUMNS_QUERY = r"""
select c.oid as relation, n.nspname as schema, c.relname as name, a.attnum, a.attname::text as column
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.oid = any($1::oid[])
"""

# The end of one TargetEntry node as PostgreSQL's nodeToString writes it (PostgreSQL 12 to 17).
_TARGET_ENTRY_END = re.compile(
    r":resno (\d+) :resname ((?:\\.|[^\s\\])+|<>) :ressortgroupref \d+ "
    r":resorigtbl (\d+) :resorigcol (\d+) :resjunk (true|false)\}$"
)
_MAX_VIEW_DEPTH = 16


@dataclass(frozen=True, slots=True)
class ColumnSource:
    relation: int  # pg_class oid
    attnum: int


def _top_level_entries(action: str) -> list[str]:
    """The TargetEntry nodes of the rule's top-level query's targetList."""
    depth = 0
    index = 0
    length = len(action)
    marker = ":targetList ("
    while index < length:
        ch = action[index]
        if ch == "\\":
            index += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 1 and action.startswith(marker, index):
            return _entries_from(action, index + len(marker))
        index += 1
    return []


def _entries_from(action: str, index: int) -> list[str]:
    entries: list[str] = []
    depth = 0
    start = 0
    while index < len(action):
        ch = action[index]
        if ch == "\\":
            index += 2
            continue
        if ch == "{":
            if depth == 0:
                start = index
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                entries.append(action[start : index + 1])
        elif ch == ")" and depth == 0:
            break
        index += 1
    return entries


def view_columns(rule_rows: Sequence[Any]) -> dict[int, dict[int, tuple[str, ColumnSource]]]:
    """Per view: attnum -> (column name, the column of the relation it reads directly)."""
    views: dict[int, dict[int, tuple[str, ColumnSource]]] = {}
    for row in rule_rows:
        columns: dict[int, tuple[str, ColumnSource]] = {}
        for entry in _top_level_entries(row["action"]):
            match = _TARGET_ENTRY_END.search(entry)
            if match is None or match.group(5) == "true" or match.group(3) == "0":
                continue
            name = re.sub(r"\\(.)", r"\1", match.group(2))
            columns[int(match.group(1))] = (name, ColumnSource(int(match.group(3)), int(match.group(4))))
        views[row["view"]] = columns
    return views


def trace_to_tables(
    views: Mapping[int, Mapping[int, tuple[str, ColumnSource]]],
) -> dict[int, dict[str, ColumnSource]]:
    """Per view: column name -> the base table column it finally shows (through views of views)."""
    traced: dict[int, dict[str, ColumnSource]] = {}
    for view, columns in views.items():
        result: dict[str, ColumnSource] = {}
        for name, source in columns.values():
            for _ in range(_MAX_VIEW_DEPTH):
                inner = views.get(source.relation)
                if inner is None:
                    result[name] = source
                    break
                step = inner.get(source.attnum)
                if step is None:
                    break
                source = step[1]
        traced[view] = result
    return traced


def base_relations(traced: Mapping[int, Mapping[str, ColumnSource]]) -> list[int]:
    return sorted({source.relation for columns in traced.values() for source in columns.values()})


@dataclass(frozen=True, slots=True)
class Exposure:
    """How one exposed relation shows one base table: base column name -> its own column name."""

    relation: QualifiedName
    columns: Mapping[str, str]

    def rename(self, base_columns: Iterable[str]) -> tuple[str, ...] | None:
        renamed = [self.columns.get(column) for column in base_columns]
        return None if any(c is None for c in renamed) else tuple(c for c in renamed if c is not None)


def exposures(
    exposed: Mapping[int, QualifiedName],
    traced: Mapping[int, Mapping[str, ColumnSource]],
    column_names: Mapping[tuple[int, int], str],
    table_columns: Mapping[int, Sequence[str]],
) -> dict[int, list[Exposure]]:
    """Per base table oid: every exposed relation showing it (the table itself first when exposed)."""
    found: dict[int, list[Exposure]] = defaultdict(list)
    for oid, name in exposed.items():
        if oid not in traced:
            found[oid].insert(0, Exposure(name, {c: c for c in table_columns.get(oid, ())}))
    for oid, name in exposed.items():
        columns = traced.get(oid)
        if not columns:
            continue
        by_base: dict[int, dict[str, str]] = defaultdict(dict)
        for view_column, source in columns.items():
            base_column = column_names.get((source.relation, source.attnum))
            if base_column is not None:
                by_base[source.relation].setdefault(base_column, view_column)
        for base, mapping in by_base.items():
            found[base].append(Exposure(name, mapping))
    return dict(found)


def derived_keys(
    base_foreign_keys: Sequence[tuple[str, int, tuple[str, ...], int, tuple[str, ...]]],
    base_unique_keys: Mapping[int, Sequence[tuple[str, ...]]],
    base_primary_keys: Mapping[int, tuple[str, ...]],
    shown: Mapping[int, Sequence[Exposure]],
) -> tuple[list[ForeignKey], dict[QualifiedName, list[frozenset[str]]], dict[QualifiedName, tuple[str, ...]]]:
    """Foreign keys, unique keys and primary keys of exposed relations, views included.

    A key A(cols) -> B(refs) holds between every exposed relation showing all of A's
    cols and every one showing all of B's refs, under the same constraint name.
    """
    foreign_keys: list[ForeignKey] = []
    for constraint, table, columns, foreign_table, foreign_columns in base_foreign_keys:
        for source in shown.get(table, ()):
            source_columns = source.rename(columns)
            if source_columns is None:
                continue
            for target in shown.get(foreign_table, ()):
                target_columns = target.rename(foreign_columns)
                if target_columns is None:
                    continue
                foreign_keys.append(
                    ForeignKey(constraint, source.relation, source_columns, target.relation, target_columns)
                )
    unique_keys: dict[QualifiedName, list[frozenset[str]]] = defaultdict(list)
    for table, keys in base_unique_keys.items():
        for exposure in shown.get(table, ()):
            for key in keys:
                renamed = exposure.rename(key)
                if renamed is not None:
                    unique_keys[exposure.relation].append(frozenset(renamed))
    primary_keys: dict[QualifiedName, tuple[str, ...]] = {}
    for table, key in base_primary_keys.items():
        for exposure in shown.get(table, ()):
            renamed = exposure.rename(key)
            if renamed is not None and key:
                primary_keys.setdefault(exposure.relation, renamed)
    return foreign_keys, dict(unique_keys), primary_keys
