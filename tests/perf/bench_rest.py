"""The data API benchmark (`make bench`): Fluxbase next to a minimal aiohttp + asyncpg baseline, under wrk.

Starts a throwaway PostgreSQL (reachable over its Unix socket and over TCP on
127.0.0.1), migrates, loads tests/perf/bench_schema.sql, then for each
transport and worker count runs `fluxbase serve` with production settings
(rate limiting on, JSON access log, metrics) and baseline_server.py side by
side, checks they answer the same bodies, times each scenario on both with
wrk over loopback and writes the tables into docs/BENCHMARKS.md. With
`--profile LABEL`, py-spy samples the 1-worker Fluxbase during each
scenario's first timed round and the top functions by self time are written
into their own generated section.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from generated_section import write_generated_section  # noqa: E402

from fluxbase.db.embedded import EmbeddedPostgres  # noqa: E402
from fluxbase.db.migrate import Migrator  # noqa: E402
from fluxbase.db.pool import authenticator_dsn  # noqa: E402
from fluxbase.security.api_keys import api_key  # noqa: E402
from harness import (  # noqa: E402 - the test harness is found through the path set above
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    ServerProcess,
    free_port,
    server_env,
    start_server,
    stop_local_cluster,
    user_token,
)

USER = "00000000-0000-0000-0000-000000000001"
OTHER_USER = "00000000-0000-0000-0000-000000000002"
REPORT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin (written by tests/perf/bench_rest.py) -->", "<!-- bench:end -->"
GET_RATIO_GOAL = 0.70
P99_GOAL_MS = 25.0
AUDIT_BEGIN = "<!-- bench-audit:begin (written by tests/perf/bench_rest.py --mode audit) -->"
AUDIT_END = "<!-- bench-audit:end -->"
AUDIT_RATIO_GOAL = 0.75
# The share of the baseline's throughput each scenario must reach (issue 14); others are reported.
RATIO_GOALS = {"get": 0.85, "embed": 0.75, "post": 0.85}
P99_GOAL_FACTOR = 1.3  # Fluxbase's p99 at most this times the baseline's, per scenario
# Rate limiting stays on, through the same code path, with budgets far above what wrk offers.
RATE_LIMIT = "100000000"
TRANSPORTS = ("unix", "tcp")


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    method: str
    path: str  # {id} is user 1's first todo
    body: str = ""  # {id} as in path
    prefer: str = ""
    status: int = 200

    def url(self, base: str, todo_id: int) -> str:
        return base + self.path.format(id=todo_id)

    def body_for(self, todo_id: int) -> str:
        return self.body.replace("{id}", str(todo_id))


SCENARIOS = (
    Scenario("get", "GET one row by primary key (RLS)", "GET", "/rest/v1/todos?id=eq.{id}"),
    Scenario(
        "embed",
        "GET one row with one embedded relation (RLS on both)",
        "GET",
        "/rest/v1/todos?select=id,title,done,projects(id,name)&id=eq.{id}",
    ),
    Scenario(
        "post",
        "POST one row, return=representation (RLS check)",
        "POST",
        "/rest/v1/todos",
        body='{"title": "written by wrk", "project_id": 1}',
        prefer="return=representation",
        status=201,
    ),
    Scenario(
        "rpc",
        "RPC: a stable SQL function reading one row (RLS)",
        "POST",
        "/rest/v1/rpc/todo_title",
        body='{"todo_id": {id}}',
    ),
    Scenario("user", "The signed-in user (auth, service_role reads the account)", "GET", "/auth/v1/user"),
)


# --mode audit: the same POST into an untracked table and into its tracked twin, one server.
POST = SCENARIOS[2]
POST_TRACKED = Scenario(
    "post_tracked",
    "POST one row into a table tracked by audit.enable_tracking",
    "POST",
    "/rest/v1/tracked_todos",
    body=POST.body,
    prefer=POST.prefer,
)


@dataclass(frozen=True)
class Timing:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    # CPU time per request (user + system), of the server's processes and of PostgreSQL's:
    # what a request costs, less sensitive than req/s to what else the machine runs.
    server_cpu_us: float = 0.0
    database_cpu_us: float = 0.0


@dataclass
class Run:
    transport: str
    workers: int
    results: dict[tuple[str, str], Timing] = field(default_factory=dict)  # (scenario, server) -> timing


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims to: a server failed or answered wrongly."""


def request_headers(scenario: Scenario, token: str) -> dict[str, str]:
    headers = {"apikey": api_key(JWT_SECRET, "anon"), "Authorization": f"Bearer {token}"}
    if scenario.body:
        headers["Content-Type"] = "application/json"
    if scenario.prefer:
        headers["Prefer"] = scenario.prefer
    return headers


def call(url: str, scenario: Scenario, token: str, todo_id: int) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=scenario.body_for(todo_id).encode() if scenario.body else None,
        headers=request_headers(scenario, token),
        method=scenario.method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --- the servers -----------------------------------------------------------------------------


def wait_for_lines(read_lines: object, count: int, what: str, within: float = 60) -> None:
    """Every worker has said it listens: SO_REUSEPORT would otherwise send all load to the first."""
    assert callable(read_lines)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        # Counted per occurrence: forked workers writing at once can share a line.
        if sum(line.count("listening") for line in read_lines()) >= count:
            return
        time.sleep(0.1)
    raise BenchError(f"{what}: not all {count} workers listen after {within} s")


def start_fluxbase(dsn: str, workers: int, pool_size: int) -> ServerProcess:
    """Production settings: rate limits on (memory store, budgets above the load), JSON access log."""
    env = server_env(
        dsn,
        FLUXBASE_DATABASE_MIN_CONNECTIONS=str(pool_size),
        FLUXBASE_DATABASE_MAX_CONNECTIONS=str(pool_size),
        FLUXBASE_SECURITY_RATE_LIMIT_ENABLED="true",
        FLUXBASE_SECURITY_RATE_LIMIT_REQUESTS_PER_MINUTE=RATE_LIMIT,
        FLUXBASE_SECURITY_RATE_LIMIT_USER_REQUESTS_PER_MINUTE=RATE_LIMIT,
        FLUXBASE_SECURITY_RATE_LIMIT_API_KEY_REQUESTS_PER_MINUTE=RATE_LIMIT,
        FLUXBASE_LOG_FORMAT="json",
        FLUXBASE_LOG_LEVEL="info",
    )
    server = start_server(env, "serve", "--no-migrate", "--workers", str(workers))
    wait_for_lines(server.log_lines, workers, "fluxbase")
    return server


@dataclass
class BaselineProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def start_baseline(dsn: str, workers: int, pool_size: int, log_dir: Path) -> BaselineProcess:
    port = free_port()
    log_path = log_dir / f"baseline-{workers}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PERF / "baseline_server.py"),
                f"--port={port}",
                f"--dsn={authenticator_dsn(dsn, AUTHENTICATOR_PASSWORD)}",
                f"--jwt-secret={JWT_SECRET}",
                f"--workers={workers}",
                f"--pool-size={pool_size}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    baseline = BaselineProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for_lines(baseline.log_lines, workers, "baseline")
    except BenchError:
        baseline.terminate()
        raise BenchError("baseline did not start:\n" + "\n".join(baseline.log_lines())) from None
    return baseline


# --- checks and timing -----------------------------------------------------------------------


def verify_same_answers(
    servers: dict[str, str], scenarios: list[Scenario], todo_id: int, other_todo_id: int, token: str
) -> None:
    """Both servers answer each scenario alike, so the baseline really does the same work."""
    for scenario in scenarios:
        answers = {
            name: call(scenario.url(url, todo_id), scenario, token, todo_id) for name, url in servers.items()
        }
        for name, (status, body) in answers.items():
            if status != scenario.status:
                raise BenchError(f"{scenario.key}: {name} answered {status}: {body[:500]!r}")
        fluxbase_body, baseline_body = answers["fluxbase"][1], answers["baseline"][1]
        if scenario.key == "user":
            # The same account; Fluxbase re-encodes the JSON, so compare values, not bytes.
            same = json.loads(fluxbase_body) == json.loads(baseline_body)
        elif scenario.key == "post":
            # Each insert gets its own id; everything else, the RLS default user_id included, matches.
            rows = {name: json.loads(body) for name, (_, body) in answers.items()}
            for row_list in rows.values():
                if len(row_list) != 1 or row_list[0]["user_id"] != USER:
                    raise BenchError(f"post: unexpected representation {row_list}")
                row_list[0].pop("id")
            same = rows["fluxbase"] == rows["baseline"]
        else:
            same = fluxbase_body == baseline_body
        if not same:
            raise BenchError(f"{scenario.key}: bodies differ:\n {fluxbase_body!r}\n {baseline_body!r}")
    # RLS is on in both: another user's row is invisible, not an error.
    hidden = SCENARIOS[0]
    for name, url in servers.items():
        status, body = call(hidden.url(url, other_todo_id), hidden, token, other_todo_id)
        if (status, json.loads(body)) != (200, []):
            raise BenchError(f"{name} let user 1 read user 2's todo: {status} {body!r}")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and its children (a server's workers, PostgreSQL's backends).

    Live children are read one by one; children that ended (a backend, an autovacuum worker)
    are in the parent's cutime/cstime once it has waited for them, so nothing is lost.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        if pid == root:  # utime, stime, and the ended children's cutime, cstime
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        elif int(fields[1]) == root:  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


@dataclass(frozen=True)
class Meters:
    """Whose CPU a run is charged: the server under test and the database cluster."""

    server_pid: int
    database_pid: int


def run_wrk(
    url: str,
    scenario: Scenario,
    token: str,
    todo_id: int,
    seconds: int,
    options: argparse.Namespace,
    meters: Meters | None = None,
) -> Timing:
    env = {
        **os.environ,
        "BENCH_METHOD": scenario.method,
        "BENCH_APIKEY": api_key(JWT_SECRET, "anon"),
        "BENCH_TOKEN": token,
        "BENCH_BODY": scenario.body_for(todo_id),
        "BENCH_PREFER": scenario.prefer,
    }
    command = [
        "wrk",
        f"--threads={options.threads}",
        f"--connections={options.connections}",
        f"--duration={seconds}s",
        "--latency",
        f"--script={PERF / 'request.lua'}",
        url,
    ]
    before = (cpu_seconds(meters.server_pid), cpu_seconds(meters.database_pid)) if meters else (0.0, 0.0)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    after = (cpu_seconds(meters.server_pid), cpu_seconds(meters.database_pid)) if meters else (0.0, 0.0)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    summary = json.loads(match.group(1))
    if summary["non_2xx"] or summary["socket_errors"]:
        raise BenchError(
            f"{scenario.key} at {url}: {summary['non_2xx']} non-2xx responses, "
            f"{summary['socket_errors']} socket errors:\n{result.stdout}"
        )
    return Timing(
        requests_per_second=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        requests=summary["requests"],
        server_cpu_us=(after[0] - before[0]) * 1e6 / max(1, summary["requests"]),
        database_cpu_us=(after[1] - before[1]) * 1e6 / max(1, summary["requests"]),
    )


@contextmanager
def profiled(pid: int, seconds: int, output: Path) -> Iterator[None]:
    """py-spy samples the Fluxbase process for the timed run (--profile): where the time goes."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw", "--function",
        "--rate", "250",
    ]  # fmt: skip
    process = subprocess.Popen(
        [*command, "--output", str(output), "--nonblocking"], stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.wait(timeout=seconds + 60)


def top_frames(collapsed: Path, count: int = 15) -> list[tuple[float, str]]:
    """Self time: the share of busy samples whose innermost Python frame is each function.

    py-spy's raw format is one collapsed stack per line ("outer;...;inner count"); samples in
    which the worker waited for the event loop's poll are not recorded (no --idle), so the
    shares are of the time the worker was busy.
    """
    totals: dict[str, int] = {}
    samples = 0
    if not collapsed.exists():
        return []
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples += int(number)
        leaf = _short_frame(stack.split(";")[-1])
        totals[leaf] = totals.get(leaf, 0) + int(number)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [(100 * n / samples, frame) for frame, n in ranked] if samples else []


def _short_frame(frame: str) -> str:
    """`handle (fluxbase/rest/handlers.py:339)` from a frame with an absolute path."""
    match = re.match(r"^(.*) \((.*?):(\d+)\)$", frame)
    if match is None:
        return frame
    name, path, line = match.groups()
    for marker in ("/site-packages/", "/server/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path}:{line})"


# --- the report ------------------------------------------------------------------------------


def machine_description(dsn: str) -> list[str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"^Model name:\s*(.*)$", lscpu, re.MULTILINE)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("show server_version").fetchone()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    wrk_version = (wrk.stdout or wrk.stderr).split("[")[0].strip()
    return [
        f"- CPUs: {os.cpu_count()} (`nproc`), "
        f"{model.group(1).strip() if model else 'unknown model'} (`lscpu`)",
        f"- PostgreSQL {row[0] if row else '?'} (throwaway cluster, default settings; its Unix socket, "
        "or TCP to 127.0.0.1 with SCRAM)",
        f"- Python {platform.python_version()}, {wrk_version}, Linux {platform.release()}",
    ]


def load_line(load: str) -> str:
    return (
        f"- load average (1 min) before and after: {load}; anything else running on the machine "
        "takes CPU from these numbers"
    )


def report(runs: list[Run], machine: list[str], load: str, options: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        f"Measured {now} with `make bench-rest`: wrk with {options.threads} threads and "
        f"{options.connections} connections over loopback; per scenario and server a "
        f"{options.warmup} s warm-up, then {options.rounds} runs of {options.duration} s alternating "
        "between the servers; the tables show the median run. Every server worker has a pool of "
        f"{options.pool_size} database connections. Fluxbase runs with rate limiting on (memory "
        f"store, every budget {int(RATE_LIMIT):,} per minute), the JSON access log and metrics. "
        "wrk, both servers and PostgreSQL share the machine:",
        "",
        *machine,
        load_line(load),
        "",
    ]
    verdicts = []
    for scenario in SCENARIOS:
        measured = [run for run in runs if (scenario.key, "fluxbase") in run.results]
        if not measured:
            continue
        lines += [
            f"### {scenario.title}",
            "",
            f"`{scenario.method} {scenario.path.format(id='<id>')}`",
            "",
            "| database over | workers | Fluxbase req/s | baseline req/s | ratio "
            "| Fluxbase p50 / p90 / p99 ms | baseline p50 / p90 / p99 ms "
            "| CPU us per request, server + PostgreSQL: Fluxbase | baseline |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in measured:
            ours, base = run.results[(scenario.key, "fluxbase")], run.results[(scenario.key, "baseline")]
            ratio = ours.requests_per_second / base.requests_per_second
            lines.append(
                f"| {run.transport} | {run.workers} | {ours.requests_per_second:,.0f} "
                f"| {base.requests_per_second:,.0f} | {ratio:.0%} "
                f"| {ours.p50_ms:.1f} / {ours.p90_ms:.1f} / {ours.p99_ms:.1f} "
                f"| {base.p50_ms:.1f} / {base.p90_ms:.1f} / {base.p99_ms:.1f} "
                f"| {ours.server_cpu_us:,.0f} + {ours.database_cpu_us:,.0f} "
                f"| {base.server_cpu_us:,.0f} + {base.database_cpu_us:,.0f} |"
            )
            where = f"{scenario.key}, {run.transport}, {run.workers} worker(s)"
            goal = RATIO_GOALS.get(scenario.key)
            if goal is not None:
                met = "met" if ratio >= goal else "**missed**"
                verdicts.append(f"- throughput >= {goal:.0%} of the baseline, {where}: {ratio:.1%}, {met}.")
            limit = P99_GOAL_FACTOR * base.p99_ms
            met = "met" if ours.p99_ms <= limit else "**missed**"
            verdicts.append(
                f"- p99 <= {P99_GOAL_FACTOR}x the baseline's at {options.connections} connections, {where}: "
                f"{ours.p99_ms:.1f} ms against {limit:.1f} ms, {met}."
            )
        lines.append("")
    lines += ["### Goals", "", *verdicts, "", END]
    return "\n".join(lines)


def write_report(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replaces the generated section; what is written around it (notes, profiles) stays."""
    write_generated_section(REPORT, section, begin, end)


def profile_markers(label: str) -> tuple[str, str]:
    return (
        f"<!-- bench-profile-{label}:begin (written by tests/perf/bench_rest.py --profile {label}) -->",
        f"<!-- bench-profile-{label}:end -->",
    )


def profile_report(
    label: str, profiles: dict[str, list[tuple[float, str]]], machine: list[str], load: str
) -> str:
    begin, end = profile_markers(label)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "server"], capture_output=True, text=True, cwd=ROOT
    )
    state = f"`{commit}`" + (" plus uncommitted changes under server/" if dirty.stdout.strip() else "")
    lines = [
        begin,
        f"Profile `{label}`, measured {now} at commit {state}: `py-spy record --rate 250 --function` "
        "on the 1-worker Fluxbase (database over its Unix socket) during each scenario's first timed "
        "round; the share of the worker's busy samples whose innermost Python frame is the function "
        "(self time).",
        "",
        *machine,
        load_line(load),
        "",
    ]
    for key, frames in profiles.items():
        lines += [f"#### {key}", "", "| self | function |", "|---:|---|"]
        lines += [f"| {share:.1f}% | `{frame}` |" for share, frame in frames]
        lines.append("")
    lines.append(end)
    return "\n".join(lines)


def write_section(section: str, begin: str, end: str) -> None:
    write_generated_section(REPORT, section, begin, end)


# --- the audit trail's write overhead ---------------------------------------------------------


def trail_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from audit.record_changes").fetchone()
    return int(row[0]) if row else 0


def verify_tracking(dsn: str, url: str, token: str) -> None:
    """The twin records each write with its actor, the plain table records nothing."""
    for scenario, expected in ((POST, 0), (POST_TRACKED, 1)):
        before = trail_rows(dsn)
        status, body = call(scenario.url(url, 0), scenario, token)
        if status != 201:
            raise BenchError(f"{scenario.key}: answered {status}: {body[:500]!r}")
        if trail_rows(dsn) - before != expected:
            raise BenchError(f"{scenario.key}: expected {expected} new trail row(s)")
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select actor_id::text from audit.record_changes order by id desc limit 1"
        ).fetchone()
    if row is None or row[0] != USER:
        raise BenchError(f"the trail names {row} as the writer, not {USER}")


def measure_audit(dsn: str, options: argparse.Namespace) -> dict[str, Timing]:
    """POST into the plain and the tracked table on one server, in alternating rounds."""
    token = user_token(USER)
    server = start_fluxbase(dsn, 1, options.pool_size)
    try:
        verify_tracking(dsn, server.url, token)
        timings: dict[str, list[Timing]] = {POST.key: [], POST_TRACKED.key: []}
        for scenario in (POST, POST_TRACKED):
            run_wrk(scenario.url(server.url, 0), scenario, token, options.warmup, options)
        for round_number in range(options.rounds):
            order = (POST, POST_TRACKED) if round_number % 2 else (POST_TRACKED, POST)
            for scenario in order:
                url = scenario.url(server.url, 0)
                timings[scenario.key].append(run_wrk(url, scenario, token, options.duration, options))
        result = {key: median_timing(measured) for key, measured in timings.items()}
        for key, measured in timings.items():
            print(
                f"  {key:12} {result[key].requests_per_second:8,.0f} req/s  p99 {result[key].p99_ms:5.1f} ms"
                "  (rounds: " + ", ".join(f"{t.requests_per_second:,.0f}" for t in measured) + ")",
                flush=True,
            )
        return result
    finally:
        server.terminate()


def audit_report(
    result: dict[str, Timing], machine: list[str], load: str, rows: int, options: argparse.Namespace
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    plain, tracked = result[POST.key], result[POST_TRACKED.key]
    ratio = tracked.requests_per_second / plain.requests_per_second
    met = "met" if ratio >= AUDIT_RATIO_GOAL else "**missed**"
    lines = [
        AUDIT_BEGIN,
        f"Measured {now} with `make bench-audit` (part of `make bench`): one `fluxbase serve` worker, "
        f"wrk with {options.threads} threads and {options.connections} connections; a {options.warmup} s "
        f"warm-up per table, then {options.rounds} runs of {options.duration} s alternating between "
        f"the tables; the median run. The tracked table's trail held {rows:,} rows at the end:",
        "",
        *machine,
        f"- load average (1 min) before and after: {load}",
        "",
        f"`POST /rest/v1/todos` and `POST /rest/v1/tracked_todos`, `{POST.body}`, `Prefer: {POST.prefer}`",
        "",
        "| table | req/s | p50 / p90 / p99 ms |",
        "|---|---:|---:|",
    ]
    for name, timing in (("todos (untracked)", plain), ("tracked_todos (audit trigger)", tracked)):
        lines.append(
            f"| {name} | {timing.requests_per_second:,.0f} "
            f"| {timing.p50_ms:.1f} / {timing.p90_ms:.1f} / {timing.p99_ms:.1f} |"
        )
    lines += [
        "",
        f"- Tracked writes at >= {AUDIT_RATIO_GOAL:.0%} of untracked ones: {ratio:.1%}, {met}.",
        "",
        AUDIT_END,
    ]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def measure(
    dsn: str,
    database_pid: int,
    transport: str,
    workers: int,
    ids: tuple[int, int],
    options: argparse.Namespace,
    log_dir: Path,
    profiles: dict[str, list[tuple[float, str]]],
) -> Run:
    """Each scenario: a warm-up per server, then rounds that alternate the servers (median of each).

    Alternating short rounds, rather than one long run per server, spreads whatever else the
    machine does over both servers alike.
    """
    token = user_token(USER)
    run = Run(transport, workers)
    scenarios = [s for s in SCENARIOS if s.key in options.scenarios.split(",")]
    fluxbase = start_fluxbase(dsn, workers, options.pool_size)
    try:
        baseline = start_baseline(dsn, workers, options.pool_size, log_dir)
        try:
            servers = {"fluxbase": fluxbase.url, "baseline": baseline.url}
            meters = {
                "fluxbase": Meters(fluxbase.process.pid, database_pid),
                "baseline": Meters(baseline.process.pid, database_pid),
            }
            verify_same_answers(servers, scenarios, ids[0], ids[1], token)
            for scenario in scenarios:
                timings: dict[str, list[Timing]] = {name: [] for name in servers}
                for base_url in servers.values():
                    run_wrk(scenario.url(base_url, ids[0]), scenario, token, ids[0], options.warmup, options)
                for round_number in range(options.rounds):
                    order = list(servers.items())
                    for name, base_url in order if round_number % 2 else reversed(order):
                        url = scenario.url(base_url, ids[0])
                        profile = (
                            options.profile is not None
                            and name == "fluxbase"
                            and workers == 1
                            and not round_number
                            and scenario.key not in profiles
                        )
                        output = log_dir / f"profile-{transport}-{scenario.key}.txt"
                        with (
                            profiled(fluxbase.process.pid, options.duration, output)
                            if profile
                            else _nothing()
                        ):
                            timing = run_wrk(
                                url, scenario, token, ids[0], options.duration, options, meters[name]
                            )
                            timings[name].append(timing)
                        if profile:
                            profiles[scenario.key] = top_frames(output)
                            for share, frame in profiles[scenario.key]:
                                print(f"      {share:5.1f}%  {frame}")
                for name, measured in timings.items():
                    timing = run.results[(scenario.key, name)] = median_timing(measured)
                    print(
                        f"  {transport} {workers} worker(s) {scenario.key:5} {name:8} "
                        f"{timing.requests_per_second:8,.0f} req/s  p50 {timing.p50_ms:5.1f} ms  "
                        f"p99 {timing.p99_ms:5.1f} ms  CPU/request {timing.server_cpu_us:5.0f} + "
                        f"{timing.database_cpu_us:5.0f} us  (rounds: "
                        + ", ".join(f"{t.requests_per_second:,.0f}" for t in measured)
                        + ")",
                        flush=True,
                    )
        finally:
            baseline.terminate()
    finally:
        fluxbase.terminate()
    return run


def median_timing(timings: list[Timing]) -> Timing:
    return Timing(
        requests_per_second=statistics.median(t.requests_per_second for t in timings),
        p50_ms=statistics.median(t.p50_ms for t in timings),
        p90_ms=statistics.median(t.p90_ms for t in timings),
        p99_ms=statistics.median(t.p99_ms for t in timings),
        requests=sum(t.requests for t in timings),
        server_cpu_us=statistics.median(t.server_cpu_us for t in timings),
        database_cpu_us=statistics.median(t.database_cpu_us for t in timings),
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def start_cluster() -> tuple[EmbeddedPostgres, dict[str, str]]:
    """A throwaway cluster on its private socket, also listening on 127.0.0.1 for `authenticator`.

    TCP accepts the authenticator only, with its SCRAM password (the superuser stays on the
    socket): the cluster is reachable by anything on this host while the benchmark runs.
    """
    cluster = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="fluxbase-pg-")), port=free_port())
    cluster.start()
    cluster.stop()
    with open(cluster.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# Added by bench_rest.py: the TCP transport.\nlisten_addresses = '127.0.0.1'\n")
    hba = cluster.pgdata / "pg_hba.conf"
    hba.write_text("host all authenticator 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.start()
    socket_dsn = cluster.dsn()
    database = socket_dsn.split("@/", 1)[1].split("?", 1)[0]
    return cluster, {"unix": socket_dsn, "tcp": f"postgresql://postgres@127.0.0.1:{cluster.port}/{database}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per server and scenario")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list of unix, tcp")
    parser.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS), help="comma list")
    parser.add_argument("--pool-size", type=int, default=10, help="database connections per worker")
    parser.add_argument(
        "--profile", metavar="LABEL", help="py-spy the 1-worker Fluxbase; write section LABEL (e.g. before)"
    )
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.name}")
    parser.add_argument(
        "--mode",
        choices=("rest", "audit"),
        default="rest",
        help="rest: Fluxbase against the baseline; audit: POST with and without an audit trail",
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: run `make bench` (it installs it) or apt-get install wrk", file=sys.stderr)
        return 2
    if options.profile is not None and not re.fullmatch(r"[a-z0-9-]+", options.profile):
        print("--profile LABEL: lower-case letters, digits and dashes", file=sys.stderr)
        return 2

    log_dir = Path(tempfile.mkdtemp(prefix="fluxbase-bench-"))
    cluster, dsns = start_cluster()
    profiles: dict[str, list[tuple[float, str]]] = {}
    try:
        dsn = dsns["unix"]
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute((PERF / "bench_schema.sql").read_text())  # type: ignore[arg-type]
            ids = tuple(
                conn.execute("select min(id) from public.todos where user_id = %s", (user,)).fetchone()[0]  # type: ignore[index]
                for user in (USER, OTHER_USER)
            )
        machine = machine_description(dsn)
        postmaster = int((cluster.pgdata / "postmaster.pid").read_text().split()[0])
        load_before = os.getloadavg()[0]
        if options.mode == "audit":
            print("1 worker: POST without and with an audit trail", flush=True)
            result = measure_audit(dsn, options)
            section = audit_report(
                result, machine, f"{load_before:.2f}, {os.getloadavg()[0]:.2f}", trail_rows(dsn), options
            )
            print(section)
            if not options.no_report:
                write_report(section, AUDIT_BEGIN, AUDIT_END)
            return 0
        runs = []
        for transport in options.transports.split(","):
            for workers in (int(n) for n in options.workers.split(",")):
                print(f"{transport}, {workers} worker(s): Fluxbase and baseline", flush=True)
                runs.append(
                    measure(
                        dsns[transport],
                        postmaster,
                        transport,
                        workers,
                        (ids[0], ids[1]),
                        options,
                        log_dir,
                        profiles,
                    )
                )
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        stop_local_cluster(cluster)
    load = f"{load_before:.2f}, {os.getloadavg()[0]:.2f}"
    complete = (
        set(options.transports.split(",")) == set(TRANSPORTS)
        and {int(n) for n in options.workers.split(",")} == {1, 2}
        and set(options.scenarios.split(",")) == {s.key for s in SCENARIOS}
    )
    section = report(runs, machine, load, options)
    print(section)
    if options.profile is not None:
        profile_section = profile_report(options.profile, profiles, machine, load)
        print(profile_section)
        if not options.no_report:
            write_section(profile_section, *profile_markers(options.profile))
    if not options.no_report:
        if complete:
            write_section(section, BEGIN, END)
            print(f"written to {REPORT.relative_to(ROOT)}; server logs in {log_dir}")
        else:
            print(f"a partial run: the tables in {REPORT.relative_to(ROOT)} are left as they were")
    return 0


if __name__ == "__main__":
    sys.exit(main())
