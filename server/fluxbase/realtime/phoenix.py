"""Phoenix channels wire format, the last stage of realtime: listener -> hub -> phoenix wire.

Pure functions: decode client frames (vsn 1.0.0 JSON objects, 2.0.0 JSON arrays and binary
kinds) and encode server messages in the negotiated vsn; messages.py builds the messages
realtime clients parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

try:  # orjson is faster and stricter; the stdlib path below is a complete fallback.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    _orjson = None  # type: ignore[assignment]

VSN_1: Final = "1.0.0"
VSN_2: Final = "2.0.0"
# Phoenix assumes 1.0.0 when the query string has no vsn; the Python `realtime` client sends none.
DEFAULT_VSN: Final = VSN_1
# Supabase Realtime's documented websocket frame limit.
DEFAULT_MAX_FRAME_BYTES: Final = 5 * 1024 * 1024

PHOENIX_TOPIC: Final = "phoenix"
TOPIC_PREFIX: Final = "realtime:"

EVENT_JOIN: Final = "phx_join"
EVENT_LEAVE: Final = "phx_leave"
EVENT_REPLY: Final = "phx_reply"
EVENT_CLOSE: Final = "phx_close"
EVENT_ERROR: Final = "phx_error"
EVENT_HEARTBEAT: Final = "heartbeat"
EVENT_AUTH_REFRESH: Final = "access_token"  # client pushes a new JWT on a joined channel
EVENT_BROADCAST: Final = "broadcast"
EVENT_PRESENCE: Final = "presence"
EVENT_PRESENCE_STATE: Final = "presence_state"
EVENT_PRESENCE_DIFF: Final = "presence_diff"
EVENT_POSTGRES_CHANGES: Final = "postgres_changes"
EVENT_SYSTEM: Final = "system"

# Binary frame kinds (first byte) of Supabase's superset of Phoenix's V2 serializer.
KIND_PUSH: Final = 0  # client -> server push with a binary payload
KIND_REPLY: Final = 1  # server -> client reply with a binary response
KIND_BROADCAST: Final = 2  # server -> client broadcast with a binary payload
KIND_USER_BROADCAST_PUSH: Final = 3  # client -> server broadcast (realtime-js 2.x default)
KIND_USER_BROADCAST: Final = 4  # server -> client broadcast with user event and metadata
ENCODING_BINARY: Final = 0
ENCODING_JSON: Final = 1
# Every string in a binary header is prefixed by a one-byte length.
MAX_HEADER_FIELD_BYTES: Final = 255

JsonObject: TypeAlias = dict[str, Any]
ChangeType: TypeAlias = Literal["INSERT", "UPDATE", "DELETE", "TRUNCATE"]


class EncodedText:
    """A text frame already encoded as UTF-8: shared payload bytes spliced into one frame.

    One instance may be queued for many sockets (identical postgres_changes frames are built
    once per batch); `websocket_frame` is then also framed once for all of them.
    """

    __slots__ = ("_framed", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._framed: bytes | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncodedText) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"EncodedText({self.data!r})"

    def websocket_frame(self) -> bytes:
        """The whole WebSocket text frame (module function websocket_frame), built once."""
        framed = self._framed
        if framed is None:
            framed = self._framed = _websocket_frame(0x1, self.data)
        return framed


OutboundFrame: TypeAlias = str | bytes | EncodedText
"""What the send queue holds: `str` and EncodedText go out as text frames, `bytes` as binary."""


def _websocket_frame(opcode: int, data: bytes) -> bytes:
    size = len(data)
    if size < 126:
        header = bytes((0x80 | opcode, size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return header + data


def websocket_frame(frame: OutboundFrame) -> bytes:
    """`frame` as the whole WebSocket frame a server writes (RFC 6455 5.2): FIN, opcode 1
    (text) or 2 (binary), the length (7 bits, or 126 + 16 bits, or 127 + 64 bits), no mask,
    no compression (realtime sockets negotiate none)."""
    if isinstance(frame, EncodedText):
        return frame.websocket_frame()
    if isinstance(frame, str):
        return _websocket_frame(0x1, frame.encode("utf-8"))
    return _websocket_frame(0x2, frame)


class ProtocolError(ValueError):
    """A frame or message that the wire format cannot carry; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedVsnError(ProtocolError):
    """The client asked for a serializer version this server does not speak (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class UserBroadcast:
    """A broadcast whose event, payload and metadata travel outside the JSON envelope.

    This is what binary kind 3 decodes to and kind 4 encodes from. `payload` is any JSON value
    when it was JSON-encoded on the wire, or `bytes` when the sender sent an ArrayBuffer.
    """

    event: str
    payload: Any
    meta: JsonObject | None = None

    @property
    def is_binary(self) -> bool:
        return isinstance(self.payload, bytes | bytearray)

    def as_json_payload(self) -> JsonObject:
        """The text-frame form `{type, event, payload, meta?}` that vsn 1.0.0 clients receive."""
        if self.is_binary:
            raise ProtocolError("a binary broadcast payload cannot be sent as JSON (vsn 1.0.0)")
        body: JsonObject = {"type": EVENT_BROADCAST, "event": self.event, "payload": self.payload}
        if self.meta:
            body["meta"] = self.meta
        return body


Payload: TypeAlias = JsonObject | bytes | UserBroadcast


@dataclass(frozen=True, slots=True)
class Message:
    """One Phoenix message, in either direction."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: Payload


# --------------------------------------------------------------------------------------------
# vsn negotiation

_VERSION = re.compile(r"(\d{1,9})\.(\d{1,9})\.(\d{1,9})")


def negotiate_vsn(query_vsn: str | None) -> str:
    """Map the `vsn` query parameter to "1.0.0" or "2.0.0".

    Missing or empty means 1.0.0, as in Phoenix. Like Phoenix's `~> 1.0.0` / `~> 2.0.0`
    requirements, any patch release of 1.0 or 2.0 is accepted. Anything else raises
    UnsupportedVsnError, which the websocket handler answers with HTTP 403 as Phoenix does.
    """
    if query_vsn is None or query_vsn == "":
        return DEFAULT_VSN
    match = _VERSION.fullmatch(query_vsn)
    if match is not None:
        major, minor = int(match.group(1)), int(match.group(2))
        if (major, minor) == (1, 0):
            return VSN_1
        if (major, minor) == (2, 0):
            return VSN_2
    shown = query_vsn if len(query_vsn) <= 32 else query_vsn[:32] + "..."
    raise UnsupportedVsnError(f"unsupported serializer version {shown!r}; supported: {VSN_1}, {VSN_2}")


# --------------------------------------------------------------------------------------------
# JSON helpers (orjson when installed, stdlib otherwise)


def _reject_constant(name: str) -> Any:
    # JSON has no NaN/Infinity; JS never sends them, and orjson rejects them too.
    raise ValueError(f"{name} is not valid JSON")


def _json_loads(data: str | bytes, what: str) -> Any:
    try:
        if _orjson is not None:
            return _orjson.loads(data)
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # json and orjson decode errors are ValueErrors
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None


def _stdlib_dumps(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"payload is not JSON-serialisable: {exc}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (legal in a Python str, e.g. from a "\ud800" escape) are not UTF-8;
        # escaping them keeps the text frame valid UTF-8, which browsers insist on.
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text


def json_bytes(value: Any) -> bytes:
    """`value` as UTF-8 JSON, exactly as `encode` would write it inside a frame."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except TypeError:
            pass
    return _stdlib_dumps(value).encode("utf-8")


def json_dumps(value: Any) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(value).decode("utf-8")
        except TypeError:
            # orjson refuses lone surrogates and integers beyond 64 bits; the stdlib handles
            # both, and reports anything truly unserialisable.
            pass
    return _stdlib_dumps(value)


# --------------------------------------------------------------------------------------------
# Decoding client frames


def decode_frame(
    frame: str | bytes | bytearray | memoryview,
    vsn: str,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> Message:
    """Decode one websocket frame from a client; `str` is a text frame, bytes a binary one."""
    if isinstance(frame, str):
        return decode_text_frame(frame, vsn, max_frame_bytes=max_frame_bytes)
    if isinstance(frame, bytes | bytearray | memoryview):
        return decode_binary_frame(bytes(frame), vsn, max_frame_bytes=max_frame_bytes)
    raise ProtocolError(f"unsupported frame type {type(frame).__name__}")


def decode_text_frame(text: str, vsn: str, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode a text frame: a JSON object for vsn 1.0.0, a 5-element JSON array for 2.0.0."""
    require_vsn(vsn)
    # A character is at least one UTF-8 byte, so only long frames need the exact count.
    if len(text) > max_frame_bytes or (
        len(text) * 4 > max_frame_bytes and len(text.encode("utf-8", "surrogatepass")) > max_frame_bytes
    ):
        raise ProtocolError(f"frame exceeds the limit of {max_frame_bytes} bytes")
    decoded = _json_loads(text, "frame")
    if vsn == VSN_2:
        if not isinstance(decoded, list):
            raise ProtocolError(
                "vsn 2.0.0 text frames must be a JSON array [join_ref, ref, topic, event, payload]"
            )
        if len(decoded) != 5:
            raise ProtocolError(f"vsn 2.0.0 text frames must have 5 elements, got {len(decoded)}")
        join_ref, ref, topic, event, payload = decoded
    else:
        if not isinstance(decoded, dict):
            raise ProtocolError(
                "vsn 1.0.0 text frames must be a JSON object {topic, event, payload, ref, join_ref}"
            )
        for key in ("topic", "event", "payload"):
            if key not in decoded:
                raise ProtocolError(f"message has no {key!r}")
        join_ref, ref = decoded.get("join_ref"), decoded.get("ref")
        topic, event, payload = decoded["topic"], decoded["event"], decoded["payload"]
    return _checked_message(join_ref, ref, topic, event, payload)


def _checked_message(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any) -> Message:
    # Both clients send refs as strings (or null); anything else is a broken client, and
    # echoing a different type back would break their ref matching anyway.
    if join_ref is not None and not isinstance(join_ref, str):
        raise ProtocolError("join_ref must be a string or null")
    if ref is not None and not isinstance(ref, str):
        raise ProtocolError("ref must be a string or null")
    if not isinstance(topic, str):
        raise ProtocolError("topic must be a string")
    if not isinstance(event, str) or event == "":
        raise ProtocolError("event must be a non-empty string")
    if not isinstance(payload, dict):
        raise ProtocolError("payload must be a JSON object")
    return Message(join_ref, ref, topic, event, payload)


def require_vsn(vsn: str) -> None:
    if vsn not in (VSN_1, VSN_2):
        raise ProtocolError(f"unknown vsn {vsn!r}; negotiate it with negotiate_vsn first")


class _BinaryReader:
    """Bounds-checked reading of a binary frame; every overrun is a ProtocolError."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def header_bytes(self, count: int, kind_name: str) -> bytes:
        if len(self.data) < self.offset + count:
            raise ProtocolError(
                f"truncated binary frame: {kind_name} header needs {self.offset + count} bytes,"
                f" frame has {len(self.data)}"
            )
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def take(self, count: int, field: str) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise ProtocolError(
                f"truncated binary frame: {field} needs {count} bytes at offset {self.offset},"
                f" frame has {len(self.data)}"
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def text(self, count: int, field: str) -> str:
        try:
            return self.take(count, field).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{field} is not valid UTF-8") from None

    def rest(self) -> bytes:
        return self.data[self.offset :]


def decode_binary_frame(data: bytes, vsn: str, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode a binary frame a client sends: kind 0 (push) or kind 3 (user broadcast push)."""
    require_vsn(vsn)
    if vsn != VSN_2:
        raise ProtocolError("binary frames need vsn 2.0.0")
    if len(data) > max_frame_bytes:
        raise ProtocolError(f"frame exceeds the limit of {max_frame_bytes} bytes")
    if not data:
        raise ProtocolError("empty binary frame")
    kind = data[0]
    if kind == KIND_PUSH:
        return _decode_push(data)
    if kind == KIND_USER_BROADCAST_PUSH:
        return _decode_user_broadcast_push(data)
    if kind in (KIND_REPLY, KIND_BROADCAST, KIND_USER_BROADCAST):
        raise ProtocolError(f"binary kind {kind} is sent by servers, not clients")
    raise ProtocolError(f"unknown binary frame kind {kind}")


def _optional_ref(value: str) -> str | None:
    # The binary header cannot say null; realtime-js writes a missing ref as "".
    return value or None


def _decode_push(data: bytes) -> Message:
    reader = _BinaryReader(data, 1)
    join_ref_size, ref_size, topic_size, event_size = reader.header_bytes(4, "push")
    join_ref = reader.text(join_ref_size, "join_ref")
    ref = reader.text(ref_size, "ref")
    topic = reader.text(topic_size, "topic")
    event = reader.text(event_size, "event")
    if not event:
        raise ProtocolError("event must be a non-empty string")
    return Message(_optional_ref(join_ref), _optional_ref(ref), topic, event, reader.rest())


def _decode_user_broadcast_push(data: bytes) -> Message:
    reader = _BinaryReader(data, 1)
    header = reader.header_bytes(6, "user broadcast push")
    join_ref_size, ref_size, topic_size, event_size, meta_size, encoding = header
    if encoding not in (ENCODING_BINARY, ENCODING_JSON):
        raise ProtocolError(f"unknown payload encoding {encoding}")
    join_ref = reader.text(join_ref_size, "join_ref")
    ref = reader.text(ref_size, "ref")
    topic = reader.text(topic_size, "topic")
    user_event = reader.text(event_size, "user event")
    meta: JsonObject | None = None
    if meta_size:
        decoded_meta = _json_loads(reader.take(meta_size, "metadata"), "metadata")
        if not isinstance(decoded_meta, dict):
            raise ProtocolError("metadata must be a JSON object")
        meta = decoded_meta
    body = reader.rest()
    payload: Any = body if encoding == ENCODING_BINARY else _json_loads(body, "payload")
    return Message(
        _optional_ref(join_ref),
        _optional_ref(ref),
        topic,
        EVENT_BROADCAST,
        UserBroadcast(user_event, payload, meta),
    )


# --------------------------------------------------------------------------------------------
# Encoding server messages


def encode(message: Message, vsn: str) -> OutboundFrame:
    """Encode a server message for a client that negotiated `vsn`.

    JSON-object payloads become text frames. With vsn 2.0.0, `bytes` payloads become binary
    kind 0 and UserBroadcast payloads binary kind 4 (how Supabase Realtime forwards broadcasts
    that arrived as binary kind 3). vsn 1.0.0 receives a UserBroadcast as the JSON form
    `{type, event, payload, meta?}` and cannot carry bytes at all.
    """
    require_vsn(vsn)
    payload = message.payload
    if isinstance(payload, UserBroadcast):
        if vsn == VSN_2:
            return encode_user_broadcast(message.topic, payload)
        payload = payload.as_json_payload()
    elif isinstance(payload, bytes | bytearray):
        if vsn == VSN_1:
            raise ProtocolError("vsn 1.0.0 cannot carry binary payloads")
        return _encode_binary_push(message.join_ref, message.topic, message.event, bytes(payload))
    elif not isinstance(payload, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(payload).__name__}")
    if vsn == VSN_2:
        return json_dumps([message.join_ref, message.ref, message.topic, message.event, payload])
    return json_dumps(
        {
            "topic": message.topic,
            "event": message.event,
            "payload": payload,
            "ref": message.ref,
            "join_ref": message.join_ref,
        }
    )


def _header_field(value: str | None, field: str) -> bytes:
    encoded = (value or "").encode("utf-8")
    if len(encoded) > MAX_HEADER_FIELD_BYTES:
        raise ProtocolError(
            f"{field} is {len(encoded)} bytes; binary frames allow at most {MAX_HEADER_FIELD_BYTES}"
        )
    return encoded


def _encode_binary_push(join_ref: str | None, topic: str, event: str, data: bytes) -> bytes:
    # Server pushes carry no ref: [0, len(join_ref), len(topic), len(event), ...strings, data].
    fields = (
        _header_field(join_ref, "join_ref"),
        _header_field(topic, "topic"),
        _header_field(event, "event"),
    )
    return bytes([KIND_PUSH, *(len(field) for field in fields)]) + b"".join(fields) + data


def encode_binary_reply(join_ref: str | None, ref: str | None, topic: str, status: str, data: bytes) -> bytes:
    """Binary kind 1: a reply whose response is raw bytes (older realtime-js 2.x decodes it)."""
    fields = (
        _header_field(join_ref, "join_ref"),
        _header_field(ref, "ref"),
        _header_field(topic, "topic"),
        _header_field(status, "status"),
    )
    return bytes([KIND_REPLY, *(len(field) for field in fields)]) + b"".join(fields) + data


def encode_binary_broadcast(topic: str, event: str, data: bytes) -> bytes:
    """Binary kind 2: a broadcast whose payload is raw bytes, without join_ref or ref."""
    fields = (_header_field(topic, "topic"), _header_field(event, "event"))
    return bytes([KIND_BROADCAST, *(len(field) for field in fields)]) + b"".join(fields) + data


def encode_user_broadcast(topic: str, broadcast: UserBroadcast) -> bytes:
    """Binary kind 4, which realtime-js turns into `broadcast {type, event, payload, meta?}`.

    Layout: [4, len(topic), len(event), len(meta), encoding] + topic + event + meta JSON +
    payload, where encoding 1 means the payload is JSON text and 0 raw bytes.
    """
    meta_text = json_dumps(broadcast.meta) if broadcast.meta else ""
    fields = (
        _header_field(topic, "topic"),
        _header_field(broadcast.event, "user event"),
        _header_field(meta_text, "metadata"),
    )
    if broadcast.is_binary:
        encoding, body = ENCODING_BINARY, bytes(broadcast.payload)
    else:
        encoding, body = ENCODING_JSON, json_dumps(broadcast.payload).encode("utf-8")
    header = bytes([KIND_USER_BROADCAST, *(len(field) for field in fields), encoding])
    return header + b"".join(fields) + body
