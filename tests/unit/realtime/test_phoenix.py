"""Phoenix wire format: frames as realtime-js 2.x and the Python `realtime` client exchange them."""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fluxbase.realtime import messages, phoenix
from fluxbase.realtime.phoenix import (
    VSN_1,
    VSN_2,
    Message,
    ProtocolError,
    UnsupportedVsnError,
    UserBroadcast,
    decode_frame,
    encode,
)

# --- helpers that build and read binary frames the way realtime-js's serializer.ts does ---


def client_user_broadcast_push(
    join_ref: str,
    ref: str,
    topic: str,
    event: str,
    payload: bytes,
    *,
    encoding: int,
    meta: str = "",
) -> bytes:
    """Kind 3 exactly as realtime-js lays it out: 7 header bytes, then the strings, then data."""
    header = bytes([3, len(join_ref), len(ref), len(topic), len(event), len(meta), encoding])
    return header + (join_ref + ref + topic + event + meta).encode() + payload


def client_decode_user_broadcast(frame: bytes) -> dict[str, Any]:
    """realtime-js's _decodeUserBroadcast, used to check what a browser would see."""
    assert frame[0] == 4
    topic_size, event_size, meta_size, encoding = frame[1], frame[2], frame[3], frame[4]
    offset = 5
    topic = frame[offset : offset + topic_size].decode()
    offset += topic_size
    event = frame[offset : offset + event_size].decode()
    offset += event_size
    meta = frame[offset : offset + meta_size].decode()
    offset += meta_size
    body = frame[offset:]
    data: dict[str, Any] = {
        "type": "broadcast",
        "event": event,
        "payload": json.loads(body) if encoding == 1 else body,
    }
    if meta_size:
        data["meta"] = json.loads(meta)
    return {"join_ref": None, "ref": None, "topic": topic, "event": "broadcast", "payload": data}


# --- vsn negotiation ---


@pytest.mark.parametrize(
    ("query", "expected"),
    [(None, VSN_1), ("", VSN_1), ("1.0.0", VSN_1), ("2.0.0", VSN_2), ("2.0.7", VSN_2)],
)
def test_negotiate_vsn_accepts_supported_versions(query: str | None, expected: str) -> None:
    assert phoenix.negotiate_vsn(query) == expected


@pytest.mark.parametrize("query", ["3.0.0", "2.1.0", "1.1.0", "2", "v2.0.0", "2.0.0-rc1", "x" * 99])
def test_negotiate_vsn_refuses_others(query: str) -> None:
    with pytest.raises(UnsupportedVsnError, match="unsupported serializer version"):
        phoenix.negotiate_vsn(query)


def test_unsupported_vsn_is_a_protocol_error() -> None:
    assert issubclass(UnsupportedVsnError, ProtocolError)


# --- decoding text frames, vsn 2.0.0 ---


def test_decode_v2_heartbeat() -> None:
    message = decode_frame('[null,"3","phoenix","heartbeat",{}]', VSN_2)
    assert message == Message(None, "3", "phoenix", "heartbeat", {})


def test_decode_v2_join_keeps_payload() -> None:
    payload = {
        "config": {
            "broadcast": {"self": False, "ack": False},
            "presence": {"key": "", "enabled": False},
            "postgres_changes": [
                {"event": "INSERT", "schema": "public", "table": "posts", "filter": "id=eq.1"}
            ],
            "private": False,
        },
        "access_token": "jwt",
    }
    frame = json.dumps(["1", "1", "realtime:room1", "phx_join", payload])
    assert decode_frame(frame, VSN_2) == Message("1", "1", "realtime:room1", "phx_join", payload)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('[null,"1","phoenix","heartbeat"]', "must have 5 elements, got 4"),
        ('[null,"1","phoenix","heartbeat",{},1]', "must have 5 elements, got 6"),
        ('{"topic":"t","event":"e","payload":{}}', "must be a JSON array"),
        ("[null,", "not valid JSON"),
        ("", "not valid JSON"),
        ('[null,"1","phoenix","heartbeat",NaN]', "not valid JSON"),
        ('[null,1,"phoenix","heartbeat",{}]', "ref must be a string or null"),
        ('[["x"],"1","phoenix","heartbeat",{}]', "join_ref must be a string or null"),
        ('[null,"1",7,"heartbeat",{}]', "topic must be a string"),
        ('[null,"1","phoenix","",{}]', "event must be a non-empty string"),
        ('[null,"1","phoenix",null,{}]', "event must be a non-empty string"),
        ('[null,"1","phoenix","heartbeat",[]]', "payload must be a JSON object"),
        ('[null,"1","phoenix","heartbeat",null]', "payload must be a JSON object"),
    ],
)
def test_decode_v2_errors(frame: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_frame(frame, VSN_2)


def test_decode_rejects_deep_nesting() -> None:
    frame = '[null,"1","t","e",{"a":' + "[" * 5000 + "]" * 5000 + "}]"
    with pytest.raises(ProtocolError):
        decode_frame(frame, VSN_2)


def test_decode_text_size_limit_counts_utf8_bytes() -> None:
    frame = '[null,"1","t","e",{"a":"' + "é" * 40 + '"}]'  # 40 chars, 80 bytes of payload
    assert decode_frame(frame, VSN_2, max_frame_bytes=200).payload == {"a": "é" * 40}
    with pytest.raises(ProtocolError, match="exceeds the limit of 100 bytes"):
        decode_frame(frame, VSN_2, max_frame_bytes=100)
    with pytest.raises(ProtocolError, match="exceeds the limit of 10 bytes"):
        decode_frame(frame, VSN_2, max_frame_bytes=10)


def test_decode_requires_negotiated_vsn() -> None:
    with pytest.raises(ProtocolError, match="unknown vsn"):
        decode_frame("{}", "2.0.1")


def test_decode_rejects_other_frame_types() -> None:
    with pytest.raises(ProtocolError, match="unsupported frame type int"):
        decode_frame(7, VSN_2)  # type: ignore[arg-type]


# --- decoding text frames, vsn 1.0.0 ---


def test_decode_v1_object_as_the_python_client_sends_it() -> None:
    # realtime (supabase-py) sends pydantic's model_dump_json of its Message model.
    frame = (
        '{"event":"phx_join","payload":{"config":{"private":false}},'
        '"topic":"realtime:room1","ref":"1","join_ref":null}'
    )
    assert decode_frame(frame, VSN_1) == Message(
        None, "1", "realtime:room1", "phx_join", {"config": {"private": False}}
    )


def test_decode_v1_heartbeat_with_null_ref() -> None:
    frame = '{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null}'
    assert decode_frame(frame, VSN_1) == Message(None, None, "phoenix", "heartbeat", {})


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('[null,"1","phoenix","heartbeat",{}]', "must be a JSON object"),
        ('{"event":"heartbeat","payload":{}}', "no 'topic'"),
        ('{"topic":"phoenix","payload":{}}', "no 'event'"),
        ('{"topic":"phoenix","event":"heartbeat"}', "no 'payload'"),
        ('{"topic":"phoenix","event":"heartbeat","payload":"x"}', "payload must be a JSON object"),
    ],
)
def test_decode_v1_errors(frame: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_frame(frame, VSN_1)


def test_decode_v1_refuses_binary_frames() -> None:
    with pytest.raises(ProtocolError, match=r"binary frames need vsn 2\.0\.0"):
        decode_frame(b"\x03", VSN_1)


# --- decoding binary frames ---


def test_decode_json_user_broadcast_push() -> None:
    frame = client_user_broadcast_push("1", "2", "realtime:room1", "cursor", b'{"x":1}', encoding=1)
    assert frame[:7] == bytes([3, 1, 1, 14, 6, 0, 1])
    assert decode_frame(frame, VSN_2) == Message(
        "1", "2", "realtime:room1", "broadcast", UserBroadcast("cursor", {"x": 1}, None)
    )


def test_decode_binary_user_broadcast_push_with_metadata() -> None:
    frame = client_user_broadcast_push(
        "12", "123", "topic", "user_event", b"efg", encoding=0, meta='{"store":true}'
    )
    expected_header = bytes([3, 2, 3, 5, 10, 14, 0])
    assert frame == expected_header + b'12123topicuser_event{"store":true}efg'
    message = decode_frame(frame, VSN_2)
    assert message == Message(
        "12", "123", "topic", "broadcast", UserBroadcast("user_event", b"efg", {"store": True})
    )
    assert isinstance(message.payload, UserBroadcast)
    assert message.payload.is_binary


def test_decode_user_broadcast_push_empty_refs_become_null() -> None:
    frame = client_user_broadcast_push("", "", "t", "e", b"{}", encoding=1)
    message = decode_frame(frame, VSN_2)
    assert (message.join_ref, message.ref) == (None, None)


def test_decode_user_broadcast_push_non_object_json_payload() -> None:
    frame = client_user_broadcast_push("1", "2", "t", "e", b'"just text"', encoding=1)
    assert decode_frame(frame, VSN_2).payload == UserBroadcast("e", "just text")


def test_decode_binary_push_kind_0() -> None:
    frame = bytes([0, 2, 3, 5, 5]) + b"12123topicevent" + bytes([101, 102, 103])
    assert decode_frame(frame, VSN_2) == Message("12", "123", "topic", "event", b"efg")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty binary frame"),
        (bytes([9, 0, 0]), "unknown binary frame kind 9"),
        (bytes([1, 0, 0, 0, 0]), "kind 1 is sent by servers"),
        (bytes([2, 0, 0]), "kind 2 is sent by servers"),
        (bytes([4, 0, 0, 0, 1]), "kind 4 is sent by servers"),
        (bytes([3, 1, 1, 1]), r"truncated binary frame: user broadcast push header needs 7"),
        (bytes([0, 1]), r"truncated binary frame: push header needs 5"),
        (bytes([3, 1, 1, 5, 1, 0, 1]) + b"12top", r"truncated binary frame: topic needs 5"),
        (bytes([3, 0, 0, 1, 1, 3, 1]) + b"te{}", r"truncated binary frame: metadata needs 3"),
        (bytes([3, 0, 0, 1, 1, 0, 2]) + b"te{}", "unknown payload encoding 2"),
        (bytes([3, 0, 0, 1, 1, 0, 1]) + b"te{", "payload is not valid JSON"),
        (bytes([3, 0, 0, 1, 1, 0, 1]) + b"te", "payload is not valid JSON"),
        (bytes([3, 0, 0, 1, 1, 2, 1]) + b"te[]{}", "metadata must be a JSON object"),
        (bytes([3, 0, 0, 1, 1, 2, 1]) + b"te{x{}", "metadata is not valid JSON"),
        (bytes([3, 0, 0, 1, 1, 0, 1]) + b"\xffe{}", "topic is not valid UTF-8"),
        (bytes([3, 0, 0, 1, 1, 0, 1]) + b"t\xc3{}", "user event is not valid UTF-8"),
        (bytes([3, 0, 0, 1, 1, 0, 1]) + b"te\xff", "payload is not valid"),
        (bytes([0, 0, 0, 1, 0]) + b"t", "event must be a non-empty string"),
    ],
)
def test_decode_binary_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_frame(frame, VSN_2)


def test_decode_binary_size_limit() -> None:
    frame = client_user_broadcast_push("1", "2", "t", "e", b"x" * 100, encoding=0)
    assert decode_frame(frame, VSN_2, max_frame_bytes=len(frame)).payload == UserBroadcast("e", b"x" * 100)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode_frame(frame, VSN_2, max_frame_bytes=len(frame) - 1)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    frame = client_user_broadcast_push("1", "2", "t", "e", b"{}", encoding=1)
    assert decode_frame(bytearray(frame), VSN_2) == decode_frame(memoryview(frame), VSN_2)


# --- encoding server messages ---


def test_encode_v2_text_is_compact_array() -> None:
    message = Message("1", None, "realtime:room1", "system", {"status": "ok", "n": [1, 2]})
    assert encode(message, VSN_2) == '["1",null,"realtime:room1","system",{"status":"ok","n":[1,2]}]'


def test_encode_v1_text_is_object() -> None:
    message = Message("1", "2", "realtime:room1", "phx_reply", {"status": "ok", "response": {}})
    assert encode(message, VSN_1) == (
        '{"topic":"realtime:room1","event":"phx_reply",'
        '"payload":{"status":"ok","response":{}},"ref":"2","join_ref":"1"}'
    )


def test_encode_keeps_non_ascii_raw() -> None:
    message = Message(None, None, "t", "e", {"name": "Zoë ☃"})
    assert encode(message, VSN_2) == '[null,null,"t","e",{"name":"Zoë ☃"}]'


def test_encode_lone_surrogate_stays_valid_utf8() -> None:
    frame = encode(Message(None, None, "t", "e", {"s": "\ud800"}), VSN_2)
    assert isinstance(frame, str)
    frame.encode("utf-8")  # would raise if the surrogate had been written raw
    assert json.loads(frame)[4] == {"s": "\ud800"}


def test_encode_big_integers() -> None:
    frame = encode(Message(None, None, "t", "e", {"n": 2**70}), VSN_2)
    assert frame == f'[null,null,"t","e",{{"n":{2**70}}}]'


def test_encode_refuses_unserialisable_payload() -> None:
    with pytest.raises(ProtocolError, match="not JSON-serialisable"):
        encode(Message(None, None, "t", "e", {"thing": object()}), VSN_2)


def test_encode_refuses_non_object_payload() -> None:
    with pytest.raises(ProtocolError, match="payload must be a JSON object, got list"):
        encode(Message(None, None, "t", "e", [1]), VSN_2)  # type: ignore[arg-type]


def test_encode_user_broadcast_json_with_meta_is_kind_4() -> None:
    broadcast = UserBroadcast("user_event", {"a": "b"}, {"replayed": True})
    frame = encode(messages.user_broadcast_message("topic", broadcast), VSN_2)
    assert frame == bytes([4, 5, 10, 17, 1]) + b'topicuser_event{"replayed":true}{"a":"b"}'
    assert isinstance(frame, bytes)
    assert client_decode_user_broadcast(frame) == {
        "join_ref": None,
        "ref": None,
        "topic": "topic",
        "event": "broadcast",
        "payload": {
            "type": "broadcast",
            "event": "user_event",
            "payload": {"a": "b"},
            "meta": {"replayed": True},
        },
    }


def test_encode_user_broadcast_binary_without_meta_is_kind_4() -> None:
    frame = phoenix.encode_user_broadcast("topic", UserBroadcast("user_event", b"efg"))
    assert frame == bytes([4, 5, 10, 0, 0]) + b"topicuser_eventefg"


def test_encode_user_broadcast_for_v1_is_json() -> None:
    broadcast = UserBroadcast("cursor", {"x": 1}, {"id": "m1"})
    frame = encode(messages.user_broadcast_message("realtime:room1", broadcast), VSN_1)
    assert json.loads(frame) == {
        "topic": "realtime:room1",
        "event": "broadcast",
        "payload": {
            "type": "broadcast",
            "event": "cursor",
            "payload": {"x": 1},
            "meta": {"id": "m1"},
        },
        "ref": None,
        "join_ref": None,
    }


def test_encode_binary_payloads_refused_on_v1() -> None:
    binary = messages.user_broadcast_message("t", UserBroadcast("e", b"\x00"))
    with pytest.raises(ProtocolError, match="cannot be sent as JSON"):
        encode(binary, VSN_1)
    with pytest.raises(ProtocolError, match="cannot carry binary payloads"):
        encode(Message("1", None, "t", "e", b"\x00"), VSN_1)


def test_encode_binary_push_kind_0_omits_ref() -> None:
    frame = encode(Message("12", "ignored", "topic", "event", b"efg"), VSN_2)
    assert frame == bytes([0, 2, 5, 5]) + b"12topicevent" + b"efg"


def test_encode_binary_reply_kind_1() -> None:
    frame = phoenix.encode_binary_reply("12", "123", "topic", "ok", b"efg")
    assert frame == bytes([1, 2, 3, 5, 2]) + b"12123topicok" + b"efg"


def test_encode_binary_broadcast_kind_2() -> None:
    frame = phoenix.encode_binary_broadcast("topic", "event", b"efg")
    assert frame == bytes([2, 5, 5]) + b"topicevent" + b"efg"


def test_encode_binary_header_fields_limited_to_255_bytes() -> None:
    with pytest.raises(ProtocolError, match="topic is 256 bytes"):
        phoenix.encode_binary_broadcast("t" * 256, "e", b"")
    with pytest.raises(ProtocolError, match="user event is 256 bytes"):
        phoenix.encode_user_broadcast("t", UserBroadcast("é" * 128, {}))
    with pytest.raises(ProtocolError, match="metadata is"):
        phoenix.encode_user_broadcast("t", UserBroadcast("e", {}, {"k": "v" * 300}))
    assert phoenix.encode_binary_broadcast("t" * 255, "e", b"")[1] == 255


def test_user_broadcast_round_trip_through_the_hub() -> None:
    pushed = client_user_broadcast_push(
        "1", "7", "realtime:room1", "cursor", b'{"x":1,"y":[2]}', encoding=1, meta='{"id":"a"}'
    )
    received = decode_frame(pushed, VSN_2)
    assert isinstance(received.payload, UserBroadcast)
    delivered = encode(messages.user_broadcast_message(received.topic, received.payload), VSN_2)
    assert isinstance(delivered, bytes)
    assert client_decode_user_broadcast(delivered)["payload"] == {
        "type": "broadcast",
        "event": "cursor",
        "payload": {"x": 1, "y": [2]},
        "meta": {"id": "a"},
    }


@pytest.mark.parametrize("vsn", [VSN_1, VSN_2])
def test_text_round_trip(vsn: str) -> None:
    message = Message("4", "9", "realtime:room1", "presence", {"type": "presence", "n": None})
    frame = encode(message, vsn)
    assert isinstance(frame, str)
    assert decode_frame(frame, vsn) == message


# --- stdlib JSON fallback (orjson is optional) ---


@pytest.fixture
def stdlib_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phoenix, "_orjson", None)


@pytest.mark.usefixtures("stdlib_json")
def test_stdlib_fallback_encodes_the_same_bytes() -> None:
    message = Message("1", None, "t", "e", {"name": "Zoë", "n": 1.5, "ok": True, "z": None})
    assert encode(message, VSN_2) == '["1",null,"t","e",{"name":"Zoë","n":1.5,"ok":true,"z":null}]'


@pytest.mark.usefixtures("stdlib_json")
def test_stdlib_fallback_decodes_and_rejects_like_orjson() -> None:
    assert decode_frame('[null,"1","t","e",{"a":1}]', VSN_2).payload == {"a": 1}
    for frame in ('[null,"1","t","e",NaN]', '[null,"1","t","e",{"a":' + "[" * 3000 + "}]"):
        with pytest.raises(ProtocolError):
            decode_frame(frame, VSN_2)
    with pytest.raises(ProtocolError, match="metadata is not valid UTF-8"):
        decode_frame(bytes([3, 0, 0, 1, 1, 2, 1]) + b"te\xff\xfe{}", VSN_2)


@pytest.mark.usefixtures("stdlib_json")
def test_stdlib_fallback_escapes_lone_surrogates_and_refuses_nan() -> None:
    frame = encode(Message(None, None, "t", "e", {"s": "\udfff"}), VSN_2)
    assert isinstance(frame, str)
    assert "\\udfff" in frame
    with pytest.raises(ProtocolError, match="not JSON-serialisable"):
        encode(Message(None, None, "t", "e", {"n": float("nan")}), VSN_2)


# --- server message builders ---

JOIN = Message("1", "1", "realtime:room1", "phx_join", {})


def test_join_reply_echoes_bindings_with_ids_in_order() -> None:
    bindings = [
        {"event": "INSERT", "schema": "public", "table": "posts", "filter": "id=eq.1"},
        {"event": "*", "schema": "public"},
    ]
    reply = messages.join_reply_ok(
        JOIN,
        [messages.postgres_changes_binding(b, i) for i, b in zip((111, 222), bindings, strict=True)],
    )
    assert encode(reply, VSN_2) == (
        '["1","1","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":['
        '{"event":"INSERT","schema":"public","table":"posts","filter":"id=eq.1","id":111},'
        '{"event":"*","schema":"public","id":222}]}}]'
    )


def test_join_reply_without_bindings() -> None:
    assert messages.join_reply_ok(JOIN).payload == {
        "status": "ok",
        "response": {"postgres_changes": []},
    }


def test_reply_error_carries_reason() -> None:
    reason = "Unauthorized: You do not have permissions to read from this Channel topic: room1"
    assert encode(messages.reply_error(JOIN, reason), VSN_2) == (
        '["1","1","realtime:room1","phx_reply",{"status":"error","response":{"reason":"' + reason + '"}}]'
    )


def test_heartbeat_reply() -> None:
    heartbeat = decode_frame('[null,"5","phoenix","heartbeat",{}]', VSN_2)
    assert encode(messages.heartbeat_reply(heartbeat), VSN_2) == (
        '[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]'
    )


def test_unmatched_topic_reply() -> None:
    push = Message(None, "8", "realtime:other", "broadcast", {})
    assert messages.unmatched_topic_reply(push).payload == {
        "status": "error",
        "response": {"reason": "unmatched topic"},
    }


def test_system_messages_carry_channel_name() -> None:
    subscribed = messages.postgres_changes_subscribed("realtime:room1", "1")
    assert encode(subscribed, VSN_2) == (
        '["1",null,"realtime:room1","system",{"channel":"room1","extension":"postgres_changes",'
        '"message":"Subscribed to PostgreSQL","status":"ok"}]'
    )
    failed = messages.postgres_changes_error("realtime:room1", "1", "invalid column for filter x")
    assert isinstance(failed.payload, dict)
    assert failed.payload["status"] == "error"
    expired = messages.system_error("realtime:room1", "1", "Token has expired 3 seconds ago")
    assert expired.payload == {
        "channel": "room1",
        "extension": "system",
        "message": "Token has expired 3 seconds ago",
        "status": "error",
    }


def test_postgres_changes_insert_update_delete_shapes() -> None:
    columns = [("id", "int4"), ("title", "text")]
    insert = messages.postgres_change_data(
        schema="public",
        table="posts",
        commit_timestamp="2024-05-01T10:00:00.123Z",
        change_type="INSERT",
        columns=columns,
        record={"id": 1, "title": "hi"},
    )
    message = messages.postgres_changes_message("realtime:room1", [111], insert)
    assert encode(message, VSN_2) == (
        '[null,null,"realtime:room1","postgres_changes",{"ids":[111],"data":{'
        '"schema":"public","table":"posts","commit_timestamp":"2024-05-01T10:00:00.123Z",'
        '"type":"INSERT","columns":[{"name":"id","type":"int4"},{"name":"title","type":"text"}],'
        '"errors":null,"record":{"id":1,"title":"hi"}}}]'
    )
    update = messages.postgres_change_data(
        schema="public",
        table="posts",
        commit_timestamp="t",
        change_type="UPDATE",
        columns=columns,
        record={"id": 1, "title": "new"},
        old_record={"id": 1},
    )
    assert (update["record"], update["old_record"]) == ({"id": 1, "title": "new"}, {"id": 1})
    delete = messages.postgres_change_data(
        schema="public",
        table="posts",
        commit_timestamp="t",
        change_type="DELETE",
        columns=columns,
        old_record={"id": 1},
        errors=["Error 401: Unauthorized"],
    )
    assert "record" not in delete
    assert delete["errors"] == ["Error 401: Unauthorized"]


def test_postgres_change_data_requires_the_records_its_type_needs() -> None:
    common: dict[str, Any] = {"schema": "s", "table": "t", "commit_timestamp": "c", "columns": []}
    with pytest.raises(ValueError, match="INSERT needs a record"):
        messages.postgres_change_data(change_type="INSERT", **common)
    with pytest.raises(ValueError, match="DELETE needs an old_record"):
        messages.postgres_change_data(change_type="DELETE", **common)


def test_format_commit_timestamp_is_utc_milliseconds() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert messages.format_commit_timestamp(moment) == "2024-05-01T10:00:00.123Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        messages.format_commit_timestamp(datetime(2024, 5, 1))


def test_broadcast_message_json_form() -> None:
    plain = messages.broadcast_message("realtime:room1", "msg", {"text": "hi"})
    assert encode(plain, VSN_2) == (
        '[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"msg","payload":{"text":"hi"}}]'
    )
    replayed = messages.broadcast_message("realtime:room1", "msg", {}, {"replayed": True, "id": "x"})
    assert isinstance(replayed.payload, dict)
    assert replayed.payload["meta"] == {"replayed": True, "id": "x"}


def test_presence_state_and_diff() -> None:
    state = messages.presence_state(
        "realtime:room1", "1", {"user-1": [{"phx_ref": "F1", "online_at": "now"}]}
    )
    assert encode(state, VSN_2) == (
        '["1",null,"realtime:room1","presence_state",'
        '{"user-1":{"metas":[{"phx_ref":"F1","online_at":"now"}]}}]'
    )
    diff = messages.presence_diff(
        "realtime:room1", {"user-2": [{"phx_ref": "F2"}]}, {"user-1": [{"phx_ref": "F1"}]}
    )
    assert diff.join_ref is None
    assert diff.payload == {
        "joins": {"user-2": {"metas": [{"phx_ref": "F2"}]}},
        "leaves": {"user-1": {"metas": [{"phx_ref": "F1"}]}},
    }


def test_phx_close_and_phx_error_repeat_join_ref() -> None:
    assert encode(messages.phx_close("realtime:room1", "3"), VSN_2) == (
        '["3","3","realtime:room1","phx_close",{}]'
    )
    assert encode(messages.phx_error("realtime:room1", "3"), VSN_1) == (
        '{"topic":"realtime:room1","event":"phx_error","payload":{},"ref":"3","join_ref":"3"}'
    )


def test_channel_name_strips_prefix() -> None:
    assert messages.channel_name("realtime:room1") == "room1"
    assert messages.channel_name("phoenix") == "phoenix"


def test_binary_layout_matches_uint8_header_fields() -> None:
    # Header bytes are unsigned 8-bit lengths, as DataView.setUint8 writes them.
    frame = phoenix.encode_user_broadcast("t" * 200, UserBroadcast("e", b""))
    assert struct.unpack_from("<5B", frame) == (4, 200, 1, 0, 0)
