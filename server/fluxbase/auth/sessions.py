"""The background check that turns ended sessions into refused access tokens, every session_check_interval."""

from __future__ import annotations

import asyncio
import logging

from fluxbase.background import stop_tasks
from fluxbase.db.pool import Database
from fluxbase.db.transaction import RequestContext
from fluxbase.security.sessions import SessionRevocations

log = logging.getLogger("fluxbase.auth.sessions")
SERVICE = RequestContext("service_role", {"role": "service_role"})


async def check_once(database: Database, revocations: SessionRevocations) -> list[str]:
    """Asks which remembered sessions still exist; returns those found gone."""
    to_check = revocations.to_check()
    if not to_check:
        return []
    async with database.transaction(SERVICE, read_only=True) as tx:
        rows = await tx.fetch("select id::text from auth.live_sessions($1::uuid[]) id", to_check)
    return revocations.found_alive(to_check, {row[0] for row in rows})


async def watch_sessions(database: Database, revocations: SessionRevocations, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            gone = await check_once(database, revocations)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Keep going: a database blip must not end revocation for good.
            log.warning("session check failed", extra={"reason": str(exc)})
            continue
        if gone:
            log.info("sessions ended elsewhere", extra={"sessions": len(gone)})


async def stop(task: asyncio.Task[None]) -> None:
    await stop_tasks((task,))
