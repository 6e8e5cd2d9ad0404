"""Properties: hostile input to the decoders and the filter parser only ever fails cleanly."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxbase.realtime import messages, phoenix
from fluxbase.realtime.filters import FilterError, parse_filter
from fluxbase.realtime.phoenix import VSN_1, VSN_2, Message, ProtocolError, UserBroadcast

EXAMPLES = settings(max_examples=300, deadline=None)

vsns = st.sampled_from([VSN_1, VSN_2])
header_text = st.text(max_size=40).filter(lambda s: len(s.encode("utf-8", "surrogatepass")) <= 255)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@EXAMPLES
@given(frame=st.text(max_size=300), vsn=vsns)
def test_text_frames_decode_or_raise_protocol_error(frame: str, vsn: str) -> None:
    with contextlib.suppress(ProtocolError):
        assert isinstance(phoenix.decode_frame(frame, vsn, max_frame_bytes=200), Message)


@EXAMPLES
@given(frame=st.binary(max_size=300), vsn=vsns)
def test_binary_frames_decode_or_raise_protocol_error(frame: bytes, vsn: str) -> None:
    with contextlib.suppress(ProtocolError):
        assert isinstance(phoenix.decode_frame(frame, vsn, max_frame_bytes=200), Message)


@EXAMPLES
@given(
    kind=st.sampled_from([0, 3]),
    lengths=st.lists(st.integers(0, 255), min_size=6, max_size=6),
    body=st.binary(max_size=80),
)
def test_binary_frames_with_plausible_headers(kind: int, lengths: list[int], body: bytes) -> None:
    lengths[-1] %= 3  # mostly valid encodings, sometimes not
    with contextlib.suppress(ProtocolError):
        phoenix.decode_frame(bytes([kind, *lengths]) + body, VSN_2)


@EXAMPLES
@given(
    join_ref=header_text,
    ref=header_text,
    topic=header_text,
    event=header_text.filter(bool),
    payload=json_values | st.binary(max_size=50),
    meta=st.none() | st.dictionaries(st.text(max_size=5), json_scalars, min_size=1, max_size=3),
)
def test_user_broadcast_round_trip(
    join_ref: str, ref: str, topic: str, event: str, payload: Any, meta: dict[str, Any] | None
) -> None:
    # Build kind 3 from kind 4's encoder output: same strings, same payload bytes.
    outbound = phoenix.encode_user_broadcast(topic, UserBroadcast(event, payload, meta))
    topic_size, event_size, meta_size, encoding = outbound[1:5]
    strings = outbound[5 : 5 + topic_size + event_size + meta_size]
    body = outbound[5 + topic_size + event_size + meta_size :]
    jr, rf = join_ref.encode("utf-8", "surrogatepass"), ref.encode("utf-8", "surrogatepass")
    inbound = bytes([3, len(jr), len(rf), topic_size, event_size, meta_size, encoding])
    inbound += jr + rf + strings + body
    try:
        decoded = phoenix.decode_frame(inbound, VSN_2)
    except ProtocolError as exc:
        # only strings that are not valid UTF-8 (lone surrogates) may fail
        assert "UTF-8" in exc.reason
        return
    assert decoded == Message(join_ref or None, ref or None, topic, "broadcast", decoded.payload)
    assert decoded.payload == UserBroadcast(event, payload, meta)


@EXAMPLES
@given(
    join_ref=st.none() | st.text(max_size=10),
    ref=st.none() | st.text(max_size=10),
    topic=st.text(max_size=20),
    event=st.text(min_size=1, max_size=20),
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    vsn=vsns,
)
def test_text_round_trip(
    join_ref: str | None, ref: str | None, topic: str, event: str, payload: dict[str, Any], vsn: str
) -> None:
    message = Message(join_ref, ref, topic, event, payload)
    frame = phoenix.encode(message, vsn)
    assert isinstance(frame, str)
    frame.encode("utf-8")  # always valid UTF-8 on the wire
    assert phoenix.decode_frame(frame, vsn) == message


filter_alphabet = st.sampled_from(list('abcid=.,()"\\ %_*not.eqinlkegts-0123456789NULL'))


@EXAMPLES
@given(text=st.text(max_size=200) | st.text(filter_alphabet, max_size=60))
def test_parse_filter_only_raises_filter_error(text: str) -> None:
    with contextlib.suppress(FilterError):
        parse_filter(text)


@EXAMPLES
@given(
    topic=st.text(max_size=30),
    ids=st.lists(st.integers(1, 2**31), min_size=1, max_size=3),
    data=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    vsn=vsns,
)
def test_a_spliced_changes_frame_is_the_encoded_message(
    topic: str, ids: list[int], data: dict[str, Any], vsn: str
) -> None:
    """The shared-bytes frame says exactly what encoding the whole message says, in both vsns."""
    expected = phoenix.encode(messages.postgres_changes_message(topic, ids, data), vsn)
    assert isinstance(expected, str)
    frame = messages.postgres_changes_frame(topic, ids, phoenix.json_bytes(data), vsn)
    assert frame.data == expected.encode("utf-8")
