"""Realtime's REST broadcast endpoints: `POST /realtime/v1/api/broadcast` (supabase-js's
httpSend) and `/api/broadcast/{topic}/events/{event}` (realtime-py's http_send).

A key or user token with the realtime scope may send; the hub relays the message to every
replica's subscribers of the topic.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from fluxbase.realtime import phoenix
from fluxbase.realtime.service import REALTIME, refuse
from fluxbase.security.authenticate import AUTHENTICATOR, AuthenticationError, bearer_token
from fluxbase.security.scopes import REALTIME as REALTIME_SCOPE
from fluxbase.security.scopes import ScopeError, require_scope

BROADCAST_PATH: Final = "/realtime/v1/api/broadcast"


def _refusal(request: web.Request) -> web.Response | None:
    """401 unless the request carries a key or user token with the realtime scope."""
    token = bearer_token(request.headers) or request.headers.get("apikey")
    if not token:
        return refuse(401, "missing apikey")
    try:
        require_scope(request.app[AUTHENTICATOR].verify(token), REALTIME_SCOPE)
    except (AuthenticationError, ScopeError) as exc:
        return refuse(401, exc.reason)
    return None


async def broadcast_handler(request: web.Request) -> web.Response:
    """`POST /realtime/v1/api/broadcast {messages: [{topic, event, payload, private?}]}` -> 202."""
    service = request.app[REALTIME]
    if (refused := _refusal(request)) is not None:
        return refused
    try:
        body = await request.json()
    except ValueError:
        return refuse(400, "body must be JSON")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return refuse(400, "messages must be a non-empty list")
    for item in messages:
        if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
            return refuse(400, "each message needs a topic and an event")
        if not isinstance(item.get("event"), str):
            return refuse(400, "each message needs a topic and an event")
        if item.get("private"):
            return refuse(400, "private channels are not supported by this server")
    for item in messages:
        try:
            await service.hub.broadcast(_topic(item["topic"]), item["event"], item.get("payload"))
        except ValueError as exc:
            return refuse(413, str(exc))
    return web.Response(status=202)


async def broadcast_event_handler(request: web.Request) -> web.Response:
    """`POST /realtime/v1/api/broadcast/{topic}/events/{event}` (realtime-py's http_send)."""
    service = request.app[REALTIME]
    if (refused := _refusal(request)) is not None:
        return refused
    if request.query.get("private") == "true":
        return refuse(400, "private channels are not supported by this server")
    binary = request.content_type == "application/octet-stream"
    payload: Any = await request.read() if binary else None
    if not binary:
        try:
            payload = await request.json()
        except ValueError:
            return refuse(400, "body must be JSON")
    try:
        await service.hub.broadcast(
            _topic(request.match_info["topic"]), request.match_info["event"], payload, binary=binary
        )
    except ValueError as exc:
        return refuse(413, str(exc))
    return web.Response(status=202)


def _topic(name: str) -> str:
    return name if name.startswith(phoenix.TOPIC_PREFIX) else phoenix.TOPIC_PREFIX + name
