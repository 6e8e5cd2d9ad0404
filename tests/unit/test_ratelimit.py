"""The sliding-window rate limiter."""

from __future__ import annotations

from fluxbase.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0 * 900  # at a window boundary for 900 s windows

    def __call__(self) -> float:
        return self.now


def test_allows_up_to_the_limit_then_refuses_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(5, 900, clock)
    decisions = [limiter.hit("1.2.3.4") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert decisions[5].retry_after == 900


def test_keys_are_independent() -> None:
    limiter = RateLimiter(1, 60, Clock())
    assert limiter.hit("a").allowed
    assert limiter.hit("b").allowed
    assert not limiter.hit("a").allowed


def test_burst_across_a_window_boundary_is_still_limited() -> None:
    clock = Clock()
    limiter = RateLimiter(5, 900, clock)
    clock.now += 899  # the end of one window
    assert all(limiter.hit("k").allowed for _ in range(5))
    clock.now += 2  # the start of the next: the previous five still count
    assert not limiter.hit("k").allowed


def test_retry_after_is_honest() -> None:
    clock = Clock()
    limiter = RateLimiter(5, 900, clock)
    for _ in range(5):
        limiter.hit("k")
    refused = limiter.hit("k")
    clock.now += refused.retry_after - 2
    assert not limiter.hit("k").allowed
    clock.now += 3
    assert limiter.hit("k").allowed


def test_window_slides_one_hit_at_a_time() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 60, clock)
    limiter.hit("k")
    clock.now += 30
    limiter.hit("k")
    assert limiter.hit("k").retry_after == 30
    clock.now += 30  # the first hit has left the window, the second has not
    assert limiter.hit("k").allowed
    assert not limiter.hit("k").allowed


def test_old_keys_are_swept() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 60, clock)
    for i in range(100):
        limiter.hit(f"ip{i}")
    clock.now += 200
    limiter.hit("new")
    assert len(limiter._hits) == 1
