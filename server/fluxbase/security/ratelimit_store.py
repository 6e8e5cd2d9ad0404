"""Where rate-limit counts live: in this process (`memory`) or in Redis, shared by every replica.

The Redis store runs the same sliding log as `RateLimiter` in one Lua script
(atomic, timed by Redis's clock so replicas with skewed clocks agree). When
Redis does not answer within `redis_timeout`, the process keeps serving with
its own counts, logs it once, retries Redis every few seconds, and reports
the state to /ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from itertools import count
from typing import Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from fluxbase.security.ratelimit import Decision, RateLimiter

log = logging.getLogger("fluxbase.ratelimit")

KEY_PREFIX = "fluxbase:rl:"
# Where a key that just became full is announced, for limiters that decide without awaiting.
FULL_CHANNEL = "fluxbase:rl:full"
RETRY_INTERVAL = 5.0  # seconds between attempts to reach Redis again once it failed

# KEYS[1]: the log of one key; ARGV: limit, window in microseconds, a member unique to this hit,
# and a channel on which to announce "<key> <microseconds>" when this hit takes the last place
# (or ""). Returns {allowed, hits in the window after this one, microseconds until the oldest leaves}.
SLIDING_LOG = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local allowed = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  n = n + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if allowed == 1 and n == limit and ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], KEYS[1] .. ' ' .. wait)
end
return {allowed, n, wait}
"""


class LimitStore(Protocol):
    """Counts hits per (tier, key) within a window."""

    async def hit(self, tier: str, key: str, limit: int, window: float) -> Decision: ...

    async def status(self) -> tuple[str, str | None]:
        """(backend, problem): "memory" or "redis", and what is wrong, if anything."""
        ...

    def sync_limiter(self, tier: str, limit: int, window: float) -> RateLimiter:
        """A limiter for callers that cannot await (the auth handlers), counting in this store."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """Counts in this process: exact for one process, N times the limit with N processes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._limiters: dict[tuple[str, int, float], RateLimiter] = {}

    def limiter(self, tier: str, limit: int, window: float) -> RateLimiter:
        limiter = self._limiters.get((tier, limit, window))
        if limiter is None:
            limiter = self._limiters[(tier, limit, window)] = RateLimiter(limit, window, self._clock)
        return limiter

    async def hit(self, tier: str, key: str, limit: int, window: float) -> Decision:
        return self.limiter(tier, limit, window).hit(key)

    async def status(self) -> tuple[str, str | None]:
        return "memory", None

    def sync_limiter(self, tier: str, limit: int, window: float) -> RateLimiter:
        return RateLimiter(limit, window, self._clock)

    async def close(self) -> None:
        return None


class RedisStore:
    """Counts in Redis, shared by every process that names the same server; falls back to memory."""

    def __init__(self, url: str, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        # redis-py's asyncio client: maintained with Redis itself, pooled, and its Script
        # helper runs EVALSHA with a transparent EVAL when the server lost the script.
        self._client = redis_asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._script = self._client.register_script(SLIDING_LOG)
        self._timeout = timeout
        self._clock = clock
        self.fallback = MemoryStore(clock)
        self._down_until = 0.0
        self._problem: str | None = None
        self._member = f"{uuid.uuid4().hex[:12]}-"
        self._seq = count()
        self._full_until: dict[str, float] = {}  # Redis key -> when it has a place again (our clock)
        self._listener: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._problem is None

    async def hit(
        self, tier: str, key: str, limit: int, window: float, *, announce_full: bool = False
    ) -> Decision:
        if self._problem is not None and self._clock() < self._down_until:
            return await self.fallback.hit(tier, key, limit, window)
        window_us = int(window * 1_000_000)
        member = f"{self._member}{next(self._seq)}"
        channel = FULL_CHANNEL if announce_full else ""
        try:
            async with asyncio.timeout(self._timeout):
                allowed, hits, wait_us = await self._script(
                    keys=[redis_key(tier, key)], args=[limit, window_us, member, channel]
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return await self.fallback.hit(tier, key, limit, window)
        self._recovered()
        wait = max(1, math.ceil(int(wait_us) / 1_000_000))
        if int(allowed):
            return Decision(True, limit, max(0, limit - int(hits)), 0, wait)
        return Decision(False, limit, 0, wait, wait)

    async def status(self) -> tuple[str, str | None]:
        if self._problem is not None and self._clock() >= self._down_until:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._client.ping()
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            else:
                self._recovered()
        return "redis", self._problem

    def sync_limiter(self, tier: str, limit: int, window: float) -> RateLimiter:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen_for_full_keys())
        return SharedRateLimiter(self, tier, limit, window, self._clock)

    def full_for(self, tier: str, key: str) -> float:
        """Seconds until a key another process filled has a place again (0: none announced)."""
        until = self._full_until.get(redis_key(tier, key))
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._full_until[redis_key(tier, key)]
        return max(0.0, left)

    async def _listen_for_full_keys(self) -> None:
        # Every process hears when any process fills a key, within a Redis round trip, so a
        # limiter that cannot await still refuses the next attempt wherever it lands.
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(FULL_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._note_full(message["data"])
            except (RedisError, OSError) as exc:
                self._failed(exc)
            await asyncio.sleep(RETRY_INTERVAL)

    def _note_full(self, data: bytes) -> None:
        key, _, wait_us = data.decode("utf-8", "replace").rpartition(" ")
        try:
            self._full_until[key] = self._clock() + float(wait_us) / 1_000_000
        except ValueError:
            return
        if len(self._full_until) > 100_000:  # bounded: drop the ones already free
            now = self._clock()
            self._full_until = {k: v for k, v in self._full_until.items() if v > now}

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._client.aclose()

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self._clock() + RETRY_INTERVAL
        if self._problem is None:
            self._problem = "redis unreachable: rate limits are counted per process"
            log.warning(
                "rate_limit backend unavailable: Redis did not answer; counting per process until it does",
                extra={"reason": type(exc).__name__},
            )

    def _recovered(self) -> None:
        if self._problem is not None:
            self._problem = None
            log.info("rate_limit backend available again: counting in Redis")


def redis_key(tier: str, key: str) -> str:
    return f"{KEY_PREFIX}{tier}:{key}"


class SharedRateLimiter(RateLimiter):
    """A `RateLimiter` whose hits also count in Redis, for callers that cannot await.

    The caller gets an answer at once, from this process's log, from what
    Redis said about the key's previous hit here, and from what any process
    announced when it filled the key; the hit is then counted in Redis in the
    background.  Attempts that follow one another are limited across replicas
    exactly; attempts racing on several replicas within one Redis round trip
    may each pass once.
    """

    def __init__(
        self, store: RedisStore, tier: str, limit: int, window: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(limit, window, clock)
        self._store = store
        self._tier = tier
        self._shared: dict[str, tuple[float, Decision]] = {}  # key -> (when Redis said it, what)
        self._pending: set[asyncio.Task[None]] = set()

    def hit(self, key: str) -> Decision:
        local = super().hit(key)
        now = self._clock()
        announced = self._store.full_for(self._tier, key)
        if announced > 0:
            wait = max(1, math.ceil(announced))
            return Decision(False, self.limit, 0, wait, wait)
        said = self._shared.get(key)
        if said is not None:
            at, decision = said
            # Redis counted no place left until `reset` seconds after it answered.
            if decision.remaining == 0 and now < at + decision.reset:
                wait = max(1, math.ceil(at + decision.reset - now))
                local = Decision(False, self.limit, 0, wait, wait)
            elif now >= at + self.window:
                del self._shared[key]
        if local.allowed:
            self._count_in_store(key)
        return local

    def _count_in_store(self, key: str) -> None:
        async def count_hit() -> None:
            decision = await self._store.hit(self._tier, key, self.limit, self.window, announce_full=True)
            if self._store.available:
                self._shared[key] = (self._clock(), decision)

        try:
            task = asyncio.get_running_loop().create_task(count_hit())
        except RuntimeError:  # no loop (a synchronous test): nothing to share with
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _sweep(self, now: float) -> None:
        super()._sweep(now)
        self._shared = {k: v for k, v in self._shared.items() if now < v[0] + self.window}


def make_store(backend: str, redis_url: str | None, timeout: float) -> LimitStore:
    if backend == "redis":
        if not redis_url:
            raise ValueError("the redis rate-limit backend needs security.rate_limit.redis_url")
        return RedisStore(redis_url, timeout)
    return MemoryStore()
