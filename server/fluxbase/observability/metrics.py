"""Prometheus metrics under the runbook's names, correct across worker processes.

With several workers, prometheus_client's multiprocess mode keeps each
process's values in files under PROMETHEUS_MULTIPROC_DIR, which must be set
before this module is imported (`fluxbase serve` does so); /metrics, served
by any worker, adds them up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
STARTED_AT = float(os.environ.get("FLUXBASE_STARTED_AT", time.time()))

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_requests_total = Counter(
    "fluxbase_http_requests_total", "HTTP requests served", ("method", "path", "status")
)
http_request_duration_seconds = Histogram(
    "fluxbase_http_request_duration_seconds",
    "HTTP request latency",
    ("method", "path"),
    buckets=_LATENCY_BUCKETS,
)
db_queries_total = Counter("fluxbase_db_queries_total", "Database statements run", ("status",))
db_query_duration_seconds = Histogram(
    "fluxbase_db_query_duration_seconds", "Database statement latency", buckets=_LATENCY_BUCKETS
)
DB_CONNECTIONS = "fluxbase_db_connections"
DB_CONNECTIONS_HELP = "Database pool connections by state (summed over workers)"
# (idle, total) of each pool this process serves through; read when /metrics is scraped.
PoolSize = Callable[[], tuple[int, int]]
_pools: dict[int, PoolSize] = {}


def watch_pool(size: PoolSize) -> int:
    """Counts a pool in fluxbase_db_connections from now on; returns the handle to unwatch it."""
    handle = id(size)
    _pools[handle] = size
    return handle


def unwatch_pool(handle: int) -> None:
    _pools.pop(handle, None)


def _pool_states() -> tuple[int, int]:
    """(idle, in use) over every watched pool."""
    idle = total = 0
    for size in list(_pools.values()):
        pool_idle, pool_total = size()
        idle += pool_idle
        total += pool_total
    return idle, total - idle


class PoolCollector(Collector):
    """fluxbase_db_connections sampled at scrape time: a request pays nothing for it."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        idle, in_use = _pool_states()
        family = GaugeMetricFamily(DB_CONNECTIONS, DB_CONNECTIONS_HELP, labels=("state",))
        family.add_metric(("idle",), idle)
        family.add_metric(("in_use",), in_use)
        yield family


if MULTIPROCESS:
    # Files summed by whichever worker is scraped: each worker writes its own state there when
    # it is scraped itself (render) and every POOL_SAMPLE_SECONDS (sample_pools).
    db_connections: Gauge | None = Gauge(
        DB_CONNECTIONS, DB_CONNECTIONS_HELP, ("state",), multiprocess_mode="livesum"
    )
else:
    db_connections = None
    REGISTRY.register(PoolCollector())
POOL_SAMPLE_SECONDS = 1.0
realtime_connections = Gauge(
    "fluxbase_realtime_connections",
    "Open realtime WebSocket connections",
    multiprocess_mode="livesum",
)
realtime_listener_drops_total = Counter(
    "fluxbase_realtime_listener_drops_total", "Times the realtime LISTEN connection was lost"
)
realtime_changes_total = Counter("fluxbase_realtime_changes_total", "Change-log rows read by the listener")
realtime_slow_clients_total = Counter(
    "fluxbase_realtime_slow_clients_total", "Realtime sockets closed because they did not read"
)
auth_attempts_total = Counter(
    "fluxbase_auth_attempts_total", "Sign-in and token attempts by outcome", ("kind", "outcome")
)
rate_limit_hits_total = Counter(
    "fluxbase_rate_limit_hits_total",
    "Requests refused by a rate limit, by tier (ip, user, api_key, auth_*)",
    ("tier",),
)
system_uptime_seconds = Gauge(
    "fluxbase_system_uptime_seconds", "Seconds since the server started", multiprocess_mode="max"
)


# Looking a labelled child up takes a lock and builds a key on every call; the hot
# path keeps the children it uses. Label sets here are small and bounded (route
# templates, methods, status codes, a few fixed words).
db_queries_ok = db_queries_total.labels("ok")
db_queries_error = db_queries_total.labels("error")
_http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def http_request_observed(method: str, path: str, status: int, seconds: float) -> None:
    """Counts one request and its latency under its route template."""
    key = (method, path, status)
    children = _http_children.get(key)
    if children is None:
        children = (
            http_requests_total.labels(method, path, str(status)),
            http_request_duration_seconds.labels(method, path),
        )
        _http_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def sample_pools() -> None:
    """With several workers: writes this worker's pool state to its gauge file."""
    if db_connections is not None:
        idle, in_use = _pool_states()
        db_connections.labels("idle").set(idle)
        db_connections.labels("in_use").set(in_use)


def registry() -> CollectorRegistry:
    """What /metrics shows: this process's registry, or every worker's values added up."""
    system_uptime_seconds.set(time.time() - STARTED_AT)
    if MULTIPROCESS:
        sample_pools()
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return combined
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drops a dead worker's live gauges so they no longer count."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
