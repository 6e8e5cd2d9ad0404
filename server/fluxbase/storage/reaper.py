"""The reaper: removes what interrupted writes leave behind, at start-up and then periodically.

- temp files of a process that is gone (local backend; at once) or older
  than the grace period, and S3 multipart uploads older than it;
- resumable uploads past their expiry: the row and its spool file, and
  spool files that have no row;
- blobs older than the grace period that no row names: written by a process
  that died between storing the bytes and committing the row, or replaced by
  an overwrite whose clean-up failed.
Runs as service_role through the pool, like every storage operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext
from fluxbase.storage.backends.base import Backend

log = logging.getLogger("fluxbase.storage.reaper")

GRACE_SECONDS = 3600.0
INTERVAL_SECONDS = 600.0
MAX_BLOBS_PER_RUN = 10_000
_SERVICE = RequestContext("service_role", {"role": "service_role"}, "REAP", "/storage/reaper")


async def reap_once(
    database: Database, backend: Backend, spool: Path, grace: float = GRACE_SECONDS
) -> dict[str, int]:
    """One pass.  The database is asked only when the disk or bucket holds a candidate, so an
    idle server does no database work on the reaper's account."""
    counts = {"temp": await backend.reap_incomplete(grace), "uploads": 0, "blobs": 0}
    spooled = list(spool.glob("*.tus"))
    if spooled:
        async with database.transaction(_SERVICE) as tx:
            await tx.execute("delete from storage.resumable_uploads where expires_at < pg_catalog.now()")
            live = {r["id"] for r in await tx.fetch("select id from storage.resumable_uploads")}
        cutoff = time.time() - grace
        for path in spooled:
            with contextlib.suppress(FileNotFoundError):
                # A file with no live row: its upload expired (row just deleted) or never got a row.
                if path.stem not in live and path.stat().st_mtime < cutoff:
                    path.unlink()
                    counts["uploads"] += 1
    stale = (await backend.stale_blobs(grace))[:MAX_BLOBS_PER_RUN]
    if stale:
        async with database.transaction(_SERVICE, read_only=True) as tx:
            named = {
                r["version"]
                for r in await tx.fetch(
                    "select version from storage.objects where version = any($1::text[])", stale
                )
            }
        orphans = [blob for blob in stale if blob not in named]
        if orphans:
            await backend.delete(orphans)
        counts["blobs"] = len(orphans)
    if any(counts.values()):
        log.info("storage reaper removed leftovers", extra=counts)
    return counts


async def run_reaper(
    database: Database, backend: Backend, spool: Path, interval: float = INTERVAL_SECONDS
) -> None:
    while True:
        try:
            await reap_once(database, backend, spool)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("storage reaper run failed; next try in %s s", interval)
        await asyncio.sleep(interval)
