"""Realtime's per-socket model: a Client (one WebSocket and its bounded send queue), the
Channels it joined and their postgres_changes Bindings. The hub fans out to these; the
handlers create them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fluxbase.observability import metrics
from fluxbase.realtime import phoenix
from fluxbase.realtime.filters import Filter
from fluxbase.security.authenticate import Caller

log = logging.getLogger("fluxbase.realtime")


class Client:
    """One WebSocket: its negotiated vsn, its bounded send queue, its joined channels.

    An idle socket holds no queue and no writer: the queue (a deque) exists only while frames
    wait, and `on_frames` is called when it comes into being, to start a writer that sends
    them (next_frame) and ends when it finds the queue empty. Thousands of idle sockets then
    cost no task and no asyncio.Queue (four deques and an Event) each.

    Before that, a socket with nothing queued is offered the frames through `send_now`, which
    writes them at once when its transport has room (no task at all: the common case of a
    fan-out) and else declines, so they are queued. Frames only go out directly while no
    writer exists, so they never overtake queued ones.
    """

    __slots__ = (
        "_frames",
        "_on_frames",
        "_on_overflow",
        "_send_now",
        "caller",
        "channels",
        "closed",
        "id",
        "ip",
        "queue_size",
        "vsn",
    )

    def __init__(
        self,
        vsn: str,
        caller: Caller,
        *,
        ip: str,
        queue_size: int,
        on_overflow: Callable[[Client], None],
        on_frames: Callable[[Client], None] | None = None,
        send_now: Callable[[Sequence[phoenix.OutboundFrame]], bool] | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.vsn = vsn
        self.caller = caller
        self.ip = ip
        self.queue_size = queue_size
        self._frames: collections.deque[phoenix.OutboundFrame] | None = None
        self.channels: dict[str, Channel] = {}
        self.closed = False
        self._on_overflow = on_overflow
        self._on_frames = on_frames
        self._send_now = send_now

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
        self.push_frame(frame)

    def push_frames(self, frames: Sequence[phoenix.OutboundFrame]) -> None:
        """Sends frames in order: together at once when nothing is queued, else queued."""
        if self.closed or not frames:
            return
        if self._frames is None and self._send_now is not None and self._send_now(frames):
            return
        for frame in frames:
            self.push_frame(frame)

    def push_frame(self, frame: phoenix.OutboundFrame) -> None:
        """Sends (or queues) a frame already encoded for this client's vsn."""
        if self.closed:
            return
        frames = self._frames
        if frames is None:
            if self._send_now is not None and self._send_now((frame,)):
                return
            frames = self._frames = collections.deque()
            frames.append(frame)
            if self._on_frames is not None:
                self._on_frames(self)
            return
        if len(frames) >= self.queue_size:
            self.closed = True
            metrics.realtime_slow_clients_total.inc()
            self._on_overflow(self)
            return
        frames.append(frame)

    def next_frame(self) -> phoenix.OutboundFrame | None:
        """The next frame to send; None when none waits (the writer then ends, the queue goes)."""
        frames = self._frames
        if not frames:
            self._frames = None
            return None
        return frames.popleft()

    @property
    def pending(self) -> int:
        return len(self._frames) if self._frames is not None else 0

    @property
    def subscription_count(self) -> int:
        return sum(1 + len(channel.bindings) for channel in self.channels.values())


@dataclass(eq=False, slots=True)
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
    # The hub's subscriber-group key, with the caller it was computed for (hub._group_key).
    group_key: tuple[Caller, tuple[str, bytes]] | None = None


@dataclass(eq=False, slots=True)
class Binding:
    """One postgres_changes binding: `id` is what the client matches `ids` against."""

    channel: Channel
    id: int
    event: str
    table_oid: int
    filter: Filter
    # The binding's `select`: the only columns it wants (None = every column it may see).
    select: frozenset[str] | None = None
