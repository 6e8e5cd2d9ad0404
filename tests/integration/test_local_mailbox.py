"""The local development mailbox: sign-up, magic link and recovery without SMTP, and who may read it."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from auth_support import Client, Inbox
from fluxbase.security.api_keys import api_key
from harness import JWT_SECRET

StartApp = Callable[..., Awaitable[Client]]
ANON = {"apikey": api_key(JWT_SECRET, "anon")}
SERVICE = api_key(JWT_SECRET, "service_role")
LINK = re.compile(r'href="([^"]+/auth/v1/verify\?[^"]+)"')
PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}@example.com"


async def mailbox_link(api: Client, address: str, count: int = 1, timeout: float = 10) -> str:
    """The newest link to `address` on the page, once `count` mails reached it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await api.get("/_dev/mailbox")
        assert response.status == 200
        page = await response.text()
        articles = [a for a in page.split("<article")[1:] if f"to {address} " in a]
        if len(articles) >= count:
            match = LINK.search(articles[0])
            assert match, articles[0]
            return match.group(1).replace("&amp;", "&")
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail number {count} for {address} in the local mailbox")


async def follow(api: Client, link: str) -> dict[str, list[str]]:
    """Follows a mail link; returns what the redirect's fragment carries."""
    parts = urlsplit(link)
    response = await api.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert response.status == 303, await response.text()
    return parse_qs(urlsplit(response.headers["Location"]).fragment)


async def test_sign_up_magic_link_and_recovery_work_end_to_end(auth_app: StartApp) -> None:
    api = await auth_app(with_smtp=False, local_mailbox=True)
    address = new_email()
    response = await api.post("/auth/v1/signup", json={"email": address, "password": PASSWORD}, headers=ANON)
    assert response.status == 200, await response.text()
    assert "access_token" not in await response.json()  # not confirmed yet

    fragment = await follow(api, await mailbox_link(api, address))
    assert fragment["type"] == ["signup"] and fragment["access_token"]

    response = await api.post(
        "/auth/v1/token?grant_type=password", json={"email": address, "password": PASSWORD}, headers=ANON
    )
    assert response.status == 200, await response.text()

    response = await api.post("/auth/v1/otp", json={"email": address}, headers=ANON)
    assert response.status == 200
    assert (await follow(api, await mailbox_link(api, address, 2)))["type"] == ["magiclink"]

    response = await api.post("/auth/v1/recover", json={"email": address}, headers=ANON)
    assert response.status == 200
    assert (await follow(api, await mailbox_link(api, address, 3)))["type"] == ["recovery"]


async def test_the_page_escapes_what_users_typed(auth_app: StartApp, migrated_dsn: str) -> None:
    api = await auth_app(with_smtp=False, local_mailbox=True)
    with psycopg.connect(migrated_dsn) as conn:
        conn.execute(
            "insert into dev_mailbox.messages (kind, recipient, subject, body) values "
            "('test', '<b>x</b>@example.com', '<script>alert(1)</script>', "
            "'see http://localhost/a?b=1&c=<i>2</i> now')"
        )
    response = await api.get("/_dev/mailbox")
    page = await response.text()
    assert "<script>" not in page and "<b>x</b>" not in page and "<i>" not in page
    assert '<a href="http://localhost/a?b=1&amp;c=">' in page
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


async def test_with_smtp_configured_nothing_changes(auth_app: StartApp, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    api = await auth_app(with_smtp=True, local_mailbox=True)
    assert (await api.get("/_dev/mailbox")).status == 404
    address = new_email()
    response = await api.post("/auth/v1/signup", json={"email": address, "password": PASSWORD}, headers=ANON)
    assert response.status == 200
    assert await inbox.link_for(address)


async def test_off_without_smtp_the_old_answer_stays(auth_app: StartApp) -> None:
    """A deployment (external database) without SMTP gets no mailbox: sign-up fails clearly."""
    api = await auth_app(with_smtp=False)
    assert (await api.get("/_dev/mailbox")).status == 404
    response = await api.post(
        "/auth/v1/signup", json={"email": new_email(), "password": PASSWORD}, headers=ANON
    )
    assert response.status == 500
    assert (await response.json())["error_code"] == "smtp_not_configured"


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_no_api_role_can_read_or_write_the_mailbox(migrated_dsn: str, role: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        for statement in (
            "select * from dev_mailbox.messages",
            "select * from dev_mailbox.latest(10)",
            "select dev_mailbox.deliver('x', 'a@b', 's', 'b')",
        ):
            conn.execute(f"set role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.execute("reset role")


async def test_the_data_api_never_exposes_the_mailbox(auth_app: StartApp) -> None:
    api = await auth_app(with_smtp=False, local_mailbox=True)
    headers = {"apikey": SERVICE, "Authorization": f"Bearer {SERVICE}", "Accept-Profile": "dev_mailbox"}
    response = await api.get("/rest/v1/messages", headers=headers)
    assert response.status in (400, 406), await response.text()
    assert "dev_mailbox" not in await (await api.get("/rest/v1/", headers={"apikey": SERVICE})).text()
