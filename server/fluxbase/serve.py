"""`fluxbase serve`: the process model.

The main process starts the embedded database (when DATABASE_URL is unset),
migrates, then serves: itself with one worker, or through N forked workers
that each bind the port with SO_REUSEPORT, so the kernel spreads connections
across them.  SIGTERM stops accepting, drains in-flight requests and closes
realtime sockets (1001), and exits 0 within `server.shutdown_timeout`; a
worker that cannot finish by then exits anyway (1), and a second SIGTERM or
SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from dataclasses import dataclass

import asyncpg
import uvloop
from aiohttp import web

from fluxbase.app import Runtime, build_app
from fluxbase.config import Config
from fluxbase.db.embedded import EmbeddedPostgres
from fluxbase.db.errors import CONNECTION_ERRORS
from fluxbase.db.migrate import Migrator, derive_authenticator_password
from fluxbase.http_server import GuardedAppRunner
from fluxbase.observability import metrics

log = logging.getLogger("fluxbase.serve")

# A worker that dies this soon after starting is failing, not crashing once.
EARLY_EXIT_SECONDS = 5.0
MAX_EARLY_EXITS = 3
# Of server.shutdown_timeout, what is kept for closing the pool and other resources after the
# in-flight requests had their time (at most this much, at most a quarter of the timeout).
CLEANUP_RESERVE = 5.0
EXIT_STOPPED_HARD = 1
# The cyclic collector's thresholds in a worker (CPython's default is 700, 10, 10). A worker with
# thousands of realtime sockets holds hundreds of thousands of long-lived objects, and a full
# collection walks them all (about 0.2 s at 2,000 sockets). Full collections are triggered by
# objects promoted out of the young generations, and a fan-out keeps thousands of objects alive
# across its awaits: with a young generation of 700 they were promoted every batch, and full
# collections came about once a second under load (tests/perf/profile_realtime_fanout.py). With
# 50,000, a batch's objects are gone before a collection looks at them.
GC_THRESHOLDS = (50_000, 20, 20)


def authenticator_password(config: Config) -> str:
    assert config.auth.jwt_secret is not None, "ensure_jwt_secret() runs first"
    return derive_authenticator_password(config.auth.jwt_secret)


def open_database(config: Config) -> tuple[str, EmbeddedPostgres | None]:
    """The owner's database URL, starting the embedded cluster when none is configured."""
    if config.database.url is not None:
        return config.database.url, None
    embedded = EmbeddedPostgres(config.data_dir)
    return embedded.start(), embedded


def migrator(config: Config, database_url: str) -> Migrator:
    """Fluxbase's plan and the application's (app.migrations), on the owner's database."""
    return Migrator(
        database_url,
        authenticator_password=authenticator_password(config),
        app_migrations=config.app_migrations_dir,
    )


def serve(config: Config, *, migrate: bool) -> int:
    database_url, embedded = open_database(config)
    try:
        password = authenticator_password(config)
        if migrate:
            applied = migrator(config, database_url).up()
            log.info("database migrated", extra={"applied": applied})
        runtime = Runtime(database_url=database_url, authenticator_password=password)
        limits = config.security.rate_limit
        if limits.enabled and limits.backend == "memory" and config.server.workers > 1:
            log.warning(
                "rate limits are counted per worker: each of the workers allows the full limit; "
                "set security.rate_limit.backend: redis to share one count",
                extra={"workers": config.server.workers},
            )
        if config.server.workers == 1:
            return run_worker(config, runtime)
        return Supervisor(config, runtime).run()
    finally:
        if embedded is not None and embedded.started_here:
            log.info("stopping the embedded PostgreSQL")
            embedded.stop()


def run_worker(config: Config, runtime: Runtime) -> int:
    return uvloop.run(_worker(config, runtime))


async def _worker(config: Config, runtime: Runtime) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    app = build_app(config, runtime)
    drain = drain_timeout(config.server.shutdown_timeout)
    runner = GuardedAppRunner(app, config.server, handle_signals=False, shutdown_timeout=drain)
    try:
        await runner.setup()  # opens the pool
    except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
        log.error("cannot connect to the database", extra={"reason": f"{type(exc).__name__}: {exc}"})
        return 1
    host, port = config.server.host, config.server.port
    site = web.TCPSite(runner, host, port, reuse_port=True, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen", extra={"address": f"{host}:{port}", "reason": exc.strerror})
        await runner.cleanup()
        return 1
    log.info("listening", extra={"address": f"{host}:{port}", "pid": os.getpid()})
    await stop.wait()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _exit_at_once, signum)
    log.info("shutting down: draining in-flight requests", extra={"pid": os.getpid()})
    # The whole stop is bounded, whatever a component does (a database that does not answer,
    # a backlog being delivered): past the timeout the process exits without waiting further.
    cleanup = asyncio.ensure_future(runner.cleanup())
    done, _ = await asyncio.wait({cleanup}, timeout=config.server.shutdown_timeout)
    if not done:
        log.error(
            "shutdown did not finish in time; exiting",
            extra={"pid": os.getpid(), "timeout": config.server.shutdown_timeout},
        )
        _exit_now(EXIT_STOPPED_HARD)
    cleanup.result()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0


def drain_timeout(shutdown_timeout: float) -> float:
    """How long in-flight requests may take: the shutdown timeout less the cleanup's reserve."""
    return max(0.0, shutdown_timeout - min(CLEANUP_RESERVE, shutdown_timeout / 4))


def _exit_at_once(signum: int) -> None:
    log.warning(
        "second signal: exiting without finishing the shutdown",
        extra={"pid": os.getpid(), "signal": signal.Signals(signum).name},
    )
    _exit_now(EXIT_STOPPED_HARD)


def _exit_now(code: int) -> None:
    logging.shutdown()  # the last lines reach the log
    os._exit(code)


@dataclass
class _Worker:
    pid: int
    started: float


class Supervisor:
    """Forks the workers, restarts one that crashes, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.early_exits = 0

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = run_worker(self.config, self.runtime)
            except BaseException:
                log.exception("worker failed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = _Worker(pid, time.monotonic())

    def _stop(self, signum: int, frame: object) -> None:
        if self.stopping and frame is not None:
            # A second signal: the workers are killed, and the supervisor does not wait.
            log.warning("second signal: exiting without waiting for the workers")
            for pid in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _exit_now(EXIT_STOPPED_HARD)
        if not self.stopping:
            log.info("stopping workers", extra={"signal": signal.Signals(signum).name})
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for _ in range(self.config.server.workers):
            self._spawn()
        failed = False
        while self.workers:
            pid, status = os.wait()
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            metrics.worker_exited(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                failed = failed or code != 0
                continue
            log.error("worker exited", extra={"pid": pid, "exit_code": code})
            if time.monotonic() - worker.started < EARLY_EXIT_SECONDS:
                self.early_exits += 1
            if self.early_exits >= MAX_EARLY_EXITS:
                log.error("workers keep failing at start; giving up")
                failed = True
                self._stop(signal.SIGTERM, None)
                continue
            self._spawn()
        return 1 if failed else 0
