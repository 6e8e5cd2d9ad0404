"""redirect_to checking (no open redirects) and the revoked-session bookkeeping, without a server."""

from __future__ import annotations

import pytest

from fluxbase.auth.mailer import allowed_redirect
from fluxbase.security.sessions import SessionRevocations

SITE = "https://app.example.com"
ALLOWED = ("https://app.example.com/welcome/*", "http://localhost:3000")


@pytest.mark.parametrize(
    ("redirect_to", "expected"),
    [
        (None, SITE),
        ("https://app.example.com", SITE),
        ("https://app.example.com/welcome/next?x=1", "https://app.example.com/welcome/next?x=1"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://evil.example", SITE),
        ("https://app.example.com.evil.net/welcome/", SITE),
        ("https://app.example.com@evil.net/welcome/", SITE),
        ("https://user@app.example.com/welcome/", SITE),
        ("javascript:alert(1)", SITE),
        ("//evil.example/welcome/", SITE),
        ("http://app.example.com/welcome/", SITE),  # another scheme is another site
        ("https://app.example.com/other", SITE),
    ],
)
def test_only_listed_redirects_are_followed(redirect_to: str | None, expected: str) -> None:
    assert allowed_redirect(redirect_to, SITE, ALLOWED) == expected


def test_revocations_are_remembered_until_their_tokens_expire() -> None:
    now = [1000.0]
    revocations = SessionRevocations(clock=lambda: now[0])
    revocations.seen("s1", 1100.0)
    revocations.seen("s2", 1200.0)
    assert revocations.to_check() == ["s1", "s2"]
    assert revocations.found_alive(["s1", "s2"], {"s2"}) == ["s1"]
    assert revocations.is_revoked("s1") and not revocations.is_revoked("s2")
    now[0] = 1150.0
    assert revocations.to_check() == ["s2"]
    assert not revocations.is_revoked("s1")  # its tokens have expired anyway
