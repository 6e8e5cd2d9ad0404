"""The local development mailbox: auth mail kept in the database, shown at /_dev/mailbox.

Active only when auth.local_mailbox is on (by default: the embedded database
listening on loopback) and no SMTP server is configured, so that sign-up,
magic links and recovery work end to end on a fresh `make run`, as Supabase's
local Inbucket does.  The messages sit in the internal schema `dev_mailbox`
(migrations/dev_mailbox, sql/50_dev_mailbox.sql): no API role can read them,
and the page exists only where the mailbox is active.  `fluxbase mail` reads
the same table from the command line.
"""

from __future__ import annotations

import html
import logging
import re

from aiohttp import web

from fluxbase.auth.mailer import Mail
from fluxbase.config import Config
from fluxbase.db.pool import Database

log = logging.getLogger("fluxbase.auth.mailbox")

PATH = "/_dev/mailbox"
SHOWN = 50
_LINK = re.compile(r"https?://[^\s<>\"']+")
# The page's own policy: inline style, nothing loaded, never framed; links navigate.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def active(config: Config) -> bool:
    """No SMTP server, and the mailbox asked for; unset, on only for a laptop: the embedded
    database and a server listening on loopback, never a deployment."""
    if config.auth.smtp.host is not None:
        return False
    if config.auth.local_mailbox is not None:
        return config.auth.local_mailbox
    return config.embedded_database and config.server.host in LOOPBACK_HOSTS


class LocalMailbox:
    """The Mailer's outbox without SMTP: one row per mail, written as the server's own role."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def deliver(self, mail: Mail) -> None:
        async with self.database.server_transaction() as tx:
            await tx.fetchval(
                "select dev_mailbox.deliver($1, $2, $3, $4)", mail.kind, mail.to, mail.subject, mail.body
            )


def _linkified(body: str) -> str:
    """The body as HTML: escaped, with every URL a link (the escape runs first, so no markup gets in)."""
    parts = []
    last = 0
    for match in _LINK.finditer(body):
        parts.append(html.escape(body[last : match.start()]))
        url = match.group(0)
        parts.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        last = match.end()
    parts.append(html.escape(body[last:]))
    return "".join(parts)


async def page(request: web.Request) -> web.Response:
    database: Database = request.app[MAILBOX].database
    async with database.server_transaction(read_only=True) as tx:
        rows = await tx.fetch(
            "select id, sent_at, recipient, subject, body from dev_mailbox.latest($1)", SHOWN
        )
    items = [
        f'<article id="m{r["id"]}"><h2>{html.escape(r["subject"])}</h2>'
        f'<p class="meta">to {html.escape(r["recipient"])} &middot; '
        f"{r['sent_at']:%Y-%m-%d %H:%M:%S %Z}</p><pre>{_linkified(r['body'])}</pre></article>"
        for r in rows
    ]
    body = "\n".join(items) or "<p>No mail yet. Sign up, ask for a magic link or a password reset.</p>"
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fluxbase local mailbox</title>'
        "<style>body{font:15px system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}"
        "article{border-top:1px solid #ccc;padding:.5rem 0}pre{white-space:pre-wrap}"
        ".meta{color:#666;margin:0}</style></head><body><h1>Local mailbox</h1>"
        "<p>Auth mail of this development server (no SMTP server is configured). "
        f"Newest first, the latest {SHOWN}; <code>fluxbase mail</code> shows the same.</p>"
        f"{body}</body></html>"
    )
    response = web.Response(text=text, content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


MAILBOX = web.AppKey("local_mailbox", LocalMailbox)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, page)
