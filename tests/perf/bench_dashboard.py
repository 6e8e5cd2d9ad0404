"""The dashboard benchmark (`make bench-dashboard`): bundle size and time to first render of the overview.

Starts a throwaway PostgreSQL, migrates, runs the real `fluxbase serve` with the built app, makes
the first administrator and signs in. Then Debian's chromium (Playwright, never a downloaded
browser) opens /dashboard/ a number of times, cold (a new browser context: no cache) and warm
(the same context: hashed assets from the cache), and reads the moment the overview drew its
charts from the first metrics answer (the page's `overview-rendered` performance mark, in ms
from the navigation's start). The baseline, in the same browser: first contentful paint of a
one-heading static page served by aiohttp on this machine, the least a page can cost.
Results go into docs/BENCHMARKS.md between the dashboard markers. Everything talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gzip
import json
import os
import statistics
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from aiohttp import web

PERF = Path(__file__).resolve().parent
ROOT = PERF.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from generated_section import write_generated_section  # noqa: E402

from fluxbase.db.migrate import Migrator  # noqa: E402
from harness import (  # noqa: E402 - the test harness is found through the path set above
    AUTHENTICATOR_PASSWORD,
    free_port,
    server_env,
    start_local_cluster,
    start_server,
    stop_local_cluster,
)

REPORT = ROOT / "docs" / "BENCHMARKS.md"
BEGIN = "<!-- bench-dashboard:begin (written by tests/perf/bench_dashboard.py) -->"
END = "<!-- bench-dashboard:end -->"
STATIC = ROOT / "server" / "fluxbase" / "dashboard_ui" / "static"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL = "bench@example.com"
PASSWORD = "bench-password-123"
BASELINE_PAGE = "<!doctype html><html lang=en><title>baseline</title><h1>Overview</h1></html>"
RENDERED = """() => new Promise((resolve, reject) => {
    const started = Date.now();
    const look = () => {
        const mark = performance.getEntriesByName('overview-rendered')[0];
        if (mark) return resolve(mark.startTime);
        if (Date.now() - started > 20000) return reject(new Error('the overview never rendered'));
        setTimeout(look, 5);
    };
    look();
})"""
FIRST_PAINT = """() => new Promise((resolve) => {
    const look = () => {
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        if (paint) return resolve(paint.startTime);
        setTimeout(look, 5);
    };
    look();
})"""


def bundle() -> list[tuple[str, int, int]]:
    """(file, bytes served, bytes gzip -9) for index.html and every asset."""
    files = [STATIC / "index.html", *sorted(p for p in (STATIC / "assets").iterdir() if p.suffix != ".gz")]
    return [(f.name, f.stat().st_size, len(gzip.compress(f.read_bytes(), 9))) for f in files]


def serve_baseline() -> tuple[str, threading.Event]:
    """The baseline page on a port of its own, in a thread of this process."""
    port = free_port()
    stop = threading.Event()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=BASELINE_PAGE, content_type="text/html")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    threading.Thread(target=lambda: asyncio.run(run()), daemon=True).start()
    return f"http://127.0.0.1:{port}/", stop


def post(url: str, body: dict[str, str]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)


def measure(base: str, baseline_url: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {"cold": [], "warm": [], "baseline": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        state = None
        for i in range(runs + 1):  # the first cold run warms the server and is not counted
            context = browser.new_context(storage_state=state)
            if state is None:
                response = context.request.post(
                    base + "/dashboard/auth/login", data={"email": EMAIL, "password": PASSWORD}
                )
                assert response.ok, response.text()
                state = context.storage_state()
            page = context.new_page()
            page.goto(base + "/dashboard/")
            cold = float(page.evaluate(RENDERED))
            page.close()
            page = context.new_page()
            page.goto(base + "/dashboard/")
            warm = float(page.evaluate(RENDERED))
            context.close()
            context = browser.new_context()
            page = context.new_page()
            page.goto(baseline_url)
            baseline = float(page.evaluate(FIRST_PAINT))
            context.close()
            if i > 0:
                times["cold"].append(cold)
                times["warm"].append(warm)
                times["baseline"].append(baseline)
        browser.close()
    return times


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def chromium_version() -> str:
    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout.strip()


def report(files: list[tuple[str, int, int]], times: dict[str, list[float]], load: str, runs: int) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(f[1] for f in files)
    total_gzip = sum(f[2] for f in files)
    baseline = statistics.median(times["baseline"])
    lines = [
        BEGIN,
        f"Measured {now} with `make bench-dashboard`: {runs} runs each; chromium "
        f"{chromium_version()}, headless, on the same machine as the "
        f"server and PostgreSQL (load average before and after: {load}).",
        "",
        "### Bundle",
        "",
        "| file | bytes served | gzip -9 |",
        "|---|---:|---:|",
        *(f"| `{name}` | {size:,} | {packed:,} |" for name, size, packed in files),
        f"| **total** | **{total:,}** | **{total_gzip:,}** |",
        "",
        "Browsers that accept gzip get the gzip column (the build's .gz twins, made once by "
        "`npm run build`). The hashed assets are cached for a year, so a returning "
        "administrator downloads only index.html.",
        "",
        "### Time to first render of the overview",
        "",
        "From the navigation's start to the charts drawn from the first /api/v1/admin/metrics answer "
        "(the app loads, asks /dashboard/auth/me, then the metrics). Baseline: first contentful paint "
        "of a one-heading static page.",
        "",
        "| load | median ms | p90 ms | ratio to baseline (median) |",
        "|---|---:|---:|---:|",
    ]
    for kind, label in (("cold", "cold (no cache)"), ("warm", "warm (assets cached)")):
        median = statistics.median(times[kind])
        lines.append(f"| {label} | {median:,.0f} | {p90(times[kind]):,.0f} | {median / baseline:.1f}x |")
    lines.append(f"| baseline page | {baseline:,.0f} | {p90(times['baseline']):,.0f} | 1.0x |")
    lines += ["", END]
    return "\n".join(lines)


def write_report(section: str) -> None:
    write_generated_section(REPORT, section, BEGIN, END, "Dashboard")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="page loads of each kind")
    parser.add_argument("--no-report", action="store_true", help=f"do not rewrite {REPORT.name}")
    options = parser.parse_args()
    if not (STATIC / "index.html").exists():
        print("the dashboard is not built: run `make ui`", file=sys.stderr)
        return 2
    files = bundle()
    baseline_url, stop_baseline = serve_baseline()
    cluster = start_local_cluster()
    try:
        dsn = cluster.dsn()
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        server = start_server(server_env(dsn, FLUXBASE_DASHBOARD_BCRYPT_COST="10"))
        try:
            post(
                server.url + "/dashboard/auth/signup",
                {"email": EMAIL, "password": PASSWORD, "full_name": "B"},
            )
            load_before = os.getloadavg()[0]
            times = measure(server.url, baseline_url, options.runs)
            load = f"{load_before:.2f}, {os.getloadavg()[0]:.2f}"
        finally:
            server.terminate()
    finally:
        stop_local_cluster(cluster)
        stop_baseline.set()
    section = report(files, times, load, options.runs)
    print(section)
    if not options.no_report:
        write_report(section)
        print(f"written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
