"""Revoked sessions, as this process knows them: what keeps a signed-out user's access token from working.

An access token is a self-contained JWT; its session can end (sign-out, ban,
password change, reuse detection) long before it expires.  The Authenticator
remembers the session of every user token it verifies; a background check
(auth/sessions.py) asks the database every `auth.session_check_interval`
which of them are gone.  The hot path is one dict lookup.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# A session id is remembered no longer than the tokens that carry it live.
MAX_REMEMBERED = 100_000


class SessionRevocations:
    """Session ids seen in verified tokens, and those found revoked; each forgotten when its tokens expire."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}  # session id -> latest expiry of a token carrying it
        self._revoked: dict[str, float] = {}
        # Resolved by the next revoke(): what watchers (one per realtime socket) wait on.
        self._next_revocation: asyncio.Future[None] | None = None

    def seen(self, session_id: str, expires_at: float) -> None:
        if self._seen.get(session_id, 0.0) < expires_at and len(self._seen) < MAX_REMEMBERED:
            self._seen[session_id] = expires_at

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked

    def revoke(self, session_id: str, until: float | None = None) -> None:
        """Marks a session gone (this process signed it out, or the database says so)."""
        self._revoked[session_id] = until or self._seen.get(session_id) or self._clock() + 24 * 3600
        self._seen.pop(session_id, None)
        waiting = self._next_revocation
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def next_revocation(self) -> None:
        """Returns once a session is next revoked: every waiter shares one future, so thousands
        of idle watchers cost no timer and no wake-up until something is revoked."""
        loop = asyncio.get_running_loop()
        waiting = self._next_revocation
        if waiting is None or waiting.done() or waiting.get_loop() is not loop:
            waiting = self._next_revocation = loop.create_future()
        # Shielded: a watcher cancelled (its socket closed) must not cancel the others' wait.
        await asyncio.shield(waiting)

    def to_check(self) -> list[str]:
        """The sessions whose tokens are still live: the ones worth asking the database about."""
        now = self._clock()
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        self._revoked = {k: v for k, v in self._revoked.items() if v > now}
        return list(self._seen)

    def found_alive(self, checked: list[str], alive: set[str]) -> list[str]:
        """Records the answer for `checked`; returns the newly revoked ids."""
        gone = [session_id for session_id in checked if session_id not in alive]
        for session_id in gone:
            self.revoke(session_id)
        return gone
