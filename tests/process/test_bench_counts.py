"""What `make bench-rest` sends, every request of it, is counted: rate limiter, access log, metrics.

The benchmark runs Fluxbase with production settings (tests/perf/bench_rest.py): rate limiting
on with budgets above the load, the JSON access log, metrics. A faster request path must not
get there by skipping any of them, so this sends each benchmark scenario, exactly as wrk does,
to the same `fluxbase serve --workers 2` and counts.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections import Counter

import psycopg
import pytest

from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, ROOT, PostgresServer

sys.path.insert(0, str(ROOT / "tests" / "perf"))
import bench_rest  # the benchmark's own scenarios, headers and server settings

REQUESTS_PER_SCENARIO = 25
WORKERS = 2


@pytest.fixture(scope="module")
def bench_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("bench")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((ROOT / "tests" / "perf" / "bench_schema.sql").read_text())  # type: ignore[arg-type]
    return dsn


def send(url: str, scenario: bench_rest.Scenario, token: str, todo_id: int) -> tuple[int, dict[str, str]]:
    """One request as wrk sends it (tests/perf/request.lua): apikey, Bearer, body, Prefer."""
    headers = {"apikey": api_key(JWT_SECRET, "anon"), "Authorization": f"Bearer {token}"}
    body = scenario.body_for(todo_id).encode() if scenario.body else None
    if body:
        headers["Content-Type"] = "application/json"
    if scenario.prefer:
        headers["Prefer"] = scenario.prefer
    request = urllib.request.Request(
        scenario.url(url, todo_id), data=body, headers=headers, method=scenario.method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_every_benchmark_request_is_rate_limited_logged_and_counted(bench_dsn: str) -> None:
    with psycopg.connect(bench_dsn) as conn:
        row = conn.execute(
            "select min(id) from public.todos where user_id = %s", (bench_rest.USER,)
        ).fetchone()
    assert row is not None
    todo_id = int(row[0])
    token = bench_rest.user_token(bench_rest.USER)
    limit = int(bench_rest.RATE_LIMIT)
    server = bench_rest.start_fluxbase(bench_dsn, WORKERS, pool_size=2)
    spent: list[int] = []
    try:
        for scenario in bench_rest.SCENARIOS:
            for _ in range(REQUESTS_PER_SCENARIO):
                status, headers = send(server.url, scenario, token, todo_id)
                assert status == scenario.status, (scenario.key, status)
                assert int(headers["X-RateLimit-Limit"]) == limit
                spent.append(limit - int(headers["X-RateLimit-Remaining"]))
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    finally:
        assert server.terminate() == 0

    total = REQUESTS_PER_SCENARIO * len(bench_rest.SCENARIOS)
    # Rate limiter: every request spent one place of the user's budget in the worker that served
    # it (memory store, per process): each worker's counts run 1, 2, 3, ... without a gap.
    per_count = Counter(spent)
    assert sum(per_count.values()) == total
    assert set(per_count) == set(range(1, max(per_count) + 1))
    counts = [per_count[n] for n in range(1, max(per_count) + 1)]
    assert counts == sorted(counts, reverse=True) and counts[0] <= WORKERS

    # Access log: one line per request, with its path (no query string) and the status sent.
    # Metrics: every request under its route template, summed over the workers' files.
    entries = [json.loads(line) for line in server.log_lines() if line.strip()]
    logged = Counter(
        (e["method"], e["path"], e["status"]) for e in entries if e.get("message") == "HTTP request"
    )
    sent = Counter((s.method, s.path.split("?")[0], s.status) for s in bench_rest.SCENARIOS)
    for (method, path, status), scenarios in sent.items():
        assert logged[(method, path, status)] == scenarios * REQUESTS_PER_SCENARIO, (method, path)
        template = re.sub(r"^/rest/v1/(rpc/)?[^/]+$", r"/rest/v1/\1{name}", path)
        labels = f'method="{method}",path="{re.escape(template)}",status="{status}"'
        pattern = rf"fluxbase_http_requests_total\{{{labels}\}} (\S+)"
        counted = sum(float(v) for v in re.findall(pattern, metrics))
        assert counted == scenarios * REQUESTS_PER_SCENARIO, (method, template, counted)
