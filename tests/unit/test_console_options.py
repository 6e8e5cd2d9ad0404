"""The developer commands' pure parts: psql session options, when the local mailbox is on."""

from __future__ import annotations

import dataclasses

import pytest

from fluxbase.auth.mailbox import active
from fluxbase.config import AuthConfig, Config, ConfigError, DatabaseConfig, ServerConfig, SmtpConfig
from fluxbase.console import database_url_for_display, session_options


def test_session_options_start_as_the_role_with_its_claims() -> None:
    options = session_options("authenticated", '{"sub": "a b", "x": "c\\\\d"}')
    assert options.startswith("-c role=authenticated -c request.jwt.claims=")
    # Spaces and backslashes are escaped for PGOPTIONS, which splits on spaces.
    assert '{"sub":"a\\ b","x":"c\\\\\\\\d","role":"authenticated"}' in options


@pytest.mark.parametrize(
    ("role", "claims", "message"),
    [("postgres", None, "must be one of"), ("anon", "[1]", "JSON object"), ("anon", "{", "not JSON")],
)
def test_session_options_refuse_what_is_not_a_caller(role: str, claims: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        session_options(role, claims)


def config(url: str | None = None, host: str = "127.0.0.1", **auth: object) -> Config:
    return Config(
        database=DatabaseConfig(url=url),
        server=ServerConfig(host=host),
        auth=dataclasses.replace(AuthConfig(), **auth),  # type: ignore[arg-type]
    )


def test_local_mailbox_is_on_only_for_a_laptop_unless_asked() -> None:
    assert active(config())
    assert not active(config(host="0.0.0.0"))  # noqa: S104 - a setting under test
    assert not active(config(url="postgresql://db/x"))
    assert active(config(url="postgresql://db/x", local_mailbox=True))
    assert not active(config(local_mailbox=False))
    # SMTP always wins.
    assert not active(config(local_mailbox=True, smtp=SmtpConfig(host="smtp.example.com")))


def test_the_displayed_database_url_hides_the_password() -> None:
    shown = database_url_for_display(config(url="postgresql://owner:s3cret@db:5432/app"))
    assert shown == "postgresql://owner:***@db:5432/app"
