"""The client's address: the socket peer, or what a trusted proxy says it forwarded.

X-Forwarded-For is read only when the peer is a configured trusted proxy,
right to left, stopping at the first address that is not itself trusted;
anyone else could name any address and pick their own rate-limit bucket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from fluxbase.request_state import CLIENT_IP

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNIX_SOCKET_PEER = "unix"


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses; raises ValueError naming the bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {entry!r}") from exc
    return tuple(networks)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def resolve_client_ip(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled hop: fall back to what we know for sure
    return hops[0] if hops else peer


def peer_address(request: web.Request) -> str:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return UNIX_SOCKET_PEER


def client_ip(request: web.Request, trusted: Sequence[Network]) -> str:
    """The request's client address (X-Forwarded-For is not even read without trusted proxies)."""
    peer = peer_address(request)
    if not trusted:
        return peer
    return resolve_client_ip(peer, request.headers.getall("X-Forwarded-For", []), trusted)


def client_ip_middleware(
    trusted: Sequence[Network],
) -> Middleware:
    """The client-IP step alone (request_path.py runs it inside the one composed middleware)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CLIENT_IP] = client_ip(request, trusted)
        return await handler(request)

    return middleware
