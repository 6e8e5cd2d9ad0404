"""Realtime's per-process state, shared by the WebSocket handlers and the REST broadcast API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from fluxbase.config import RealtimeConfig
from fluxbase.errors import json_response
from fluxbase.realtime.hub import Hub
from fluxbase.realtime.listener import ChangeListener


@dataclass
class RealtimeService:
    """Per-process realtime state: the hub, the listener and the connection counts for the caps."""

    config: RealtimeConfig
    hub: Hub
    listener: ChangeListener | None = None
    per_ip: Counter[str] = field(default_factory=Counter)
    per_user: Counter[str] = field(default_factory=Counter)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    # Set when the server stops: sockets still arriving are refused.
    stopping: bool = False


REALTIME = web.AppKey("realtime", RealtimeService)


def refuse(status: int, message: str) -> web.Response:
    """Realtime's HTTP refusals: `{"error": message}`, as Supabase Realtime answers."""
    return json_response({"error": message}, status=status)
