"""Presence of replicas that died: each replica heartbeats; the others drop its members after its lease.

Presence travels between replicas as diffs (hub.py); a replica that exits cleanly sends leaves
for its members, one that crashes (or loses its database connection for good) cannot. So every
replica sends `{"k": "hb", "n": <node>}` every lease/3 through the same relay, every presence
join names the node that tracks it, and a replica not heard from for `realtime.presence_lease`
has its members removed by each other replica, which sends the presence_diff leaves to its
own subscribers. A replica that comes back later announces itself with a new node id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

log = logging.getLogger("fluxbase.realtime")

HEARTBEAT_KIND: Final = "hb"


class PresenceLeases:
    """Which node tracks each presence ref, when each node was last heard from, and the sweep."""

    def __init__(
        self,
        node: str,
        lease: float,
        publish: Callable[[dict[str, Any]], Awaitable[None]],
        drop: Callable[[str, str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.lease = lease
        self._publish = publish
        self._drop = drop  # (topic, key, ref): removes one member and tells local subscribers
        self._clock = clock
        self._last_heard: dict[str, float] = {}
        self._refs: dict[str, tuple[str, str, str]] = {}  # ref -> (node, topic, key)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="realtime-presence-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def heard(self, node: Any) -> None:
        if isinstance(node, str) and node:
            self._last_heard[node] = self._clock()

    def joined(self, node: Any, topic: str, key: str, refs: list[str]) -> None:
        if not isinstance(node, str) or not node:
            return
        self.heard(node)
        for ref in refs:
            self._refs[ref] = (node, topic, key)

    def left(self, refs: list[str]) -> None:
        for ref in refs:
            self._refs.pop(ref, None)

    def expired(self) -> list[tuple[str, str, str]]:
        """(topic, key, ref) of every member whose node's lease ran out; they are forgotten."""
        deadline = self._clock() - self.lease
        dead = {node for node, seen in self._last_heard.items() if seen < deadline and node != self.node}
        if not dead:
            return []
        for node in dead:
            del self._last_heard[node]
        gone = [(topic, key, ref) for ref, (node, topic, key) in self._refs.items() if node in dead]
        for _topic, _key, ref in gone:
            del self._refs[ref]
        log.warning(
            "realtime: replicas stopped heartbeating; their presence removed", extra={"members": len(gone)}
        )
        return gone

    async def _run(self) -> None:
        interval = max(self.lease / 3, 0.05)
        while True:
            with contextlib.suppress(Exception):
                await self._publish({"k": HEARTBEAT_KIND, "t": "", "n": self.node})
            await asyncio.sleep(interval)
            for topic, key, ref in self.expired():
                self._drop(topic, key, ref)
