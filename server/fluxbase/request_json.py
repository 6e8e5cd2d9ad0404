"""Reading a request the way the dashboard and admin API need it: a JSON object body, the client's inet."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from aiohttp import web

from fluxbase.errors import HttpError
from fluxbase.request_state import CLIENT_IP

MAX_BODY = 1024 * 1024


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object ({} when empty); 400/413 for anything else."""
    if not request.can_read_body:
        return {}
    # Read by chunks and stop past the limit: server.body_limit (2 GB) is for storage, not JSON.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, "payload_too_large", "Request body is larger than 1 MB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "invalid_json", "Could not parse the request body as JSON") from exc
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "The request body must be a JSON object")
    return body


def client_inet(request: web.Request) -> str | None:
    """The client's address for an inet column, or None (a UNIX socket peer)."""
    value = request.get(CLIENT_IP)
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def text_field(
    body: dict[str, Any], name: str, *, required: bool = True, max_length: int = 1000
) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise HttpError(400, "validation_failed", f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise HttpError(
            400, "validation_failed", f"{name} must be a string of at most {max_length} characters"
        )
    return value
