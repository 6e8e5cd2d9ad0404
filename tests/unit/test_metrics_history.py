"""observability/history.py: percentiles from histogram buckets, rates between samples, the hour-long ring."""

from __future__ import annotations

import math

from fluxbase.observability.history import WINDOW_SECONDS, MetricsHistory, Sample, point, quantile

INF = math.inf


def sample(at: float, requests: float, errors: float = 0, buckets: tuple = (), realtime: float = 0) -> Sample:
    return Sample(at, requests, errors, buckets, db_in_use=1, db_idle=4, realtime=realtime)


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 requests: 50 under 10 ms, 40 more under 100 ms, 10 beyond.
    buckets = ((0.01, 50.0), (0.1, 90.0), (INF, 100.0))
    assert quantile(buckets, 0.5) == 0.01
    assert math.isclose(quantile(buckets, 0.75) or 0, 0.01 + 0.09 * 25 / 40)
    assert quantile(buckets, 0.99) == 0.1  # beyond the last finite bucket: its bound
    assert quantile((), 0.5) is None
    assert quantile(((0.01, 0.0), (INF, 0.0)), 0.5) is None


def test_point_turns_counters_into_rates_and_window_percentiles() -> None:
    older = sample(100, 1000, 10, ((0.01, 900.0), (0.1, 1000.0), (INF, 1000.0)))
    # In the 10 s between: 100 requests, 5 of them 5xx, all slow (10-100 ms).
    newer = sample(110, 1100, 15, ((0.01, 900.0), (0.1, 1100.0), (INF, 1100.0)), realtime=3)
    p = point(newer, older)
    assert p["requests_per_second"] == 10 and p["errors_per_second"] == 0.5
    assert p["p50_ms"] is not None and 10 < p["p50_ms"] < 100  # the window's, not the lifetime's (fast)
    assert p["realtime_connections"] == 3 and p["db_connections_idle"] == 4


def test_a_restart_starts_the_counts_again() -> None:
    older = sample(100, 5000, 50, ((0.01, 5000.0), (INF, 5000.0)))
    newer = sample(110, 20, 0, ((0.01, 20.0), (INF, 20.0)))
    p = point(newer, older)
    assert p["requests"] == 20 and p["errors"] == 0 and p["requests_per_second"] == 2


def test_series_covers_the_last_hour_and_ends_now() -> None:
    history = MetricsHistory(interval=10)
    assert history.samples.maxlen == int(WINDOW_SECONDS / 10) + 1
    for i in range(400):  # more than an hour of samples: the oldest fall out
        history.record(sample(i * 10.0, i * 10.0))
    now = sample(4000.0, 4000.0)
    series = history.series(now)
    assert len(series) == 360  # an hour of 10 s steps, the last ending now
    assert series[-1]["at"] == 4000.0
    assert all(p["requests_per_second"] == 1 for p in series)
    assert series[0]["at"] >= 4000.0 - WINDOW_SECONDS


def test_series_without_samples_has_no_points_but_no_error() -> None:
    assert MetricsHistory().series(sample(1.0, 0)) == []
