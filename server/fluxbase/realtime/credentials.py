"""Realtime's view of the credentials a socket acts with: the users it counts for, and when they end.

A socket opens with one key (the handshake) but each channel may join, and later refresh, with
another user's access token. The per-user cap counts every user a socket acts for, so a single
socket cannot carry more users than the cap lets it open sockets for. And a token whose session
ended (sign-out, ban, refresh-token reuse: security/sessions.py learns of it within
`auth.session_check_interval`) stops its channels, as an expired one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

from fluxbase.security.authenticate import Caller
from fluxbase.security.sessions import SessionRevocations

SESSION_ENDED: Final = "Session has ended: sign in again"


class UserCapExceeded(Exception):
    """The socket would act for a user who already has the maximum number of sockets."""


class SocketUsers:
    """The users one socket acts for, counted once each in the process-wide per-user counter."""

    def __init__(self, per_user: Counter[str], cap: int) -> None:
        self._per_user = per_user
        self._cap = cap
        self._held: Counter[str] = Counter()  # user -> references on this socket

    def acquire(self, user: str | None) -> None:
        """Adds a reference; raises UserCapExceeded when a new user for this socket is at the cap."""
        if user is None:
            return
        if self._held[user] == 0:
            if self._per_user[user] >= self._cap:
                raise UserCapExceeded("too many connections for this user")
            self._per_user[user] += 1
        self._held[user] += 1

    def release(self, user: str | None) -> None:
        if user is None or self._held[user] <= 0:
            return
        self._held[user] -= 1
        if self._held[user] == 0:
            del self._held[user]
            _decrement(self._per_user, user)

    def swap(self, old: str | None, new: str | None) -> None:
        """A channel's token changed hands: the new user is counted before the old one is let go."""
        if old == new:
            return
        self.acquire(new)
        self.release(old)

    def release_all(self) -> None:
        for user in list(self._held):
            _decrement(self._per_user, user)
        self._held.clear()


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def session_ended(revocations: SessionRevocations, caller: Caller) -> bool:
    session_id = caller.session_id
    return session_id is not None and revocations.is_revoked(session_id)


async def watch_sessions(
    revocations: SessionRevocations,
    callers: Callable[[], Iterable[tuple[object, Caller]]],
    on_ended: Callable[[object], None],
    is_open: Callable[[], bool],
) -> None:
    """Calls on_ended(item) for each (item, caller) whose session has ended, while the socket is open.

    It looks each time the process learns of a revoked session (SessionRevocations.revoke):
    no timer per socket, so idle sockets cost nothing here; a channel joined with a session
    already revoked is refused at join (session_ended).
    """
    while is_open():
        await revocations.next_revocation()
        for item, caller in list(callers()):
            if session_ended(revocations, caller):
                on_ended(item)
