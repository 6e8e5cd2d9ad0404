"""The schema cache loader: reads the catalogs of the exposed schemas into rest/schema.py's model.

Feeds the plan stage; SchemaCacheHolder keeps the current cache per process and
reloads it on `NOTIFY pgrst, 'reload schema'` (sent by sql/30_schema_reload.sql after DDL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from fluxbase.background import stop_tasks
from fluxbase.config import INTERNAL_SCHEMAS, is_internal_schema
from fluxbase.db.errors import CONNECTION_ERRORS
from fluxbase.rest.schema import (
    Cardinality,
    Column,
    ForeignKey,
    Junction,
    QualifiedName,
    RelationKind,
    Relationship,
    SchemaCache,
    Table,
)
from fluxbase.rest.schema_routines import (
    FUNCTIONS_QUERY,
    GEOJSON_QUERY,
    computed_members,
    load_functions,
)
from fluxbase.rest.schema_views import (
    BASE_COLUMNS_QUERY,
    VIEW_RULES_QUERY,
    base_relations,
    derived_keys,
    exposures,
    trace_to_tables,
    view_columns,
)

log = logging.getLogger("fluxbase.schema_cache")

# Never exposed, whatever the configuration or a request's Accept-Profile says:
# the internal schemas hold password hashes, sessions, audit trails and the
# migration registry.  Any schema starting with "pg_" is PostgreSQL's own.
# One list for the whole server: the configuration refuses these names too.
FORBIDDEN_SCHEMAS: frozenset[str] = INTERNAL_SCHEMAS

# PostgREST's channel and payload, so existing migrations and tools that send them work unchanged.
RELOAD_CHANNEL = "pgrst"
RELOAD_PAYLOADS = frozenset({"reload schema", ""})  # an empty payload means "reload everything"


class ForbiddenSchemaError(ValueError):
    """A configuration asked to expose an internal or system schema."""


def is_forbidden_schema(schema: str) -> bool:
    return is_internal_schema(schema)


def validate_exposed_schemas(schemas: Iterable[str]) -> tuple[str, ...]:
    """The schemas to expose, in order and without repeats; raises on an empty list or a forbidden name.

    The config layer calls this so that `api.schemas: [public, auth]` is refused at start-up,
    not silently trimmed.
    """
    exposed: list[str] = []
    for schema in schemas:
        if not schema:
            raise ForbiddenSchemaError("an exposed schema name is empty")
        if is_forbidden_schema(schema):
            raise ForbiddenSchemaError(f"schema {schema!r} is internal and can never be exposed")
        if schema not in exposed:
            exposed.append(schema)
    if not exposed:
        raise ForbiddenSchemaError("at least one schema must be exposed")
    return tuple(exposed)


# -- Catalog queries ---------------------------------------------------------------------------
# Run in one REPEATABLE READ transaction with an empty search_path, so the four
# queries see one snapshot and format_type() qualifies every type outside
# pg_catalog.  $1 is the exposed schemas, $2 the forbidden ones: the SQL filter
# is a second line of defence behind validate_exposed_schemas.

RELATIONS_QUERY = r"""
select c.oid, n.nspname as schema, c.relname as name, c.relkind::text as kind,
       obj_description(c.oid, 'pg_class') as description,
       -- bitmask of (1 << CMD_UPDATE) = 4, (1 << CMD_INSERT) = 8, (1 << CMD_DELETE) = 16
       case when c.relkind in ('r', 'p') then 28 else pg_relation_is_updatable(c.oid::regclass, true) end
         as writable_events,
       coalesce((
         select array_agg(a.attname::text order by k.ord)
         from pg_constraint pk
         cross join lateral unnest(pk.conkey) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = pk.conrelid and a.attnum = k.attnum
         where pk.conrelid = c.oid and pk.contype = 'p'
       ), '{}') as primary_key
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1::text[])
  and not n.nspname = any($2::text[])
  and n.nspname not like 'pg\_%'
  and c.relkind in ('r', 'v', 'm', 'f', 'p')
  and not c.relispartition
order by n.nspname, c.relname
"""

# Domains are resolved to their base type (through chains of domains), then
# arrays to their element type (itself possibly a domain): base_type and
# enum_values describe what the values really are.
COLUMNS_QUERY = r"""
with recursive domain_chain(domain, base) as (
  select t.oid, t.typbasetype from pg_type t where t.typtype = 'd'
  union all
  select chain.domain, t.typbasetype
  from domain_chain chain join pg_type t on t.oid = chain.base
  where t.typtype = 'd'
),
domain_base(domain, base) as (
  select chain.domain, chain.base
  from domain_chain chain join pg_type t on t.oid = chain.base
  where t.typtype <> 'd'
)
select a.attrelid as relation, a.attname::text as name,
       format_type(a.atttypid, a.atttypmod) as type,
       coalesce(elem.typname, resolved.typname)::text as base_type,
       elem.oid is not null as is_array,
       not (a.attnotnull or (declared.typtype = 'd' and declared.typnotnull)) as nullable,
       ad.oid is not null or a.attidentity <> '' as has_default,
       case when a.attgenerated = '' then pg_get_expr(ad.adbin, ad.adrelid) end as "default",
       a.attidentity = 'a' or a.attgenerated <> '' as generated_always,
       coalesce((
         select array_agg(e.enumlabel::text order by e.enumsortorder)
         from pg_enum e where e.enumtypid = coalesce(elem.oid, resolved.oid)
       ), '{}') as enum_values,
       col_description(a.attrelid, a.attnum) as description
from pg_attribute a
join pg_type declared on declared.oid = a.atttypid
join pg_type resolved
  on resolved.oid = coalesce((select b.base from domain_base b where b.domain = a.atttypid), a.atttypid)
left join pg_type elem
  on resolved.typelem <> 0 and resolved.typlen = -1
  and elem.oid = coalesce((select b.base from domain_base b where b.domain = resolved.typelem),
                          resolved.typelem)
left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
order by a.attrelid, a.attnum
"""

# Primary keys, unique constraints and foreign keys of the loaded relations.
# conparentid = 0 skips the copies PostgreSQL makes for each partition.
CONSTRAINTS_QUERY = r"""
select con.conname::text as name, con.contype::text as kind, con.conrelid as relation,
       array(
         select a.attname::text
         from unnest(con.conkey) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
         order by k.ord
       ) as columns,
       con.confrelid as foreign_relation,
       array(
         select a.attname::text
         from unnest(con.confkey) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum
         order by k.ord
       ) as foreign_columns
from pg_constraint con
where con.conrelid = any($1::oid[])
  and con.contype in ('p', 'u', 'f')
  and con.conparentid = 0
order by con.conrelid, con.conname
"""

# Relations whose keys come from their definition rather than their own constraints.
_TRACED_KINDS = frozenset({RelationKind.VIEW, RelationKind.MATERIALIZED_VIEW})

_RELATION_KINDS = {
    "r": RelationKind.TABLE,
    "p": RelationKind.PARTITIONED_TABLE,
    "v": RelationKind.VIEW,
    "m": RelationKind.MATERIALIZED_VIEW,
    "f": RelationKind.FOREIGN_TABLE,
}
# pg_relation_is_updatable's bits.
_UPDATE, _INSERT, _DELETE = 4, 8, 16


async def load_schema_cache(connection: Any, schemas: Sequence[str]) -> SchemaCache:
    """Reads tables, columns, keys, relationships and functions of `schemas` in one snapshot.

    `connection` is an idle asyncpg connection (not in a transaction); any role
    works, since the catalogs are readable by all.  Views get the keys and
    relationships of the table columns they show (rest/schema_views.py).
    """
    exposed = validate_exposed_schemas(schemas)
    forbidden = sorted(FORBIDDEN_SCHEMAS)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        # An empty search_path makes format_type() qualify types outside pg_catalog.
        await connection.execute("select set_config('search_path', '', true)")
        relation_rows = await connection.fetch(RELATIONS_QUERY, exposed, forbidden)
        oids = [row["oid"] for row in relation_rows]
        column_rows = await connection.fetch(COLUMNS_QUERY, oids)
        traced = trace_to_tables(view_columns(await connection.fetch(VIEW_RULES_QUERY)))
        traced = {oid: columns for oid, columns in traced.items() if oid in set(oids)}
        bases = base_relations(traced)
        base_rows = await connection.fetch(BASE_COLUMNS_QUERY, bases)
        constraint_rows = await connection.fetch(CONSTRAINTS_QUERY, sorted(set(oids) | set(bases)))
        function_rows = await connection.fetch(FUNCTIONS_QUERY, exposed, forbidden)
        geojson = await connection.fetchrow(GEOJSON_QUERY)

    names = {row["oid"]: QualifiedName(row["schema"], row["name"]) for row in relation_rows}
    tables = _tables(relation_rows, column_rows, names)
    table_columns: dict[int, list[str]] = defaultdict(list)
    for row in column_rows:
        table_columns[row["relation"]].append(row["name"])
    column_names = {(row["relation"], row["attnum"]): row["column"] for row in base_rows}
    shown = exposures(names, traced, column_names, table_columns)
    foreign_keys, unique_keys, primary_keys = derived_keys(*_base_keys(constraint_rows), shown)
    for name, table in tables.items():
        if table.kind in _TRACED_KINDS and name in primary_keys:
            tables[name] = replace(table, primary_key=primary_keys[name])
    computed_fields, computed_relationships = computed_members(function_rows, names, tables)
    return SchemaCache(
        schemas=exposed,
        tables=tables,
        relationships=derive_relationships(foreign_keys, unique_keys, computed_relationships),
        functions=load_functions(function_rows, names),
        computed_fields=computed_fields,
        geojson_function=None if geojson is None else QualifiedName(geojson["schema"], geojson["name"]),
    )


def _tables(
    relation_rows: Sequence[Any], column_rows: Sequence[Any], names: Mapping[int, QualifiedName]
) -> dict[QualifiedName, Table]:
    columns: dict[int, dict[str, Column]] = defaultdict(dict)
    for row in column_rows:  # ordered by attnum, and dicts keep insertion order
        columns[row["relation"]][row["name"]] = Column(
            name=row["name"],
            type=row["type"],
            base_type=row["base_type"],
            nullable=row["nullable"],
            has_default=row["has_default"],
            default=row["default"],
            generated_always=row["generated_always"],
            is_array=row["is_array"],
            enum_values=tuple(row["enum_values"]),
            description=row["description"],
        )
    tables: dict[QualifiedName, Table] = {}
    for row in relation_rows:
        events = row["writable_events"] or 0
        name = names[row["oid"]]
        tables[name] = Table(
            name=name,
            kind=_RELATION_KINDS[row["kind"]],
            columns=columns.get(row["oid"], {}),
            primary_key=tuple(row["primary_key"]),
            insertable=bool(events & _INSERT),
            updatable=bool(events & _UPDATE),
            deletable=bool(events & _DELETE),
            description=row["description"],
        )
    return tables


BaseForeignKey = tuple[str, int, tuple[str, ...], int, tuple[str, ...]]


def _base_keys(
    constraint_rows: Sequence[Any],
) -> tuple[list[BaseForeignKey], dict[int, list[tuple[str, ...]]], dict[int, tuple[str, ...]]]:
    """Foreign keys, unique keys and primary keys by relation oid, as the catalog has them."""
    foreign_keys: list[BaseForeignKey] = []
    unique_keys: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    primary_keys: dict[int, tuple[str, ...]] = {}
    for row in constraint_rows:
        columns = tuple(row["columns"])
        if row["kind"] in ("p", "u"):
            unique_keys[row["relation"]].append(columns)
            if row["kind"] == "p":
                primary_keys[row["relation"]] = columns
        else:
            foreign_keys.append(
                (
                    row["name"],
                    row["relation"],
                    columns,
                    row["foreign_relation"],
                    tuple(row["foreign_columns"]),
                )
            )
    return foreign_keys, dict(unique_keys), primary_keys


def derive_relationships(
    foreign_keys: Sequence[ForeignKey],
    unique_keys: Mapping[QualifiedName, Sequence[frozenset[str]]],
    computed: Sequence[Relationship] = (),
) -> dict[QualifiedName, tuple[Relationship, ...]]:
    """Every relationship the foreign keys imply, keyed by source.

    Each key A(cols) -> B(refs) gives A->B m2o and B->A o2m, or o2o both ways when
    A's cols are exactly a primary key or unique constraint of A.  A junction J
    whose keys to A and to B together lie within one of J's primary or unique
    keys gives A->B and B->A m2m.  Self-references and several keys between one
    pair each give their own relationships, told apart by constraint name.
    """
    found: list[Relationship] = []
    for fk in foreign_keys:
        one_to_one = frozenset(fk.columns) in unique_keys.get(fk.table, ())
        found.append(
            Relationship(
                source=fk.table,
                target=fk.foreign_table,
                cardinality=Cardinality.ONE_TO_ONE if one_to_one else Cardinality.MANY_TO_ONE,
                constraint=fk.constraint,
                source_columns=fk.columns,
                target_columns=fk.foreign_columns,
            )
        )
        found.append(
            Relationship(
                source=fk.foreign_table,
                target=fk.table,
                cardinality=Cardinality.ONE_TO_ONE if one_to_one else Cardinality.ONE_TO_MANY,
                constraint=fk.constraint,
                source_columns=fk.foreign_columns,
                target_columns=fk.columns,
            )
        )
    found.extend(_many_to_many(foreign_keys, unique_keys))
    found.extend(computed)

    by_source: dict[QualifiedName, list[Relationship]] = defaultdict(list)
    for relationship in found:
        by_source[relationship.source].append(relationship)
    return {
        source: tuple(sorted(relationships, key=_relationship_order))
        for source, relationships in sorted(by_source.items())
    }


def _many_to_many(
    foreign_keys: Sequence[ForeignKey], unique_keys: Mapping[QualifiedName, Sequence[frozenset[str]]]
) -> Iterable[Relationship]:
    keys_by_junction: dict[QualifiedName, list[ForeignKey]] = defaultdict(list)
    for fk in foreign_keys:
        if fk.foreign_table != fk.table:  # a key from J to J itself is no side of a junction
            keys_by_junction[fk.table].append(fk)
    for junction, keys in keys_by_junction.items():
        for to_source in keys:
            for to_target in keys:
                if to_source is to_target:
                    continue
                both = frozenset(to_source.columns) | frozenset(to_target.columns)
                if not any(both <= key for key in unique_keys.get(junction, ())):
                    continue
                yield Relationship(
                    source=to_source.foreign_table,
                    target=to_target.foreign_table,
                    cardinality=Cardinality.MANY_TO_MANY,
                    constraint=junction.name,
                    source_columns=to_source.foreign_columns,
                    target_columns=to_target.foreign_columns,
                    junction=Junction(
                        table=junction,
                        source_constraint=to_source.constraint,
                        source_columns=to_source.columns,
                        target_constraint=to_target.constraint,
                        target_columns=to_target.columns,
                    ),
                )


def _relationship_order(relationship: Relationship) -> tuple[str, ...]:
    junction = relationship.junction
    return (
        str(relationship.target),
        relationship.cardinality.value,
        relationship.constraint,
        *relationship.source_columns,
        "",
        *((junction.source_constraint, junction.target_constraint) if junction else ()),
    )


# -- The process's current cache -------------------------------------------------------------

Loader = Callable[[Any, Sequence[str]], Awaitable[SchemaCache]]


class SchemaCacheNotLoaded(RuntimeError):
    """No load has succeeded yet: requests answer 503 (PostgREST's PGRST002) until one does."""


@dataclass(frozen=True)
class ReloadTiming:
    """How the holder paces itself; tests shorten these."""

    # Notifications within this window after the first cause one reload (DDL comes in bursts).
    debounce: float = 0.2
    reconnect_min: float = 0.5
    reconnect_max: float = 32.0
    # How often the idle listening connection is checked, to notice a silently dropped network.
    keepalive: float = 30.0
    connect_timeout: float = 10.0


class SchemaCacheHolder:
    """The current schema cache of this process, swapped whole on every successful reload.

    A connection of its own LISTENs on `pgrst`; `reload schema` notifications
    are debounced into one reload, made on a separate short-lived connection.
    A failed reload logs an error, keeps the old cache and is retried with
    backoff.  A dropped listening connection is re-established with backoff,
    then the cache is reloaded, since notifications sent meanwhile are lost.
    """

    def __init__(
        self,
        dsn: str,
        schemas: Sequence[str],
        *,
        timing: ReloadTiming | None = None,
        loader: Loader = load_schema_cache,
    ) -> None:
        self._dsn = dsn
        self._schemas = validate_exposed_schemas(schemas)
        self._timing = timing or ReloadTiming()
        self._loader = loader
        self._cache: SchemaCache | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_requested = asyncio.Event()
        self._listen_attempted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reloads = 0  # successful loads, the first one included
        self.failures = 0
        self.listener_pid: int | None = None  # backend pid of the listening connection, when connected

    @property
    def cache(self) -> SchemaCache:
        if self._cache is None:
            raise SchemaCacheNotLoaded("the schema cache is not loaded yet")
        return self._cache

    @property
    def loaded(self) -> bool:
        return self._cache is not None

    async def start(self) -> bool:
        """Starts listening, then loads; returns whether the first load succeeded.

        LISTEN comes first so that DDL committed during the first load still
        triggers a reload.  When the first load fails it is retried in the background.
        """
        self._tasks = [
            asyncio.create_task(self._listen(), name="schema-cache-listener"),
            asyncio.create_task(self._reload_when_requested(), name="schema-cache-reloader"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listen_attempted.wait(), self._timing.connect_timeout + 1)
        if await self.reload():
            return True
        self.request_reload()
        return False

    def request_reload(self) -> None:
        """Asks for a reload soon; requests within the debounce window share it."""
        self._reload_requested.set()

    async def reload(self) -> bool:
        """Loads now on a new connection and swaps the cache in; on failure keeps the old one."""
        async with self._reload_lock:
            started = time.monotonic()
            try:
                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=self._timing.connect_timeout,
                    server_settings={"application_name": "fluxbase schema cache"},
                )
                try:
                    cache = await self._loader(connection, self._schemas)
                finally:
                    await connection.close(timeout=self._timing.connect_timeout)
            except Exception as exc:
                self.failures += 1
                log.error(
                    "schema cache reload failed; keeping the previous cache",
                    extra={"reason": f"{type(exc).__name__}: {exc}", "loaded": self.loaded},
                )
                return False
            self._cache = cache
            self.reloads += 1
            log.info(
                "schema cache loaded",
                extra={
                    "relations": len(cache.tables),
                    "relationships": sum(len(r) for r in cache.relationships.values()),
                    "functions": sum(len(f) for f in cache.functions.values()),
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return True

    async def close(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload in RELOAD_PAYLOADS:
            self.request_reload()

    async def _reload_when_requested(self) -> None:
        retry_delay = self._timing.reconnect_min
        while True:
            await self._reload_requested.wait()
            # Clearing after the pause, not before, folds the whole burst into this one reload;
            # a notification that arrives during the reload itself gets a reload of its own.
            await asyncio.sleep(self._timing.debounce)
            self._reload_requested.clear()
            if await self.reload():
                retry_delay = self._timing.reconnect_min
                continue
            # A new notification ends the wait early; otherwise retry after the backoff.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_requested.wait(), retry_delay)
            retry_delay = min(retry_delay * 2, self._timing.reconnect_max)
            self._reload_requested.set()

    async def _listen(self) -> None:
        delay = self._timing.reconnect_min
        reload_after_connect = False  # start() loads right after the first LISTEN
        while True:
            try:
                await self._listen_until_lost(reload_after_connect)
                delay = self._timing.reconnect_min  # it was connected: the next drop starts afresh
            except Exception as exc:
                # Anything, not only connection errors: this task must outlive every failure.
                log.warning(
                    "schema cache listener cannot listen; retrying",
                    extra={"reason": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
                )
            finally:
                self.listener_pid = None
                self._listen_attempted.set()
            reload_after_connect = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._timing.reconnect_max)

    async def _listen_until_lost(self, reload_after_connect: bool) -> None:
        """LISTENs until the connection is lost; raises if it cannot connect or listen."""
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._timing.connect_timeout,
            server_settings={"application_name": "fluxbase schema listener"},
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(RELOAD_CHANNEL, self._on_notification)
            self.listener_pid = connection.get_server_pid()
            self._listen_attempted.set()
            if reload_after_connect:
                log.info("schema cache listener connected again; reloading")
                self.request_reload()
            reason = "connection closed"
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._timing.keepalive)
                if lost.is_set():
                    break
                try:
                    await connection.fetchval("select 1", timeout=self._timing.connect_timeout)
                except (TimeoutError, *CONNECTION_ERRORS) as exc:  # type: ignore[misc]
                    reason = f"keepalive failed: {type(exc).__name__}"
                    break
        finally:
            connection.terminate()
        log.warning("schema cache listener connection lost; reconnecting", extra={"reason": reason})
