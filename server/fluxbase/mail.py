"""Plain-text mail over the configured SMTP server (auth.smtp), for services below the handlers.

The dashboard and the admin API send their mail (password reset,
verification, invitations) through here; the address's domain only is logged.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from fluxbase.config import SmtpConfig

log = logging.getLogger("fluxbase.mail")


class MailNotConfigured(Exception):
    """Mail is needed and auth.smtp.host is not set."""


async def send_mail(smtp: SmtpConfig, to: str, subject: str, body: str) -> None:
    if smtp.host is None:
        raise MailNotConfigured("auth.smtp.host is not set")
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="fluxbase")
    message.set_content(body)
    await aiosmtplib.send(
        message,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.user,
        password=smtp.password,
        use_tls=smtp.tls == "tls",
        start_tls=smtp.tls == "starttls",
        timeout=30,
    )
    log.info("mail sent", extra={"subject": subject, "domain": to.rpartition("@")[2]})
