"""Shared rate limits through a real redis-server: one count for every replica, and life without Redis."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from fluxbase.security.ratelimit_store import RedisStore
from harness import ServerProcess, server_env, start_server
from redis_support import RedisServer
from security_support import StartApp, limited_config


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def test_two_stores_on_one_redis_share_one_count(redis_server: RedisServer) -> None:
    first, second = RedisStore(redis_server.url, 0.5), RedisStore(redis_server.url, 0.5)
    try:
        allowed = [
            (await store.hit("ip", "10.1.1.1", 4, 60)).allowed
            for store in (first, second, first, second, first)
        ]
        assert allowed == [True, True, True, True, False]
        refused = await second.hit("ip", "10.1.1.1", 4, 60)
        assert not refused.allowed and 1 <= refused.retry_after <= 60 and refused.remaining == 0
        # Another key, another tier: budgets of their own.
        assert (await first.hit("ip", "10.1.1.2", 4, 60)).allowed
        assert (await first.hit("user", "10.1.1.1", 4, 60)).allowed
    finally:
        await first.close()
        await second.close()


async def test_auth_limits_count_across_replicas(redis_server: RedisServer) -> None:
    """Sign-in attempts alternating between two replicas: five in all, not five each."""
    first, second = RedisStore(redis_server.url, 0.5), RedisStore(redis_server.url, 0.5)
    limiters = [
        first.sync_limiter("auth_sign_in_account", 5, 900),
        second.sync_limiter("auth_sign_in_account", 5, 900),
    ]
    try:
        decisions = []
        for attempt in range(8):
            decisions.append(limiters[attempt % 2].hit("account-digest"))
            await asyncio.sleep(0.05)  # one attempt after another, as a password guesser's answers come back
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        assert all(d.retry_after >= 1 for d in decisions[5:])
    finally:
        await first.close()
        await second.close()


async def test_without_redis_the_process_counts_alone_and_says_so(
    start_app: StartApp, migrated_dsn: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = limited_config(
        migrated_dsn, requests_per_minute=3, backend="redis", redis_url=redis_server.url, redis_timeout=0.3
    )
    client = await start_app(config)
    assert (await client.get("/auth/v1/settings")).status == 200
    ready = await (await client.get("/ready")).json()
    assert ready["rate_limit"] == "redis: ok"
    redis_server.stop()
    statuses = [(await client.get("/auth/v1/settings")).status for _ in range(4)]
    # Served all the same, and still limited: by this process's own count.
    assert statuses == [200, 200, 200, 429]
    answer = await client.get("/ready")
    ready = await answer.json()
    assert answer.status == 200 and ready["status"] == "ready"
    assert ready["rate_limit"] == "redis: degraded"
    assert "redis unreachable" in ready["detail"]
    assert any("rate_limit backend unavailable" in r.getMessage() for r in caplog.records)


@pytest.mark.process
def test_two_servers_sharing_one_redis_enforce_one_limit(
    migrated_dsn: str, redis_server: RedisServer
) -> None:
    env = server_env(
        migrated_dsn,
        FLUXBASE_SECURITY_RATE_LIMIT_ENABLED="true",
        FLUXBASE_SECURITY_RATE_LIMIT_REQUESTS_PER_MINUTE="6",
        FLUXBASE_SECURITY_RATE_LIMIT_BACKEND="redis",
        FLUXBASE_SECURITY_RATE_LIMIT_REDIS_URL=redis_server.url,
    )
    servers: list[ServerProcess] = []
    try:
        servers = [start_server(env, "serve", "--no-migrate") for _ in range(2)]
        statuses = [get(servers[i % 2].url + "/auth/v1/settings")[0] for i in range(8)]
        assert statuses == [200] * 6 + [429, 429]
        status, headers, _ = get(servers[0].url + "/auth/v1/settings")
        assert status == 429 and int(headers["Retry-After"]) >= 1

        # Redis goes away: both keep serving, each on its own count, and /ready says so.
        redis_server.stop()
        for server in servers:
            status, _, body = get(server.url + "/ready")
            assert status == 200, body
            ready = json.loads(body)
            assert ready["rate_limit"] == "redis: degraded" and "redis unreachable" in ready["detail"]
            assert get(server.url + "/auth/v1/settings")[0] == 200
            assert any("rate_limit backend unavailable" in line for line in server.log_lines())
    finally:
        for server in servers:
            server.terminate()
