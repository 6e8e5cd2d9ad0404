"""The messages of the Phoenix channels protocol that the server sends (replies, system messages,
postgres_changes, broadcast, presence, close), built as phoenix.Message values or, for the
postgres_changes fan-out, as frames around a payload encoded once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fluxbase.realtime.phoenix import (
    EVENT_BROADCAST,
    EVENT_CLOSE,
    EVENT_ERROR,
    EVENT_POSTGRES_CHANGES,
    EVENT_PRESENCE_DIFF,
    EVENT_PRESENCE_STATE,
    EVENT_REPLY,
    EVENT_SYSTEM,
    TOPIC_PREFIX,
    VSN_2,
    ChangeType,
    EncodedText,
    JsonObject,
    Message,
    UserBroadcast,
    json_bytes,
    json_dumps,
    require_vsn,
)


def channel_name(topic: str) -> str:
    """The channel name Realtime reports in `system` messages: the topic without `realtime:`."""
    return topic.removeprefix(TOPIC_PREFIX)


def reply(request: Message, status: Literal["ok", "error"], response: JsonObject) -> Message:
    """phx_reply to `request`, echoing its join_ref, ref and topic."""
    return Message(
        request.join_ref,
        request.ref,
        request.topic,
        EVENT_REPLY,
        {"status": status, "response": response},
    )


def reply_ok(request: Message, response: JsonObject | None = None) -> Message:
    return reply(request, "ok", {} if response is None else response)


def reply_error(request: Message, reason: str) -> Message:
    """Error reply; clients read `response.reason` (e.g. "Unauthorized: ...")."""
    return reply(request, "error", {"reason": reason})


def heartbeat_reply(request: Message) -> Message:
    """The answer to `[null, ref, "phoenix", "heartbeat", {}]`."""
    return reply_ok(request, {})


def unmatched_topic_reply(request: Message) -> Message:
    """What Phoenix answers to a message for a topic the socket has not joined."""
    return reply_error(request, "unmatched topic")


def binding_id(
    event: str,
    schema: str,
    table: str | None,
    filter_text: str,
    select: Sequence[str] | None,
    attempt: int = 0,
) -> int:
    """A postgres_changes binding's id: an integer hash of its parameters, as Supabase Realtime
    gives (`:erlang.phash2` of the params), so identical subscriptions carry identical ids and
    the frames announcing a change to them are identical bytes, built once for all sockets.

    Clients only match `ids` against the ids of their own channel; a channel whose distinct
    bindings would share an id asks again with the next `attempt` for the later one.
    """
    canonical = json_dumps(
        [event, schema, table, filter_text, list(select) if select is not None else None, attempt]
    )
    digest = hashlib.blake2b(canonical.encode("utf-8"), digest_size=4).digest()
    # 31 bits: a positive number in every client's integer type.
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def postgres_changes_binding(params: Mapping[str, Any], binding_id: int) -> JsonObject:
    """One entry of the join reply: the client's binding exactly as sent, plus the server `id`.

    realtime-js compares event, schema, table and filter pairwise with what it sent, so the
    hub must pass the client's own values (not normalised ones) in the client's order.
    """
    return {**params, "id": binding_id}


def join_reply_ok(request: Message, postgres_changes: Sequence[Mapping[str, Any]] = ()) -> Message:
    """Successful phx_join reply: `{postgres_changes: [{..., id}]}` (empty without bindings)."""
    return reply_ok(request, {"postgres_changes": [dict(binding) for binding in postgres_changes]})


def system_message(
    topic: str,
    join_ref: str | None,
    *,
    extension: str,
    status: Literal["ok", "error"],
    message: str,
) -> Message:
    """A `system` push. The Python client requires all four keys, `channel` included."""
    return Message(
        join_ref,
        None,
        topic,
        EVENT_SYSTEM,
        {
            "channel": channel_name(topic),
            "extension": extension,
            "message": message,
            "status": status,
        },
    )


def postgres_changes_subscribed(topic: str, join_ref: str | None) -> Message:
    return system_message(
        topic,
        join_ref,
        extension="postgres_changes",
        status="ok",
        message="Subscribed to PostgreSQL",
    )


def postgres_changes_error(topic: str, join_ref: str | None, message: str) -> Message:
    return system_message(topic, join_ref, extension="postgres_changes", status="error", message=message)


def system_error(topic: str, join_ref: str | None, message: str) -> Message:
    """Channel-level error (token expired, rate limited); Realtime follows it with phx_close."""
    return system_message(topic, join_ref, extension="system", status="error", message=message)


def format_commit_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and `Z`, as Realtime's apply_rls writes it."""
    if moment.tzinfo is None:
        raise ValueError("commit timestamp must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def postgres_change_data(
    *,
    schema: str,
    table: str,
    commit_timestamp: str,
    change_type: ChangeType,
    columns: Sequence[tuple[str, str]],
    record: Mapping[str, Any] | None = None,
    old_record: Mapping[str, Any] | None = None,
    errors: Sequence[str] | None = None,
) -> JsonObject:
    """The `data` of a postgres_changes push.

    `columns` are (name, pg_type.typname) pairs; realtime-js converts record values by
    typname (int4, bool, jsonb, _text, ...). Keys follow Realtime's structs: INSERT has
    `record`, DELETE `old_record`, UPDATE both; `errors` is null or a list of strings.
    """
    data: JsonObject = {
        "schema": schema,
        "table": table,
        "commit_timestamp": commit_timestamp,
        "type": change_type,
        "columns": [{"name": name, "type": type_name} for name, type_name in columns],
        "errors": list(errors) if errors else None,
    }
    if change_type in ("INSERT", "UPDATE"):
        if record is None:
            raise ValueError(f"{change_type} needs a record")
        data["record"] = dict(record)
    if change_type in ("UPDATE", "DELETE"):
        if old_record is None:
            raise ValueError(f"{change_type} needs an old_record")
        data["old_record"] = dict(old_record)
    return data


def postgres_changes_message(topic: str, ids: Sequence[int], data: JsonObject) -> Message:
    """`postgres_changes {ids, data}`; `ids` are the matching binding ids from the join reply."""
    return Message(None, None, topic, EVENT_POSTGRES_CHANGES, {"ids": list(ids), "data": data})


@functools.lru_cache(maxsize=4096)
def _changes_frame_parts(topic: str, vsn: str) -> tuple[bytes, bytes, bytes]:
    name = json_bytes(topic)
    if vsn == VSN_2:
        return b"[null,null," + name + b',"postgres_changes",{"ids":', b',"data":', b"}]"
    return (
        b'{"topic":' + name + b',"event":"postgres_changes","payload":{"ids":',
        b',"data":',
        b'},"ref":null,"join_ref":null}',
    )


def postgres_changes_frame(topic: str, ids: Sequence[int], data: bytes, vsn: str) -> EncodedText:
    """The frame of `postgres_changes_message(topic, ids, data)` around `data` already encoded
    (json_bytes): a change's payload is serialised once, however many subscribers receive it.
    """
    require_vsn(vsn)
    head, middle, tail = _changes_frame_parts(topic, vsn)
    return EncodedText(b"".join((head, json_bytes(list(ids)), middle, data, tail)))


def broadcast_message(topic: str, event: str, payload: Any, meta: Mapping[str, Any] | None = None) -> Message:
    """A broadcast in its JSON form; fan-out messages carry neither join_ref nor ref."""
    body: JsonObject = {"type": EVENT_BROADCAST, "event": event, "payload": payload}
    if meta:
        body["meta"] = dict(meta)
    return Message(None, None, topic, EVENT_BROADCAST, body)


def user_broadcast_message(topic: str, broadcast: UserBroadcast) -> Message:
    """A broadcast that arrived as binary kind 3; `encode` picks kind 4 or JSON per vsn."""
    return Message(None, None, topic, EVENT_BROADCAST, broadcast)


def _presence_entries(
    entries: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {key: {"metas": [dict(meta) for meta in metas]} for key, metas in entries.items()}


def presence_state(
    topic: str, join_ref: str | None, state: Mapping[str, Sequence[Mapping[str, Any]]]
) -> Message:
    """`presence_state {key: {metas: [{phx_ref, ...}]}}`, pushed to one socket after join.

    Each meta must already carry its `phx_ref` (clients rename it to `presence_ref`).
    """
    return Message(join_ref, None, topic, EVENT_PRESENCE_STATE, _presence_entries(state))


def presence_diff(
    topic: str,
    joins: Mapping[str, Sequence[Mapping[str, Any]]],
    leaves: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Message:
    """`presence_diff {joins, leaves}`, fanned out to every member (no join_ref)."""
    return Message(
        None,
        None,
        topic,
        EVENT_PRESENCE_DIFF,
        {"joins": _presence_entries(joins), "leaves": _presence_entries(leaves)},
    )


def phx_close(topic: str, join_ref: str | None) -> Message:
    """Channel closed by the server (after leave or shutdown); ref repeats join_ref."""
    return Message(join_ref, join_ref, topic, EVENT_CLOSE, {})


def phx_error(topic: str, join_ref: str | None) -> Message:
    """Channel crashed; clients rejoin with backoff. ref repeats join_ref as in Phoenix."""
    return Message(join_ref, join_ref, topic, EVENT_ERROR, {})
