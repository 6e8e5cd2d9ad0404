"""Issue 10's standing matrix: forwarded-header spoofing over HTTP. A peer that is not a trusted proxy
cannot pick its rate-limit bucket with X-Forwarded-For, Forwarded or X-Real-IP; behind a trusted proxy
only the hop the proxy added counts, not what the client wrote to its left."""

from __future__ import annotations

import dataclasses

from fluxbase.config import Config
from security_support import StartApp, limited_config

PUBLIC = "/auth/v1/settings"
LIMIT = 3


def _spoofs(i: int) -> dict[str, str]:
    address = f"203.0.113.{i + 1}"
    return {
        "X-Forwarded-For": address,
        "Forwarded": f"for={address};proto=https",
        "X-Real-IP": address,
        "X-Client-IP": address,
        "True-Client-IP": address,
        "CF-Connecting-IP": address,
    }


def _behind(config: Config, *proxies: str) -> Config:
    return dataclasses.replace(config, security=dataclasses.replace(config.security, trusted_proxies=proxies))


async def test_an_untrusted_peer_cannot_buy_buckets_with_forwarded_headers(
    start_app: StartApp, migrated_dsn: str
) -> None:
    # No trusted proxy at all, and one that is not the peer (127.0.0.1): the headers are ignored.
    for config in (
        limited_config(migrated_dsn, requests_per_minute=LIMIT),
        _behind(limited_config(migrated_dsn, requests_per_minute=LIMIT), "10.0.0.0/8"),
    ):
        client = await start_app(config)
        statuses = [(await client.get(PUBLIC, headers=_spoofs(i))).status for i in range(LIMIT + 3)]
        assert statuses == [200] * LIMIT + [429] * 3, statuses
        # Plain requests from the same peer share that spent bucket.
        assert (await client.get(PUBLIC)).status == 429


async def test_behind_a_trusted_proxy_only_its_own_hop_counts(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(_behind(limited_config(migrated_dsn, requests_per_minute=LIMIT), "127.0.0.1"))
    # The client writes whatever it likes on the left; the proxy appends the real address on the right.
    statuses = [
        (await client.get(PUBLIC, headers={"X-Forwarded-For": f"198.51.100.{i}, 192.0.2.7"})).status
        for i in range(LIMIT + 2)
    ]
    assert statuses == [200] * LIMIT + [429] * 2, statuses
    # Another real client behind the same proxy has its own budget: the header is honoured, not ignored.
    assert (await client.get(PUBLIC, headers={"X-Forwarded-For": "192.0.2.8"})).status == 200
    # Headers the proxy does not set cannot move the count either.
    spoofed = {"X-Forwarded-For": "192.0.2.7", "X-Real-IP": "192.0.2.99", "True-Client-IP": "192.0.2.98"}
    assert (await client.get(PUBLIC, headers=spoofed)).status == 429
