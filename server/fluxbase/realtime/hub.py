"""Realtime's middle stage: listener -> hub -> phoenix wire.

The hub knows every joined channel of this process. For each batch of changes it groups the
subscribers of a table by (role, claims) and asks the database ONE question per group: which of
these changed rows may this role see? Row-level security and grants decide, never the hub.
Columns the role cannot select are removed. A DELETE cannot be re-read (the row is gone): its
old row is checked against the table's SELECT policies in the subscriber's role, and only its
primary key is sent. Broadcast and presence travel between replicas through NOTIFY.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from fluxbase.db.pool import Database
from fluxbase.db.transaction import DatabaseUnavailable, PoolBusy, RequestContext, RoleSwitchedTransaction
from fluxbase.observability import metrics
from fluxbase.realtime import phoenix
from fluxbase.realtime.filters import BoundFilter
from fluxbase.realtime.listener import Change
from fluxbase.security.authenticate import Caller

log = logging.getLogger("fluxbase.realtime")

# NOTIFY payloads must stay under 8000 bytes; the envelope needs a little room.
MAX_RELAYED_BYTES: Final = 7800
# How many (table, group) visibility checks of one batch run at once.
CHECK_CONCURRENCY: Final = 4
# Waits before retrying a visibility check that found no free or reachable connection.
AUTHORIZE_RETRIES: Final = (0.1, 0.5, 2.0)
CHANGE_EVENTS: Final = frozenset({"*", "INSERT", "UPDATE", "DELETE"})


class SlowClientError(Exception):
    """The client's send queue is full: it does not read."""


class Client:
    """One WebSocket: its negotiated vsn, its bounded send queue, its joined channels."""

    def __init__(
        self,
        vsn: str,
        caller: Caller,
        *,
        ip: str,
        queue_size: int,
        on_overflow: Callable[[Client], None],
    ) -> None:
        self.id = uuid.uuid4().hex
        self.vsn = vsn
        self.caller = caller
        self.ip = ip
        self.queue: asyncio.Queue[phoenix.OutboundFrame | None] = asyncio.Queue(queue_size)
        self.channels: dict[str, Channel] = {}
        self.closed = False
        self._on_overflow = on_overflow

    def push(self, message: phoenix.Message) -> None:
        """Queues a message; a client whose queue is full is handed to on_overflow (closed 1008)."""
        if self.closed:
            return
        try:
            frame = phoenix.encode(message, self.vsn)
        except phoenix.ProtocolError as exc:
            # e.g. a binary broadcast to a vsn 1.0.0 client: it cannot receive it at all.
            log.debug("realtime: message not encodable for client", extra={"reason": exc.reason})
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.closed = True
            metrics.realtime_slow_clients_total.inc()
            self._on_overflow(self)

    @property
    def subscription_count(self) -> int:
        return sum(1 + len(channel.bindings) for channel in self.channels.values())


@dataclass(eq=False)
class Channel:
    """A joined topic of one client, with the caller it joined (or refreshed) as."""

    client: Client
    topic: str
    join_ref: str | None
    caller: Caller
    broadcast_self: bool = False
    broadcast_ack: bool = False
    presence_key: str = ""
    bindings: list[Binding] = field(default_factory=list)
    expiry: asyncio.TimerHandle | None = None
    # The presence refs this channel tracks (one at most: a new track replaces the old).
    presence_refs: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Binding:
    """One postgres_changes binding: `id` is what the client matches `ids` against."""

    channel: Channel
    id: int
    event: str
    table_oid: int
    filter: BoundFilter
    filter_source: str
    # The binding's `select`: the only columns it wants (None = every column it may see).
    select: frozenset[str] | None = None
    # Columns the filter reads: re-checked against the role's grants at every delivery.
    filter_columns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TableInfo:
    """What delivery needs to know about a table, read from the catalog once per batch."""

    oid: int
    schema: str
    name: str
    rls: bool
    full_identity: bool
    primary_key: tuple[str, ...]
    primary_key_types: tuple[str, ...]  # format_type(), for casting keys back
    columns: tuple[tuple[str, str], ...]  # (name, pg_type.typname) in attnum order

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


TABLE_INFO_SQL: Final = """
select n.nspname::text as schema, c.relname::text as name, c.relrowsecurity as rls,
       c.relreplident = 'f' as full_identity,
       array(select a.attname::text from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = c.oid and i.indisprimary order by a.attnum) as pk,
       array(select format_type(a.atttypid, a.atttypmod) from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = c.oid and i.indisprimary order by a.attnum) as pk_types,
       array(select a.attname::text from pg_attribute a
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as cols,
       array(select t.typname::text from pg_attribute a join pg_type t on t.oid = a.atttypid
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as types
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.oid = $1
"""

# Run in the subscriber's role: the columns it may select, and whether it bypasses RLS.
ROLE_VIEW_SQL: Final = """
select array(select a.attname::text from pg_attribute a
              where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
                and has_column_privilege($1, a.attnum, 'SELECT') order by a.attnum) as cols,
       (select r.rolbypassrls from pg_roles r where r.rolname = current_user) as bypass
"""

# The SELECT policies that apply to the current role, as expressions over the table's columns.
POLICIES_SQL: Final = """
select pg_get_expr(p.polqual, p.polrelid) as qual, p.polpermissive as permissive
  from pg_policy p
 where p.polrelid = $1 and p.polcmd in ('r', '*')
   and exists (select from unnest(p.polroles) r where r = 0 or pg_has_role(current_user, r, 'member'))
"""


def _key_match(info: TableInfo, source: str) -> str:
    return " and ".join(
        f"t.{quote_ident(column)} = ({source}->>{_literal(column)})::{type_name}"
        for column, type_name in zip(info.primary_key, info.primary_key_types, strict=True)
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def visible_rows_sql(info: TableInfo) -> str:
    """Which of the given keys (a JSON array) name rows the current role can see now."""
    # Identifiers are quoted, types come from format_type(); key values are bound parameters.
    return (
        "select k._fb_i::int from "  # noqa: S608
        "jsonb_array_elements($1::jsonb) with ordinality as k(_fb_key, _fb_i) "
        f"where exists (select from {info.qualified} t where {_key_match(info, 'k._fb_key')})"
    )


def policy_rows_sql(info: TableInfo, policies: Sequence[tuple[str | None, bool]]) -> str | None:
    """Which of the given rows (JSON) the current role's SELECT policies let it see.

    None when no permissive policy applies: under RLS that means no row is visible at all.
    """
    permissive = [qual for qual, is_permissive in policies if is_permissive]
    restrictive = [qual for qual, is_permissive in policies if not is_permissive]
    if not permissive:
        return None
    # A policy without USING (FOR ALL ... WITH CHECK only) grants no reads.
    condition = "(" + " or ".join(f"({qual or 'false'})" for qual in permissive) + ")"
    for qual in restrictive:
        condition += f" and ({qual or 'false'})"
    # The row is rebuilt under the table's own name so that policy expressions resolve as they
    # do on the table; functions they call (auth.uid()) see this transaction's claims.
    # Policy expressions come from the catalog (pg_get_expr), written by whoever owns the table.
    return (
        "select k._fb_i::int from "  # noqa: S608
        "jsonb_array_elements($1::jsonb) with ordinality as k(_fb_row, _fb_i) "
        f"cross join lateral jsonb_populate_record(null::{info.qualified}, k._fb_row) "
        f"as {quote_ident(info.name)} where {condition}"
    )


def _group_key(caller: Caller) -> tuple[str, bytes]:
    return caller.role, orjson.dumps(dict(caller.claims), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class _RoleView:
    """What one role may read of a table: columns, RLS bypass, its SELECT policies as one query."""

    columns: frozenset[str]
    bypass: bool
    policy_sql: str | None  # None under RLS: no permissive policy, no row visible


@dataclass
class _Pending:
    """A change one group may receive, and the bindings (of channels in that group) it matched."""

    change: Change
    bindings: list[Binding]


class Hub:
    """Subscriptions of this process and the fan-out of changes, broadcasts and presence."""

    def __init__(self, database: Database, publish: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.database = database
        self.node = uuid.uuid4().hex
        self.clients: set[Client] = set()
        self.topics: dict[str, set[Channel]] = {}
        self.tables: dict[int, list[Binding]] = {}
        # Presence of every replica: topic -> key -> presence ref -> meta.
        self.presence: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self._publish = publish
        self._background: set[asyncio.Task[None]] = set()
        self._binding_ids = itertools.count(1)
        self._presence_refs = itertools.count(1)

    def set_publisher(self, publish: Callable[[dict[str, Any]], Any]) -> None:
        self._publish = publish

    # ----------------------------------------------------------------------------------------
    # Channels

    def next_binding_id(self) -> int:
        return next(self._binding_ids)

    def add_channel(self, channel: Channel) -> None:
        self.topics.setdefault(channel.topic, set()).add(channel)
        for binding in channel.bindings:
            self.tables.setdefault(binding.table_oid, []).append(binding)

    async def remove_channel(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
        members = self.topics.get(channel.topic)
        if members is not None:
            members.discard(channel)
            if not members:
                del self.topics[channel.topic]
        for binding in channel.bindings:
            table = self.tables.get(binding.table_oid)
            if table is not None:
                with contextlib.suppress(ValueError):
                    table.remove(binding)
                if not table:
                    del self.tables[binding.table_oid]
        channel.bindings = []
        await self.untrack(channel)

    async def enabled_tables(self) -> list[tuple[int, str, str]]:
        async with self.database.pool.acquire() as connection:
            rows = await connection.fetch(
                "select table_oid, schema_name, table_name from realtime.enabled_tables()"
            )
        return [(int(row["table_oid"]), row["schema_name"], row["table_name"]) for row in rows]

    async def table_info(self, oid: int) -> TableInfo | None:
        async with self.database.pool.acquire() as connection:
            row = await connection.fetchrow(TABLE_INFO_SQL, oid)
        if row is None:
            return None
        return TableInfo(
            oid=oid,
            schema=row["schema"],
            name=row["name"],
            rls=row["rls"],
            full_identity=row["full_identity"],
            primary_key=tuple(row["pk"]),
            primary_key_types=tuple(row["pk_types"]),
            columns=tuple(zip(row["cols"], row["types"], strict=True)),
        )

    async def selectable_columns(self, caller: Caller, oid: int) -> set[str]:
        async with self.database.transaction(_context(caller), read_only=True) as tx:
            row = await tx.fetchrow(ROLE_VIEW_SQL, oid)
        return set(row["cols"]) if row is not None else set()

    # ----------------------------------------------------------------------------------------
    # postgres_changes

    async def deliver(self, changes: list[Change]) -> None:
        """Fans one batch of changes out to every subscriber allowed to see them."""
        by_table: dict[int, list[Change]] = {}
        for change in changes:
            if change.table_oid in self.tables:
                by_table.setdefault(change.table_oid, []).append(change)
        if not by_table:
            return
        work: list[tuple[TableInfo, Caller, list[_Pending]]] = []
        for oid, table_changes in by_table.items():
            info = await self.table_info(oid)
            if info is None or not info.primary_key:
                continue
            groups: dict[tuple[str, bytes], tuple[Caller, list[Binding]]] = {}
            for binding in self.tables.get(oid, ()):
                caller = binding.channel.caller
                groups.setdefault(_group_key(caller), (caller, []))[1].append(binding)
            # A filter is evaluated once per change, whichever group and binding holds it.
            verdicts: dict[tuple[str, int], bool] = {}
            for caller, bindings in groups.values():
                pending = []
                for change in table_changes:
                    record = change.old_record if change.type == "DELETE" else change.record
                    matched = []
                    for binding in bindings:
                        if binding.event not in ("*", change.type):
                            continue
                        key = (binding.filter_source, change.id)
                        verdict = verdicts.get(key)
                        if verdict is None:
                            verdict = binding.filter.matches(record or {})
                            verdicts[key] = verdict
                        if verdict:
                            matched.append(binding)
                    if matched:
                        pending.append(_Pending(change, matched))
                if pending:
                    work.append((info, caller, pending))
        semaphore = asyncio.Semaphore(CHECK_CONCURRENCY)
        # What a role may select and which policies apply to it depend on the role alone, not on
        # its claims: read once per (table, role) in this batch, not once per group.
        role_views: dict[tuple[int, str], _RoleView] = {}

        async def check(item: tuple[TableInfo, Caller, list[_Pending]]) -> list[tuple[int, Binding, Any]]:
            async with semaphore:
                return await self._authorize(*item, role_views)

        results = await asyncio.gather(*(check(item) for item in work))
        # Sent in log order, whatever order the groups' checks finished in.
        outgoing = sorted(itertools.chain.from_iterable(results), key=lambda entry: entry[0])
        for _change_id, (channel, bindings), data in _merge_per_channel(outgoing):
            ids = [binding.id for binding in bindings]
            selects = [binding.select for binding in bindings]
            if all(select is not None for select in selects):
                data = select_columns(data, frozenset().union(*selects))  # type: ignore[arg-type]
            channel.client.push(phoenix.postgres_changes_message(channel.topic, ids, data))

    async def _authorize(
        self,
        info: TableInfo,
        caller: Caller,
        pending: list[_Pending],
        role_views: dict[tuple[int, str], _RoleView] | None = None,
    ) -> list[tuple[int, Binding, Any]]:
        """What this group may see of these changes; a busy or unreachable pool is retried."""
        for delay in (*AUTHORIZE_RETRIES, None):
            try:
                return await self._authorize_once(
                    info, caller, pending, {} if role_views is None else role_views
                )
            except (PoolBusy, DatabaseUnavailable):
                if delay is None:
                    log.warning(
                        "realtime: no database connection for a visibility check; changes dropped",
                        extra={"table": f"{info.schema}.{info.name}", "role": caller.role},
                    )
                    return []
                await asyncio.sleep(delay)
        return []

    async def _authorize_once(
        self,
        info: TableInfo,
        caller: Caller,
        pending: list[_Pending],
        role_views: dict[tuple[int, str], _RoleView],
    ) -> list[tuple[int, Binding, Any]]:
        """One role-switched transaction: what this group may see of these changes."""
        try:
            async with self.database.transaction(_context(caller), read_only=True) as tx:
                role_view = role_views.get((info.oid, caller.role))
                if role_view is None:
                    role_view = await self._role_view(tx, info)
                    role_views[(info.oid, caller.role)] = role_view
                columns, bypass = role_view.columns, role_view.bypass
                if not set(info.primary_key) <= columns:
                    return []  # without the key the role can see no row of this table
                if not info.rls or bypass:
                    # Without RLS, grants alone decide, and the key columns were just checked.
                    visible = {id(p) for p in pending}
                else:
                    visible = await self._rls_visible(tx, info, pending, role_view.policy_sql)
        except (PoolBusy, DatabaseUnavailable):
            raise
        except Exception:
            # Failing closed: a group whose check fails receives nothing of this batch.
            log.warning(
                "realtime: visibility check failed",
                extra={"table": f"{info.schema}.{info.name}", "role": caller.role},
                exc_info=True,
            )
            return []
        shown = [name for name, _type in info.columns if name in columns]
        out: list[tuple[int, Binding, Any]] = []
        for item in pending:
            if id(item) not in visible:
                continue
            data = change_data(info, item.change, shown)
            # A grant revoked after the join must not leave a filter reading the column.
            out.extend(
                (item.change.id, binding, data)
                for binding in item.bindings
                if binding.filter_columns <= columns
            )
        return out

    async def _role_view(self, tx: RoleSwitchedTransaction, info: TableInfo) -> _RoleView:
        """In the role's transaction: its selectable columns, RLS bypass and SELECT policies."""
        view = await tx.fetchrow(ROLE_VIEW_SQL, info.oid)
        columns = frozenset(view["cols"]) if view is not None else frozenset()
        bypass = bool(view["bypass"]) if view is not None else False
        policy_sql = None
        if info.rls and not bypass:
            policy_rows = await tx.fetch(POLICIES_SQL, info.oid)
            policy_sql = policy_rows_sql(info, [(r["qual"], r["permissive"]) for r in policy_rows])
        return _RoleView(columns, bypass, policy_sql)

    async def _rls_visible(
        self, tx: RoleSwitchedTransaction, info: TableInfo, pending: list[_Pending], sql: str | None
    ) -> set[int]:
        """Under RLS: the record must pass the role's SELECT policies as it was written, and an
        inserted or updated row must still be visible now (PostgreSQL applying RLS itself).

        Checking the logged record keeps values from before a visibility change (a row moved
        from one owner to another) from reaching the new reader; checking the live row keeps
        the policy evaluation honest. A row deleted before the check is not sent as INSERT or
        UPDATE; its DELETE still is, with the primary key only.
        """
        if sql is None:
            return set()
        records = [
            (p.change.old_record if p.change.type == "DELETE" else p.change.record) or {} for p in pending
        ]
        rows = await tx.fetch(sql, orjson.dumps(records).decode())
        passed = [pending[row[0] - 1] for row in rows]
        live = [p for p in passed if p.change.type != "DELETE"]
        visible = {id(p) for p in passed if p.change.type == "DELETE"}
        if live:
            keys = [_primary_key(info, p.change.record or {}) for p in live]
            rows = await tx.fetch(visible_rows_sql(info), orjson.dumps(keys).decode())
            visible.update(id(live[row[0] - 1]) for row in rows)
        return visible

    # ----------------------------------------------------------------------------------------
    # Broadcast and presence (through NOTIFY, so every replica sees them)

    async def broadcast(
        self,
        topic: str,
        event: str,
        payload: Any,
        *,
        origin: str | None = None,
        binary: bool = False,
        user: bool = False,
    ) -> None:
        """Relays a broadcast to every replica; raises ValueError when it is too large for NOTIFY.

        `user` marks a broadcast that arrived as binary kind 3: vsn 2.0.0 receivers get it back
        as kind 4, as from Supabase Realtime; binary payloads always travel that way.
        """
        body = base64.b64encode(payload).decode() if binary else payload
        message = {"k": "b", "t": topic, "e": event, "p": body, "o": origin, "bin": binary, "u": user}
        await self._relay(message)

    async def track(self, channel: Channel, meta: Mapping[str, Any]) -> None:
        ref = f"{self.node[:8]}-{next(self._presence_refs)}"
        previous = self._own_presence(channel)
        channel.presence_refs = {ref}
        await self._relay(
            {
                "k": "p",
                "t": channel.topic,
                "key": channel.presence_key,
                "join": {ref: {**meta, "phx_ref": ref}},
                "leave": previous,
            }
        )

    async def untrack(self, channel: Channel) -> None:
        previous = self._own_presence(channel)
        channel.presence_refs = set()
        if previous:
            with contextlib.suppress(Exception):
                await self._relay(
                    {"k": "p", "t": channel.topic, "key": channel.presence_key, "join": {}, "leave": previous}
                )

    def _own_presence(self, channel: Channel) -> dict[str, dict[str, Any]]:
        metas = self.presence.get(channel.topic, {}).get(channel.presence_key, {})
        return {ref: metas[ref] for ref in channel.presence_refs if ref in metas}

    def presence_state(self, topic: str) -> dict[str, list[dict[str, Any]]]:
        return {key: list(metas.values()) for key, metas in self.presence.get(topic, {}).items() if metas}

    async def _relay(self, message: dict[str, Any]) -> None:
        if len(orjson.dumps(message)) > MAX_RELAYED_BYTES:
            raise ValueError(f"message too large to relay (limit about {MAX_RELAYED_BYTES} bytes)")
        if self._publish is None:
            self.on_relayed(message)
            return
        await self._publish(message)

    def on_relayed(self, message: dict[str, Any]) -> None:
        """A broadcast or presence message from any replica (this one included)."""
        kind, topic = message.get("k"), message.get("t")
        if not isinstance(topic, str):
            return
        if kind == "b":
            self._deliver_broadcast(topic, message)
        elif kind == "p":
            self._apply_presence(topic, message)
        elif kind == "ps" and message.get("o") != self.node:
            self._answer_presence_sync(topic)

    async def request_presence_sync(self, topic: str) -> None:
        """Asks the other replicas to repeat who they track on `topic`.

        Sent when a topic gets its first member in this process, which may have started after
        the others tracked; their answers arrive as presence diffs of refs it did not know.
        """
        with contextlib.suppress(Exception):
            await self._relay({"k": "ps", "t": topic, "o": self.node})

    def _answer_presence_sync(self, topic: str) -> None:
        for channel in list(self.topics.get(topic, ())):
            own = self._own_presence(channel)
            if own and self._publish is not None:
                message = {"k": "p", "t": topic, "key": channel.presence_key, "join": own, "leave": {}}
                task = asyncio.get_running_loop().create_task(self._relay(message))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def _deliver_broadcast(self, topic: str, message: Mapping[str, Any]) -> None:
        event, payload, origin = message.get("e"), message.get("p"), message.get("o")
        if not isinstance(event, str):
            return
        outgoing: phoenix.Message
        if message.get("bin"):
            data = base64.b64decode(payload) if isinstance(payload, str) else b""
            outgoing = phoenix.user_broadcast_message(topic, phoenix.UserBroadcast(event, data))
        elif message.get("u"):
            outgoing = phoenix.user_broadcast_message(topic, phoenix.UserBroadcast(event, payload))
        else:
            outgoing = phoenix.broadcast_message(topic, event, payload)
        for channel in list(self.topics.get(topic, ())):
            if origin == channel.client.id and not channel.broadcast_self:
                continue
            channel.client.push(outgoing)

    def _apply_presence(self, topic: str, message: Mapping[str, Any]) -> None:
        key = message.get("key")
        joins, leaves = message.get("join") or {}, message.get("leave") or {}
        if not isinstance(key, str) or not isinstance(joins, dict) or not isinstance(leaves, dict):
            return
        metas = self.presence.setdefault(topic, {}).setdefault(key, {})
        # Only news becomes a diff: a replica answering a sync repeats refs others already know.
        leaves = {ref: meta for ref, meta in leaves.items() if metas.pop(ref, None) is not None}
        joins = {ref: meta for ref, meta in joins.items() if ref not in metas}
        metas.update(joins)
        if not metas:
            self.presence[topic].pop(key, None)
            if not self.presence[topic]:
                del self.presence[topic]
        if not joins and not leaves:
            return
        diff = phoenix.presence_diff(
            topic,
            {key: list(joins.values())} if joins else {},
            {key: list(leaves.values())} if leaves else {},
        )
        for channel in list(self.topics.get(topic, ())):
            channel.client.push(diff)


def _context(caller: Caller) -> RequestContext:
    return RequestContext(caller.role, dict(caller.claims), method="GET", path="/realtime/v1/websocket")


def _primary_key(info: TableInfo, record: Mapping[str, Any]) -> dict[str, Any]:
    return {column: record.get(column) for column in info.primary_key}


def change_data(info: TableInfo, change: Change, shown: Sequence[str]) -> dict[str, Any]:
    """The `data` of a postgres_changes push, trimmed to what the subscriber may see.

    `old_record` holds only the primary key, unless the table has REPLICA IDENTITY FULL and no
    RLS: under RLS the old values of a row may be ones the subscriber was never allowed to see.
    """
    types = info.column_types
    columns = [(name, types[name]) for name in shown]
    record = None
    if change.record is not None:
        record = {name: change.record.get(name) for name in shown}
    old_record = None
    if change.old_record is not None:
        if info.full_identity and not info.rls:
            old_record = {name: change.old_record.get(name) for name in shown}
        else:
            old_record = _primary_key(info, change.old_record)
    return phoenix.postgres_change_data(
        schema=info.schema,
        table=info.name,
        commit_timestamp=phoenix.format_commit_timestamp(change.commit_timestamp),
        change_type=change.type,
        columns=columns,
        record=record,
        old_record=old_record,
    )


def _merge_per_channel(
    outgoing: Iterable[tuple[int, Binding, Any]],
) -> list[tuple[int, tuple[Channel, list[Binding]], Any]]:
    """One message per (change, channel), carrying every binding of that channel it matched."""
    merged: dict[tuple[int, int], tuple[int, tuple[Channel, list[Binding]], Any]] = {}
    for change_id, binding, data in outgoing:
        key = (change_id, id(binding.channel))
        entry = merged.get(key)
        if entry is None:
            merged[key] = (change_id, (binding.channel, [binding]), data)
        else:
            entry[1][1].append(binding)
    return list(merged.values())


def select_columns(data: Mapping[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    """The payload trimmed to the bindings' `select` columns (the old record's key stays)."""
    trimmed = dict(data)
    trimmed["columns"] = [column for column in data["columns"] if column["name"] in keep]
    if data.get("record") is not None:
        trimmed["record"] = {k: v for k, v in data["record"].items() if k in keep}
    return trimmed
