"""The auth service's state: configuration, database, mailer, rate limiters, mail in flight.

Built once by app.py (make_context), installed on the application by
start(); every handler receives it from the error wrapper in auth/errors.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from fluxbase.auth import sessions as session_watch
from fluxbase.auth.mailer import Mailer
from fluxbase.auth.tokens import issuer
from fluxbase.config import AuthConfig
from fluxbase.db.pool import Database
from fluxbase.security.authenticate import Authenticator
from fluxbase.security.ratelimit import RateLimiter
from fluxbase.security.signing_keys import SigningKeys


@dataclass
class AuthContext:
    """What the auth handlers share: configuration, database, mailer, limiters and mail in flight."""

    config: AuthConfig
    base_url: str
    secret: str
    database: Database
    authenticator: Authenticator
    mailer: Mailer
    sign_in_by_ip: RateLimiter
    sign_in_by_account: RateLimiter
    mail_by_ip: RateLimiter
    mail_by_address: RateLimiter
    signing_keys: SigningKeys | None = None
    pending_mail: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def site_url(self) -> str:
        return self.config.site_url or self.base_url

    @property
    def issuer(self) -> str:
        return issuer(self.base_url)


AUTH = web.AppKey("auth", AuthContext)


def make_context(
    config: AuthConfig, base_url: str, database: Database, authenticator: Authenticator
) -> AuthContext:
    limits = config.rate_limit
    if config.jwt_secret is None:
        raise ValueError("auth needs a JWT secret")
    return AuthContext(
        config=config,
        base_url=base_url,
        secret=config.jwt_secret,
        database=database,
        authenticator=authenticator,
        mailer=Mailer(config.smtp, config.templates_dir),
        sign_in_by_ip=RateLimiter(limits.sign_in_attempts, limits.sign_in_window),
        sign_in_by_account=RateLimiter(limits.sign_in_attempts, limits.sign_in_window),
        mail_by_ip=RateLimiter(limits.emails_per_hour, 3600.0),
        mail_by_address=RateLimiter(limits.emails_per_hour, 3600.0),
        signing_keys=authenticator.signing_keys,
    )


async def start(app: web.Application, ctx: AuthContext) -> asyncio.Task[None]:
    """Installs the context and starts the revoked-session check."""
    app[AUTH] = ctx
    return asyncio.create_task(
        session_watch.watch_sessions(
            ctx.database, ctx.authenticator.revocations, ctx.config.session_check_interval
        )
    )


async def stop(ctx: AuthContext, watcher: asyncio.Task[None]) -> None:
    await session_watch.stop(watcher)
    if ctx.pending_mail:
        # Mail already promised to a client is given a moment to leave.
        await asyncio.wait(set(ctx.pending_mail), timeout=10)
