"""Realtime's middle stage: listener -> hub -> phoenix wire.

The hub knows every joined channel of this process. For each batch of changes it groups the
subscribers of a table by (role, claims) and asks the database, in one realtime.visible_changes()
statement per chunk of groups, which change reaches which of their bindings: the event, the
filter (evaluated by PostgreSQL as /rest/v1 evaluates it), the role's column grants and row-level
security are all decided there (sql/40_realtime.sql), never here. The hub parses, groups and fans
out: columns the role cannot select are left out of the payload, and a DELETE carries only its
primary key. Broadcast and presence travel between replicas through NOTIFY.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import orjson

from fluxbase.db.errors import DatabaseUnavailable
from fluxbase.db.pool import Database
from fluxbase.realtime import messages, phoenix
from fluxbase.realtime.clients import Binding, Channel, Client
from fluxbase.realtime.filters import Filter
from fluxbase.realtime.listener import Change
from fluxbase.realtime.presence_leases import HEARTBEAT_KIND, PresenceLeases
from fluxbase.realtime.truncate import TRUNCATE, truncate_deliveries
from fluxbase.security.authenticate import Caller

log = logging.getLogger("fluxbase.realtime")

# The largest broadcast or presence message relayed between replicas, by default: larger than a
# NOTIFY payload, such messages travel through realtime.relay (relay.py). realtime.max_message_size.
MAX_RELAYED_BYTES: Final = 5 * 1024 * 1024
# How many visibility-check statements of one batch run at once (each on its own connection).
CHECK_CONCURRENCY: Final = 4
# Subscriber groups checked by one realtime.visible_changes() call: at most GROUPS_PER_CALL, so
# a statement stays bounded; more groups are spread over calls, CHECK_CONCURRENCY of them at
# once. Not smaller chunks: each call has a fixed cost, and with 2,000 groups over 2 workers,
# chunks of 250 cost PostgreSQL a third more CPU per change than chunks of 500 for no gain in
# latency (tests/perf/profile_realtime_fanout.py).
GROUPS_PER_CALL: Final = 500
# Waits before retrying a visibility check that found no free or reachable connection.
AUTHORIZE_RETRIES: Final = (0.1, 0.5, 2.0)
CHANGE_EVENTS: Final = frozenset({"*", "INSERT", "UPDATE", "DELETE", TRUNCATE})


@dataclass(frozen=True)
class TableInfo:
    """What delivery needs to know about a table, read from the catalog once per batch."""

    oid: int
    schema: str
    name: str
    rls: bool
    full_identity: bool
    primary_key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, pg_type.typname) in attnum order

    @property
    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


TABLE_INFO_SQL: Final = """
select n.nspname::text as schema, c.relname::text as name, c.relrowsecurity as rls,
       c.relreplident = 'f' as full_identity,
       array(select a.attname::text from pg_index i
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = c.oid and i.indisprimary order by a.attnum) as pk,
       array(select a.attname::text from pg_attribute a
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as cols,
       array(select t.typname::text from pg_attribute a join pg_type t on t.oid = a.atttypid
              where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as types
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.oid = $1
"""

# Every group of a chunk checked in one statement (sql/40_realtime.sql), as the server itself.
VISIBLE_CHANGES_SQL: Final = (
    "select group_index, change_index, binding_index, columns"
    " from realtime.visible_changes($1::oid::regclass, $2::jsonb, $3::jsonb, $4::jsonb)"
)
# Whether a binding may be accepted (sql/40_realtime.sql): null, or the reason it may not.
CHECK_BINDING_SQL: Final = "select realtime.check_binding($1::oid::regclass, $2, $3::jsonb, $4::text[])"

_T = TypeVar("_T")


def _group_key(channel: Channel) -> tuple[str, bytes]:
    """(role, claims as sorted JSON) of the channel's caller: the subscriber group it belongs to.

    Kept on the channel for the caller it was computed for (compared by identity): a refreshed
    token replaces the caller, so its key is computed afresh, never taken from the old one.
    """
    caller = channel.caller
    cached = channel.group_key
    if cached is not None and cached[0] is caller:
        return cached[1]
    key = caller.role, orjson.dumps(dict(caller.claims), option=orjson.OPT_SORT_KEYS)
    channel.group_key = (caller, key)
    return key


@dataclass
class _Group:
    """Subscribers of one table sharing (role, claims), and their distinct (filter, event) pairs."""

    caller: Caller
    # The claims as JSON (the group key's): spliced into the statement's groups as they are.
    claims_json: bytes
    # One entry per distinct (filter, event) of the group: the bindings that share it.
    slots: dict[tuple[str, str], list[Binding]] = field(default_factory=dict)


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
        self.max_relayed_bytes = MAX_RELAYED_BYTES
        self.leases: PresenceLeases | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._presence_refs = itertools.count(1)

    def set_publisher(self, publish: Callable[[dict[str, Any]], Any]) -> None:
        self._publish = publish

    def start_leases(self, lease: float) -> None:
        """Heartbeats this replica and drops the presence of replicas silent for `lease` seconds."""
        self.leases = PresenceLeases(self.node, lease, self._relay, self._drop_member)
        self.leases.start()

    async def stop_leases(self) -> None:
        if self.leases is not None:
            await self.leases.stop()

    def _drop_member(self, topic: str, key: str, ref: str) -> None:
        meta = self.presence.get(topic, {}).get(key, {}).get(ref)
        if meta is not None:
            self._apply_presence(topic, {"key": key, "join": {}, "leave": {ref: meta}})

    # ----------------------------------------------------------------------------------------
    # Channels

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
        # Through the transaction, not a bare acquire: a busy pool then fails within
        # acquire_timeout, and a lost connection as a domain error the join can answer.
        async with self.database.server_transaction(read_only=True) as tx:
            rows = await tx.fetch("select table_oid, schema_name, table_name from realtime.enabled_tables()")
        return [(int(row["table_oid"]), row["schema_name"], row["table_name"]) for row in rows]

    async def table_info(self, oid: int) -> TableInfo | None:
        async with self.database.server_transaction(read_only=True) as tx:
            row = await tx.fetchrow(TABLE_INFO_SQL, oid)
        if row is None:
            return None
        return TableInfo(
            oid=oid,
            schema=row["schema"],
            name=row["name"],
            rls=row["rls"],
            full_identity=row["full_identity"],
            primary_key=tuple(row["pk"]),
            columns=tuple(zip(row["cols"], row["types"], strict=True)),
        )

    async def check_binding(
        self, caller: Caller, oid: int, filter_: Filter, select: frozenset[str] | None
    ) -> str | None:
        """None when the caller may bind this filter and `select` on the table, else the reason.

        PostgreSQL decides (realtime.check_binding): the columns exist and the role may select
        them, each value converts to its column's type, each operator exists for it.
        """
        async with self.database.server_transaction(read_only=True) as tx:
            reason: str | None = await tx.fetchval(
                CHECK_BINDING_SQL,
                oid,
                caller.role,
                orjson.dumps(filter_.to_json()).decode(),
                sorted(select) if select is not None else None,
            )
        return reason

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
        work: list[tuple[TableInfo, list[Change], list[_Group]]] = []
        truncates: list[Awaitable[list[tuple[int, Binding, Payload]]]] = []
        for oid, table_changes in by_table.items():
            info = await self.table_info(oid)
            if info is None or not info.primary_key:
                continue
            if any(change.type == TRUNCATE for change in table_changes):
                # No row to check: truncate.py decides, by the roles' grants alone.
                truncated = [change for change in table_changes if change.type == TRUNCATE]
                table_changes = [change for change in table_changes if change.type != TRUNCATE]
                truncates.append(
                    _as_payloads(
                        truncate_deliveries(
                            self.database, info.schema, info.name, oid, truncated, self.tables.get(oid, ())
                        )
                    )
                )
            events = {binding.event for binding in self.tables.get(oid, ())}
            if "*" not in events:
                table_changes = [change for change in table_changes if change.type in events]
            groups: dict[tuple[str, bytes], _Group] = {}
            for binding in self.tables.get(oid, ()):
                key = _group_key(binding.channel)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(binding.channel.caller, key[1])
                group.slots.setdefault((binding.filter.source, binding.event), []).append(binding)
            if table_changes and groups:
                work.append((info, table_changes, list(groups.values())))
        semaphore = asyncio.Semaphore(CHECK_CONCURRENCY)
        results = await asyncio.gather(
            *(self._authorize_table(info, rows, groups, semaphore) for info, rows, groups in work),
            *truncates,
        )
        # Sent in log order, whatever order the checks finished in.
        outgoing = sorted(itertools.chain.from_iterable(results), key=lambda entry: entry[0])
        # Identical subscriptions carry identical binding ids (messages.binding_id), so most
        # sockets receive the same frame for a change: built (and framed) once per batch.
        frames: dict[tuple[str, tuple[int, ...], Payload, str], phoenix.EncodedText] = {}
        # Each socket's frames of the batch, in log order, handed over together: one write.
        per_client: dict[Client, list[phoenix.OutboundFrame]] = {}
        for _change_id, (channel, bindings), payload in _merge_per_channel(outgoing):
            ids = tuple(dict.fromkeys(binding.id for binding in bindings))
            selects = [binding.select for binding in bindings]
            if all(select is not None for select in selects):
                payload = payload.trimmed(frozenset().union(*selects))  # type: ignore[arg-type]
            client = channel.client
            shape = (channel.topic, ids, payload, client.vsn)
            frame = frames.get(shape)
            if frame is None:
                frame = frames[shape] = messages.postgres_changes_frame(
                    channel.topic, ids, payload.encoded(), client.vsn
                )
            queued = per_client.get(client)
            if queued is None:
                per_client[client] = [frame]
            else:
                queued.append(frame)
        for client, queued in per_client.items():
            client.push_frames(queued)

    async def _authorize_table(
        self,
        info: TableInfo,
        changes: list[Change],
        groups: list[_Group],
        semaphore: asyncio.Semaphore,
    ) -> list[tuple[int, Binding, Payload]]:
        """What every group may see of these changes to one table, in a bounded number of statements.

        The groups are sent, in chunks of at most GROUPS_PER_CALL spread over CHECK_CONCURRENCY
        connections, to realtime.visible_changes(), which decides events, filters, column grants
        and row-level security for every group of a chunk inside one statement. Never one query
        per group or subscriber.
        """
        size = GROUPS_PER_CALL
        chunks = [groups[i : i + size] for i in range(0, len(groups), size)]

        async def check(chunk: list[_Group]) -> list[tuple[int, Binding, Payload]]:
            async with semaphore:
                roles = ",".join(sorted({group.caller.role for group in chunk}))
                entries = await self._retrying(
                    info, roles, lambda: self._visible_changes(info, changes, chunk, payloads)
                )
                return entries or []

        # A payload depends on the change and the columns shown only: built once per batch.
        payloads: dict[tuple[tuple[str, ...], int], Payload] = {}
        return list(itertools.chain.from_iterable(await asyncio.gather(*(check(c) for c in chunks))))

    async def _retrying(self, info: TableInfo, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T | None:
        """Runs one check; a busy or unreachable pool is retried, any other failure gives None.

        None means failing closed: the groups concerned receive nothing of this batch.
        """
        for delay in (*AUTHORIZE_RETRIES, None):
            try:
                return await attempt()
            except DatabaseUnavailable:
                if delay is None:
                    log.warning(
                        "realtime: no database connection for a visibility check; changes dropped",
                        extra={"table": f"{info.schema}.{info.name}", "role": what},
                    )
                    return None
                await asyncio.sleep(delay)
            except Exception:
                log.warning(
                    "realtime: visibility check failed",
                    extra={"table": f"{info.schema}.{info.name}", "role": what},
                    exc_info=True,
                )
                return None
        return None

    async def _visible_changes(
        self,
        info: TableInfo,
        changes: Sequence[Change],
        chunk: Sequence[_Group],
        payloads: dict[tuple[tuple[str, ...], int], Payload],
    ) -> list[tuple[int, Binding, Payload]]:
        """One statement for a chunk of groups: (change id, binding, payload) for every delivery.

        Each distinct filter is sent once; each group lists its distinct (filter, event) pairs,
        and the database answers which change reaches which pair, with the columns the group's
        role may select. A group whose check fails in the database receives nothing, without
        taking the other groups down.
        """
        filter_index: dict[str, int] = {}
        filters: list[dict[str, Any]] = []
        groups: list[bytes] = []
        slots: list[list[list[Binding]]] = []
        for group in chunk:
            pairs = []
            for (source, event), bindings in group.slots.items():
                position = filter_index.get(source)
                if position is None:
                    filters.append(bindings[0].filter.to_json())
                    position = filter_index[source] = len(filters)
                pairs.append({"f": position, "e": event})
            # {"role", "claims", "b"}, the claims' JSON reused from the group key.
            groups.append(
                b'{"role":%b,"claims":%b,"b":%b}'
                % (orjson.dumps(group.caller.role), group.claims_json, orjson.dumps(pairs))
            )
            slots.append(list(group.slots.values()))
        rows_json = [
            {"t": change.type, "r": (change.old_record if change.type == "DELETE" else change.record) or {}}
            for change in changes
        ]
        async with self.database.server_transaction(read_only=True) as tx:
            rows = await tx.fetch(
                VISIBLE_CHANGES_SQL,
                info.oid,
                orjson.dumps(rows_json).decode(),
                orjson.dumps(filters).decode(),
                (b"[" + b",".join(groups) + b"]").decode(),
            )
        # (group, null, null, columns) heads a group's answer; columns null: its check failed.
        shown: dict[int, tuple[str, ...]] = {}
        for group_index, change_index, _binding_index, columns in rows:
            if change_index is not None:
                continue
            if columns is None:
                log.warning(
                    "realtime: visibility check failed for a group; it receives nothing of this batch",
                    extra={"table": f"{info.schema}.{info.name}", "role": chunk[group_index - 1].caller.role},
                )
            else:
                shown[group_index] = tuple(columns)
        out: list[tuple[int, Binding, Payload]] = []
        for group_index, change_index, binding_index, _columns in rows:
            if change_index is None or group_index not in shown:
                continue
            change = changes[change_index - 1]
            columns_shown = shown[group_index]
            key = (columns_shown, change.id)
            data = payloads.get(key)
            if data is None:
                data = payloads[key] = Payload(change_data(info, change, columns_shown))
            out.extend((change.id, binding, data) for binding in slots[group_index - 1][binding_index - 1])
        return out

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
                "n": self.node,
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
                    {
                        "k": "p",
                        "t": channel.topic,
                        "n": self.node,
                        "key": channel.presence_key,
                        "join": {},
                        "leave": previous,
                    }
                )

    def _own_presence(self, channel: Channel) -> dict[str, dict[str, Any]]:
        metas = self.presence.get(channel.topic, {}).get(channel.presence_key, {})
        return {ref: metas[ref] for ref in channel.presence_refs if ref in metas}

    def presence_state(self, topic: str) -> dict[str, list[dict[str, Any]]]:
        return {key: list(metas.values()) for key, metas in self.presence.get(topic, {}).items() if metas}

    async def _relay(self, message: dict[str, Any]) -> None:
        size = len(orjson.dumps(message))
        if size > self.max_relayed_bytes:
            raise ValueError(
                f"message too large: {size} bytes, more than realtime.max_message_size"
                f" ({self.max_relayed_bytes} bytes)"
            )
        if self._publish is None:
            self.on_relayed(message)
            return
        await self._publish(message)

    def on_relayed(self, message: dict[str, Any]) -> None:
        """A broadcast or presence message from any replica (this one included)."""
        kind, topic = message.get("k"), message.get("t")
        if not isinstance(topic, str):
            return
        if self.leases is not None and "n" in message:
            self.leases.heard(message["n"])
        if kind == HEARTBEAT_KIND:
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
                message = {
                    "k": "p",
                    "t": topic,
                    "n": self.node,
                    "key": channel.presence_key,
                    "join": own,
                    "leave": {},
                }
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
            outgoing = messages.user_broadcast_message(topic, phoenix.UserBroadcast(event, data))
        elif message.get("u"):
            outgoing = messages.user_broadcast_message(topic, phoenix.UserBroadcast(event, payload))
        else:
            outgoing = messages.broadcast_message(topic, event, payload)
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
        if self.leases is not None:
            self.leases.joined(message.get("n"), topic, key, list(joins))
            self.leases.left(list(leaves))
        if not metas:
            self.presence[topic].pop(key, None)
            if not self.presence[topic]:
                del self.presence[topic]
        if not joins and not leaves:
            return
        diff = messages.presence_diff(
            topic,
            {key: list(joins.values())} if joins else {},
            {key: list(leaves.values())} if leaves else {},
        )
        for channel in list(self.topics.get(topic, ())):
            channel.client.push(diff)


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
    return messages.postgres_change_data(
        schema=info.schema,
        table=info.name,
        commit_timestamp=messages.format_commit_timestamp(change.commit_timestamp),
        change_type=change.type,
        columns=columns,
        record=record,
        old_record=old_record,
    )


class Payload:
    """The `data` of one change as one group may see it, serialised once for every receiver.

    Every subscriber's frame splices these same bytes (messages.postgres_changes_frame); a
    binding's `select` trims to another Payload, itself built once per column set.
    """

    __slots__ = ("_encoded", "_trimmed", "data")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._encoded: bytes | None = None
        self._trimmed: dict[frozenset[str], Payload] | None = None

    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = phoenix.json_bytes(self.data)
        return self._encoded

    def trimmed(self, keep: frozenset[str]) -> Payload:
        if self._trimmed is None:
            self._trimmed = {}
        payload = self._trimmed.get(keep)
        if payload is None:
            payload = self._trimmed[keep] = Payload(select_columns(self.data, keep))
        return payload


async def _as_payloads(
    deliveries: Awaitable[list[tuple[int, Any, dict[str, Any]]]],
) -> list[tuple[int, Binding, Payload]]:
    """TRUNCATE deliveries with their data serialised once per change, like row changes."""
    shared: dict[int, Payload] = {}
    return [
        (change_id, binding, shared.setdefault(change_id, Payload(data)))
        for change_id, binding, data in await deliveries
    ]


def _merge_per_channel(
    outgoing: Iterable[tuple[int, Binding, Payload]],
) -> list[tuple[int, tuple[Channel, list[Binding]], Payload]]:
    """One message per (change, channel), carrying every binding of that channel it matched."""
    merged: dict[tuple[int, int], tuple[int, tuple[Channel, list[Binding]], Payload]] = {}
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
