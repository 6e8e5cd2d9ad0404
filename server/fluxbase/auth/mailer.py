"""Auth mail over SMTP (aiosmtplib): confirmation, recovery, magic link, email change.

Without an SMTP server, a development setup hands mail to the local mailbox
instead (auth/mailbox.py, attached by app.py), where `fluxbase mail` and
/_dev/mailbox show it; with SMTP configured the mailbox is never used.

Links point at this server's /auth/v1/verify, built from server.base_url;
where the user lands afterwards is a `redirect_to` checked against
auth.site_url and auth.redirect_urls, so a link can never send anyone to a
site the operator did not list (no open redirect).
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import aiosmtplib

from fluxbase.config import SmtpConfig

log = logging.getLogger("fluxbase.auth.mail")

# kind -> (subject, body); $link, $email, $token (the 6-digit code, GoTrue's {{ .Token }}) and
# $token_hash (the link's token, GoTrue's {{ .TokenHash }}) are substituted.
DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {
    "confirmation": (
        "Confirm your signup",
        "Follow this link to confirm your address:\n\n$link\n\nOr enter this code: $token\n",
    ),
    "recovery": (
        "Reset your password",
        "Follow this link to reset the password for $email:\n\n$link\n\nOr enter this code: $token\n",
    ),
    "magic_link": (
        "Your sign-in link",
        "Follow this link to sign in:\n\n$link\n\nOr enter this code: $token\n",
    ),
    "email_change": (
        "Confirm your new address",
        "Follow this link to confirm $email as your address:\n\n$link\n",
    ),
}
# The verify endpoint's `type` for each kind of mail.
VERIFY_TYPE = {
    "confirmation": "signup",
    "recovery": "recovery",
    "magic_link": "magiclink",
    "email_change": "email_change",
}


class MailNotConfigured(Exception):
    """Mail is needed and auth.smtp.host is not set."""


def allowed_redirect(redirect_to: str | None, site_url: str, allow_list: tuple[str, ...]) -> str:
    """redirect_to when the operator allowed it, else site_url: never an arbitrary site.

    An entry matches exactly, or as a prefix when it ends in '*'.  Scheme and
    host are compared after parsing, so `https://app.example.com.evil.net`
    or `https://app.example.com@evil.net` never match `https://app.example.com/*`.
    """
    if not redirect_to:
        return site_url
    target = urlsplit(redirect_to)
    if target.scheme not in ("http", "https") or not target.netloc or target.username or target.password:
        return site_url
    for entry in (site_url, *allow_list):
        if entry.endswith("*"):
            prefix = urlsplit(entry[:-1])
            if (target.scheme, target.netloc) == (prefix.scheme, prefix.netloc) and target.path.startswith(
                prefix.path
            ):
                return redirect_to
        elif redirect_to == entry or redirect_to.rstrip("/") == entry.rstrip("/"):
            return redirect_to
    return site_url


def verify_link(base_url: str, token: str, kind: str, redirect_to: str) -> str:
    query = urlencode({"token": token, "type": VERIFY_TYPE[kind], "redirect_to": redirect_to})
    return f"{base_url.rstrip('/')}/auth/v1/verify?{query}"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    kind: str = ""


class Outbox(Protocol):
    """Where mail goes when there is no SMTP server: the local development mailbox."""

    async def deliver(self, mail: Mail) -> None: ...


class Mailer:
    """Renders the templates and sends through the configured SMTP server (or the local outbox)."""

    def __init__(self, smtp: SmtpConfig, templates_dir: str | None = None) -> None:
        self._smtp = smtp
        self._outbox: Outbox | None = None
        self._templates = dict(DEFAULT_TEMPLATES)
        if templates_dir:
            for kind in DEFAULT_TEMPLATES:
                path = Path(templates_dir) / f"{kind}.txt"
                if path.is_file():
                    self._templates[kind] = _read_template(path)

    def use_local_outbox(self, outbox: Outbox) -> None:
        """Mail goes to `outbox` unless an SMTP server is configured, which always wins."""
        if self._smtp.host is None:
            self._outbox = outbox

    @property
    def configured(self) -> bool:
        return self._smtp.host is not None or self._outbox is not None

    def render(self, kind: str, to: str, link: str, token_hash: str, code: str = "") -> Mail:
        subject, body = self._templates[kind]
        values = {"link": link, "email": to, "token": code, "token_hash": token_hash}
        # string.Template: a template can only substitute, never reach attributes (str.format could).
        return Mail(
            to,
            string.Template(subject).safe_substitute(values),
            string.Template(body).safe_substitute(values),
            kind,
        )

    async def send(self, mail: Mail) -> None:
        if self._smtp.host is None:
            if self._outbox is None:
                raise MailNotConfigured("auth.smtp.host is not set")
            await self._outbox.deliver(mail)
            log.info("mail kept in the local mailbox", extra={"mail_kind": mail.subject})
            return
        message = EmailMessage()
        message["From"] = self._smtp.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain="fluxbase")
        message.set_content(mail.body)
        await aiosmtplib.send(
            message,
            hostname=self._smtp.host,
            port=self._smtp.port,
            username=self._smtp.user,
            password=self._smtp.password,
            use_tls=self._smtp.tls == "tls",
            start_tls=self._smtp.tls == "starttls",
            timeout=30,
        )
        # The address's domain only: the log is not a list of who uses the service.
        log.info("mail sent", extra={"mail_kind": mail.subject, "domain": mail.to.rpartition("@")[2]})


def _read_template(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.lower().startswith("subject:"):
        return first.split(":", 1)[1].strip(), rest.lstrip("\n")
    return "Fluxbase", text
