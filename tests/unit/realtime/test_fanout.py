"""The fan-out's shared frames: hashed binding ids, frames framed once, the direct send path."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from fluxbase.realtime import handlers, messages, phoenix
from fluxbase.realtime.clients import Client
from fluxbase.security.authenticate import Caller


def test_identical_bindings_get_identical_ids_and_different_ones_differ() -> None:
    first = messages.binding_id("INSERT", "public", "todos", "kind=eq.1", None)
    assert first == messages.binding_id("INSERT", "public", "todos", "kind=eq.1", None)
    others = {
        messages.binding_id("UPDATE", "public", "todos", "kind=eq.1", None),
        messages.binding_id("INSERT", "other", "todos", "kind=eq.1", None),
        messages.binding_id("INSERT", "public", "notes", "kind=eq.1", None),
        messages.binding_id("INSERT", "public", "todos", "kind=eq.2", None),
        messages.binding_id("INSERT", "public", "todos", "kind=eq.1", ["id"]),
        messages.binding_id("INSERT", "public", None, "", None),
    }
    assert first not in others and len(others) == 6
    assert all(0 < value < 2**31 for value in {first, *others})


def test_a_channel_never_gives_one_id_to_two_different_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    real = messages.binding_id

    def colliding(*args: object, **kwargs: object) -> int:
        attempt = args[5] if len(args) > 5 else 0
        return 7 if attempt == 0 else real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(messages, "binding_id", colliding)
    taken: dict[int, tuple[object, ...]] = {}
    a = handlers.channel_binding_id(taken, "INSERT", "public", "t", "", None)
    b = handlers.channel_binding_id(taken, "DELETE", "public", "t", "", None)
    again = handlers.channel_binding_id(taken, "INSERT", "public", "t", "", None)
    assert a == 7 and b != 7 and again == a


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_websocket_frames_carry_the_length_as_rfc_6455_says(size: int) -> None:
    data = b"x" * size
    framed = phoenix.EncodedText(data).websocket_frame()
    assert framed[0] == 0x81  # FIN, text
    if size < 126:
        assert framed[1] == size and framed[2:] == data
    elif size < 65536:
        assert framed[1] == 126 and struct.unpack("!H", framed[2:4])[0] == size and framed[4:] == data
    else:
        assert framed[1] == 127 and struct.unpack("!Q", framed[2:10])[0] == size and framed[10:] == data
    assert phoenix.websocket_frame("é")[:2] == bytes((0x81, 2))
    assert phoenix.websocket_frame(b"\x00\x01") == bytes((0x82, 2, 0, 1))


def test_a_shared_frame_is_framed_once() -> None:
    frame = messages.postgres_changes_frame("realtime:t", [1], b"{}", phoenix.VSN_2)
    assert frame.websocket_frame() is frame.websocket_frame()


class Socket:
    """A stand-in for handlers.send_now: takes frames while `room`, records what it wrote."""

    def __init__(self) -> None:
        self.room = True
        self.written: list[bytes] = []
        self.writers = 0

    def send_now(self, frames: Sequence[phoenix.OutboundFrame]) -> bool:
        if not self.room:
            return False
        self.written.append(b"".join(map(phoenix.websocket_frame, frames)))
        return True

    def client(self) -> Client:
        def started(_client: Client) -> None:
            self.writers += 1

        return Client(
            phoenix.VSN_2,
            Caller("anon"),
            ip="127.0.0.1",
            queue_size=3,
            on_overflow=lambda _client: None,
            on_frames=started,
            send_now=self.send_now,
        )


def test_frames_go_out_at_once_when_nothing_waits() -> None:
    socket = Socket()
    client = socket.client()
    a, b = phoenix.EncodedText(b"a"), phoenix.EncodedText(b"b")
    client.push_frames([a, b])
    assert socket.written == [a.websocket_frame() + b.websocket_frame()]
    assert client.pending == 0 and socket.writers == 0


def test_frames_queue_behind_queued_ones_and_overflow_still_closes() -> None:
    socket = Socket()
    client = socket.client()
    socket.room = False
    client.push_frame("first")
    assert client.pending == 1 and socket.writers == 1
    socket.room = True
    # Something waits: later frames queue behind it, never overtaking it.
    client.push_frames([phoenix.EncodedText(b"second"), phoenix.EncodedText(b"third")])
    assert socket.written == [] and client.pending == 3
    client.push_frame("fourth")
    assert client.closed
    assert [client.next_frame() for _ in range(3)] == [
        "first",
        phoenix.EncodedText(b"second"),
        phoenix.EncodedText(b"third"),
    ]
