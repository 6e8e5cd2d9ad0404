"""The last hour of the server's own metrics, for the dashboard's overview charts.

A sampler reads the same registry /metrics renders (every worker's values
added up) every `interval` seconds into a ring buffer; the admin API turns
consecutive samples into rates and latency percentiles.  Each worker keeps
its own ring, and since the registry it reads is the sum over workers, any
worker answers for the whole server.  Nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Metric

from fluxbase.observability import metrics

WINDOW_SECONDS = 3600.0
DEFAULT_INTERVAL = 10.0
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Sample:
    """Cumulative counters and current gauges at one moment."""

    at: float
    requests: float
    errors: float
    # Cumulative request counts per latency bucket's upper bound (le), +Inf last.
    buckets: tuple[tuple[float, float], ...]
    db_in_use: float
    db_idle: float
    realtime: float


def _families(collected: Iterable[Metric]) -> dict[str, Metric]:
    return {family.name: family for family in collected}


def take_sample(now: float | None = None) -> Sample:
    """Reads the registry once (the same sums /metrics shows)."""
    families = _families(metrics.registry().collect())
    requests = errors = 0.0
    # prometheus_client names a counter's family without _total; its multiprocess reader may not.
    family = families.get("fluxbase_http_requests") or families.get("fluxbase_http_requests_total")
    if family is not None:
        for s in family.samples:
            if s.name.endswith("_total"):
                requests += s.value
                if s.labels.get("status", "").startswith("5"):
                    errors += s.value
    by_bound: dict[float, float] = {}
    if (family := families.get("fluxbase_http_request_duration_seconds")) is not None:
        for s in family.samples:
            if s.name.endswith("_bucket"):
                bound = float(s.labels["le"])
                by_bound[bound] = by_bound.get(bound, 0.0) + s.value
    db_in_use = db_idle = realtime = 0.0
    if (family := families.get("fluxbase_db_connections")) is not None:
        for s in family.samples:
            if s.labels.get("state") == "in_use":
                db_in_use += s.value
            elif s.labels.get("state") == "idle":
                db_idle += s.value
    if (family := families.get("fluxbase_realtime_connections")) is not None:
        realtime = sum(s.value for s in family.samples)
    return Sample(
        at=time.time() if now is None else now,
        requests=requests,
        errors=errors,
        buckets=tuple(sorted(by_bound.items())),
        db_in_use=db_in_use,
        db_idle=db_idle,
        realtime=realtime,
    )


def quantile(buckets: tuple[tuple[float, float], ...], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated in its bucket (Prometheus's way)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the largest bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _difference(newer: Sample, older: Sample) -> tuple[tuple[float, float], ...]:
    before = dict(older.buckets)
    # A counter that went down means the process restarted: the newer sample stands alone.
    return tuple((bound, max(count - before.get(bound, 0.0), 0.0)) for bound, count in newer.buckets)


def point(newer: Sample, older: Sample) -> dict[str, Any]:
    """One chart point: the rates and percentiles between two samples, the gauges at the newer."""
    seconds = max(newer.at - older.at, 1e-6)
    reset = newer.requests < older.requests
    requests = newer.requests if reset else newer.requests - older.requests
    errors = newer.errors if reset else max(newer.errors - older.errors, 0.0)
    window = newer.buckets if reset else _difference(newer, older)
    latency = {f"p{int(q * 100)}_ms": quantile(window, q) for q in QUANTILES}
    return {
        "at": round(newer.at, 3),
        "requests_per_second": round(requests / seconds, 4),
        "errors_per_second": round(errors / seconds, 4),
        "requests": requests,
        "errors": errors,
        **{k: None if v is None else round(v * 1000, 3) for k, v in latency.items()},
        "db_connections_in_use": newer.db_in_use,
        "db_connections_idle": newer.db_idle,
        "realtime_connections": newer.realtime,
    }


@dataclass
class MetricsHistory:
    """A ring of samples covering WINDOW_SECONDS, filled by `run` every `interval` seconds."""

    interval: float = DEFAULT_INTERVAL
    samples: deque[Sample] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=int(WINDOW_SECONDS / self.interval) + 1)

    def record(self, sample: Sample | None = None) -> None:
        self.samples.append(sample or take_sample())

    def series(self, now: Sample | None = None) -> list[dict[str, Any]]:
        """Points between consecutive samples, the last one ending at `now` (read at call time)."""
        current = now or take_sample()
        ring = [s for s in self.samples if current.at - s.at <= WINDOW_SECONDS]
        chain = [*ring, current] if not ring or current.at > ring[-1].at else ring
        return [point(b, a) for a, b in itertools.pairwise(chain)]

    async def run(self) -> None:
        while True:
            self.record()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="metrics-history")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
