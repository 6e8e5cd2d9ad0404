"""SessionRevocations.next_revocation: what realtime's per-socket watchers wait on, with no timer."""

from __future__ import annotations

import asyncio

from fluxbase.security.sessions import SessionRevocations


async def test_every_waiter_wakes_on_the_next_revocation_and_a_cancelled_one_stops_nobody() -> None:
    revocations = SessionRevocations()
    first = asyncio.ensure_future(revocations.next_revocation())
    second = asyncio.ensure_future(revocations.next_revocation())
    leaving = asyncio.ensure_future(revocations.next_revocation())
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    leaving.cancel()  # a socket that closes
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    revocations.revoke("s1")
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    # The next wait is for the next revocation, not the one already seen.
    later = asyncio.ensure_future(revocations.next_revocation())
    await asyncio.sleep(0.01)
    assert not later.done()
    revocations.revoke("s2")
    await asyncio.wait_for(later, 1)
    assert revocations.is_revoked("s1") and revocations.is_revoked("s2")
