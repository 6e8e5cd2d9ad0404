"""Audit-trail retention: each server deletes row changes older than audit.retention, periodically.

The deletion is audit.prune_record_changes() (sql/60_audit_trail.sql), which
only `authenticator` may execute; every replica runs it, and deleting rows
another one already deleted is harmless.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from fluxbase.background import stop_tasks

log = logging.getLogger("fluxbase.audit")


class AuditRetention:
    def __init__(self, pool: asyncpg.Pool, retention: float, interval: float) -> None:
        self._pool = pool
        self._retention = retention
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Prunes every interval (not at start: a crash loop must not hammer the database)."""
        if self._retention > 0:
            self._task = asyncio.create_task(self._run(), name="audit-retention")

    async def stop(self) -> None:
        await stop_tasks((self._task,))

    async def prune(self) -> int:
        removed: int = await self._pool.fetchval(
            "select audit.prune_record_changes(make_interval(secs => $1))", self._retention
        )
        if removed:
            log.info("audit: row changes past their retention deleted", extra={"rows": removed})
        return removed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.prune()
            except Exception as exc:
                log.warning("audit: pruning the trail failed", extra={"reason": str(exc)})
