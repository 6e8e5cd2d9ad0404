"""Rate-limit tiers (issue 10, item 1): per user, per API key, per client IP; headers, metric, log."""

from __future__ import annotations

import logging
import re

import pytest

from fluxbase.config import RateLimitConfig
from fluxbase.security.api_keys import api_key
from fluxbase.security.authenticate import Caller
from fluxbase.security.ratelimit import Tier, request_tier
from harness import JWT_SECRET
from security_support import StartApp, limited_config, user_token

PUBLIC = "/auth/v1/settings"  # answers anyone: what a page loads first


async def test_users_behind_one_address_each_have_their_own_budget(
    start_app: StartApp, migrated_dsn: str
) -> None:
    """An office NAT: many signed-in users share one IP; one user's clicks must not lock out the rest."""
    client = await start_app(limited_config(migrated_dsn, requests_per_minute=3, user_requests_per_minute=5))
    alice, bob = user_token(), user_token()
    for _ in range(5):
        assert (await client.get(PUBLIC, headers={"Authorization": f"Bearer {alice}"})).status == 200
    refused = await client.get(PUBLIC, headers={"Authorization": f"Bearer {alice}"})
    assert refused.status == 429
    # Bob, at the same address, and an anonymous visitor there still have their budgets.
    assert (await client.get(PUBLIC, headers={"Authorization": f"Bearer {bob}"})).status == 200
    assert (await client.get(PUBLIC)).status == 200


async def test_anonymous_callers_count_per_address(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(limited_config(migrated_dsn, requests_per_minute=3))
    anon = api_key(JWT_SECRET, "anon")  # public: every browser sends it, so it is no budget of its own
    statuses = [(await client.get(PUBLIC, headers={"apikey": anon})).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # A forged token does not buy a fresh budget either: it spends the address's.
    forged = user_token(secret="f" * 64)
    assert (await client.get(PUBLIC, headers={"Authorization": f"Bearer {forged}"})).status == 429


async def test_the_service_role_key_counts_per_key(start_app: StartApp, migrated_dsn: str) -> None:
    client = await start_app(
        limited_config(migrated_dsn, requests_per_minute=2, api_key_requests_per_minute=4)
    )
    service = {"apikey": api_key(JWT_SECRET, "service_role")}
    statuses = [(await client.get(PUBLIC, headers=service)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert (await client.get(PUBLIC)).status == 200  # the address's own budget is untouched


def test_a_caller_naming_an_api_key_id_counts_against_that_key() -> None:
    """Keys with ids (dashboard-issued) set Caller.api_key_id; the limiter keys on it."""
    limits = RateLimitConfig()
    assert request_tier(Caller("service_role", {}, "t", api_key_id="key-7"), "10.0.0.1", limits) == Tier(
        "api_key", "key-7", 1000
    )
    user = Caller("authenticated", {"sub": "u-1"}, "t")
    assert request_tier(user, "10.0.0.1", limits) == Tier("user", "u-1", 500)
    assert request_tier(None, "10.0.0.1", limits) == Tier("ip", "10.0.0.1", 100)


async def test_429_carries_retry_after_and_rate_limit_headers(
    start_app: StartApp, migrated_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start_app(limited_config(migrated_dsn, requests_per_minute=2))
    first = await client.get(PUBLIC)
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert 1 <= int(first.headers["X-RateLimit-Reset"]) <= 60
    await client.get(PUBLIC)
    with caplog.at_level(logging.WARNING, logger="fluxbase.ratelimit"):
        refused = await client.get(PUBLIC)
    assert refused.status == 429
    body = await refused.json()
    assert body["code"] == "rate_limited" and body["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Reset"] == refused.headers["Retry-After"]
    # The runbook: `grep rate_limit` in the log finds the source address.
    lines = [r for r in caplog.records if r.getMessage().startswith("rate_limit")]
    assert lines and getattr(lines[0], "ip", None) == "127.0.0.1"
    assert getattr(lines[0], "rate_limit", None) == "ip"
    metrics_text = await (await client.get("/metrics")).text()
    assert re.search(r'fluxbase_rate_limit_hits_total\{tier="ip"\} [1-9]', metrics_text)


async def test_every_limit_is_configurable_from_the_environment() -> None:
    from fluxbase.config import load_config

    config = load_config(
        env={
            "DATABASE_URL": "postgresql://localhost/x",
            "FLUXBASE_JWT_SECRET": JWT_SECRET,
            "FLUXBASE_SECURITY_RATE_LIMIT_USER_REQUESTS_PER_MINUTE": "7",
            "FLUXBASE_SECURITY_RATE_LIMIT_API_KEY_REQUESTS_PER_MINUTE": "9",
            "FLUXBASE_SECURITY_RATE_LIMIT_BACKEND": "redis",
            "FLUXBASE_SECURITY_RATE_LIMIT_REDIS_URL": "redis://127.0.0.1:6379/0",
            "FLUXBASE_SECURITY_RATE_LIMIT_REDIS_TIMEOUT": "100ms",
            "FLUXBASE_SERVER_BODY_LIMIT": "4096",
            "FLUXBASE_SERVER_HEADER_READ_TIMEOUT": "5s",
            "FLUXBASE_SERVER_IDLE_TIMEOUT": "30s",
            "FLUXBASE_SERVER_MAX_JSON_DEPTH": "20",
        }
    )
    limits = config.security.rate_limit
    assert (limits.user_requests_per_minute, limits.api_key_requests_per_minute) == (7, 9)
    assert (limits.backend, limits.redis_timeout) == ("redis", 0.1)
    assert config.server.body_limit == 4096 and config.server.max_json_depth == 20
    assert (config.server.header_read_timeout, config.server.idle_timeout) == (5.0, 30.0)


def test_the_default_body_limit_is_small() -> None:
    from fluxbase.config import ServerConfig

    assert ServerConfig().body_limit == 1024 * 1024
