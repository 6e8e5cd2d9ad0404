"""TRUNCATE events of postgres_changes, beside the hub's row-by-row path (hub.py).

A statement-level trigger logs one TRUNCATE row per truncated table (sql/40_realtime.sql). Like
Supabase Realtime's TRUNCATE event it carries the schema, table, commit time and type, and no
row: realtime-js hands it to the bindings of event '*' or 'TRUNCATE' with `new` and `old` empty.
Filters do not apply (every row is gone, the ones a filter selects included) and row-level
security has nothing to decide; the column grants do: a role that may not select the table's
primary key hears of nothing on that table, truncates included (realtime.truncate_audience).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fluxbase.db.pool import Database
from fluxbase.realtime import messages
from fluxbase.realtime.listener import Change

TRUNCATE: Final = "TRUNCATE"
TRUNCATE_EVENTS: Final = frozenset({"*", TRUNCATE})
AUDIENCE_SQL: Final = "select realtime.truncate_audience($1::oid::regclass, $2::text[])"


def truncate_data(schema: str, table: str, change: Change) -> dict[str, Any]:
    """The `data` of a TRUNCATE push: no record, no old record, no columns."""
    return messages.postgres_change_data(
        schema=schema,
        table=table,
        commit_timestamp=messages.format_commit_timestamp(change.commit_timestamp),
        change_type="TRUNCATE",
        columns=(),
    )


async def truncate_deliveries(
    database: Database,
    schema: str,
    table: str,
    table_oid: int,
    changes: Sequence[Change],
    bindings: Sequence[Any],
) -> list[tuple[int, Any, Any]]:
    """(change id, binding, data) for every binding of `bindings` that hears of these truncates.

    One statement per table and batch, whatever the number of subscribers: the roles are sent
    together and PostgreSQL answers which of them may select the key columns.
    """
    listening = [binding for binding in bindings if binding.event in TRUNCATE_EVENTS]
    if not changes or not listening:
        return []
    roles = sorted({binding.channel.caller.role for binding in listening})
    async with database.server_transaction(read_only=True) as tx:
        rows = await tx.fetch(AUDIENCE_SQL, table_oid, roles)
    allowed = {row[0] for row in rows}
    out: list[tuple[int, Any, Any]] = []
    for change in changes:
        data = truncate_data(schema, table, change)
        out.extend(
            (change.id, binding, data) for binding in listening if binding.channel.caller.role in allowed
        )
    return out
