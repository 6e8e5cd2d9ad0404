"""The developer's commands around the database: `fluxbase psql`, `sql`, `mail` and `init`.

Each opens the configured database, or the embedded one (starting it when the
server is not running, and stopping it again afterwards), as its owner: the
role migrations run as.  `psql --role` only simulates an API caller: the
session starts as that role with those claims, as the server's transactions
do, but it is still the owner's login and may `reset role`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from fluxbase.config import Config, ConfigError, Problem, ensure_jwt_secret
from fluxbase.db.embedded import EmbeddedPostgres, find_pg_bin
from fluxbase.db.sqitch_plan import script_body
from fluxbase.paths import examples_dir

API_ROLES = ("anon", "authenticated", "service_role")
EXAMPLE = "db"  # examples/db: the todo app as a sqitch project, with its seed and policy tests
MAIL_WAIT = 3.0  # seconds `fluxbase mail --to` waits for a mail not yet there
_LINK = re.compile(r"https?://\S+")


@contextmanager
def owner_database(config: Config) -> Iterator[str]:
    """The owner's DSN; an embedded cluster started here is stopped on the way out."""
    from fluxbase.serve import open_database

    database_url, embedded = open_database(config)
    try:
        yield database_url
    finally:
        if embedded is not None and embedded.started_here:
            embedded.stop()


def database_url_for_display(config: Config) -> str:
    """Where `fluxbase psql` connects, without starting anything and without a password."""
    if config.database.url is None:
        return EmbeddedPostgres(config.data_dir).dsn()
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", config.database.url)


def _psql() -> str:
    try:
        candidate = find_pg_bin() / "psql"
        if candidate.is_file():
            return str(candidate)
    except Exception:  # noqa: S110 - no server binaries: psql may still be on PATH
        pass
    found = shutil.which("psql")
    if found is None:
        raise ConfigError(
            [
                Problem(
                    "psql",
                    "not found; install the PostgreSQL client (Debian: apt-get install postgresql-client)",
                )
            ]
        )
    return found


def session_options(role: str, claims: str | None) -> str:
    """PGOPTIONS that start the session as `role` with `claims`, as the server's transactions do."""
    if role not in API_ROLES:
        raise ConfigError([Problem("--role", f"must be one of {', '.join(API_ROLES)}, not {role!r}")])
    try:
        parsed = json.loads(claims) if claims else {}
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem("--claims", f"not JSON: {exc.msg}")]) from None
    if not isinstance(parsed, dict):
        raise ConfigError([Problem("--claims", 'must be a JSON object, e.g. \'{"sub": "<user id>"}\'')])
    parsed.setdefault("role", role)
    text = json.dumps(parsed, separators=(",", ":"))

    def escaped(value: str) -> str:  # PGOPTIONS splits on spaces; a backslash keeps one
        return value.replace("\\", "\\\\").replace(" ", "\\ ")

    return f"-c role={role} -c request.jwt.claims={escaped(text)}"


def _run_interactive(command: list[str], env: dict[str, str]) -> int:
    """Runs psql in the foreground: Ctrl-C belongs to it, not to us."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call(command, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)


def psql(config: Config, args: Sequence[str], role: str | None, claims: str | None) -> int:
    if claims is not None and role is None:
        role = "authenticated"
    env = dict(os.environ)
    if role is not None:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {session_options(role, claims)}".strip()
    binary = _psql()
    with owner_database(config) as url:
        return _run_interactive([binary, url, *args], env)


def run_sql(config: Config, source: str) -> int:
    """Applies a file (or stdin, `-`) in one transaction, stopping at the first error."""
    if source != "-" and not Path(source).is_file():
        raise ConfigError([Problem(source, "no such file")])
    binary = _psql()
    with owner_database(config) as url:
        command = [binary, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", source]
        return 0 if subprocess.call(command) == 0 else 1


def show_mail(config: Config, limit: int, to: str | None, link_only: bool) -> int:
    """The local mailbox's latest messages, newest first; --link prints the newest one's link."""
    with owner_database(config) as url, psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("select to_regclass('dev_mailbox.messages') is not null").fetchone()
        if not (exists and exists[0]):
            print("no local mailbox in this database (run `fluxbase migrate`)", file=sys.stderr)
            return 1
        # The server writes a mail just after answering the request that caused it: give a mail
        # asked for right after sign-up a moment to arrive.
        deadline = time.monotonic() + (MAIL_WAIT if to else 0)
        while True:
            rows = conn.execute(
                "select id, sent_at, recipient, subject, body from dev_mailbox.messages "
                "where %(to)s::text is null or lower(recipient) = lower(%(to)s) "
                "order by id desc limit %(limit)s",
                {"to": to, "limit": limit},
            ).fetchall()
            if rows or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    if link_only:
        links = _LINK.findall(rows[0][4]) if rows else []
        if not links:
            print("no mail with a link" + (f" for {to}" if to else ""), file=sys.stderr)
            return 1
        print(links[0])
        return 0
    if not rows:
        print("the local mailbox is empty" + (f" for {to}" if to else ""))
    for number, (message_id, sent_at, recipient, subject, body) in enumerate(rows):
        if number:
            print("-" * 72)
        print(f"#{message_id}  {sent_at:%Y-%m-%d %H:%M:%S %Z}  to {recipient}\nSubject: {subject}\n")
        print(body.rstrip())
    return 0


def init(config: Config, if_new: bool) -> int:
    """Migrates and loads the example (a todo app) into a database whose `public` is empty."""
    from fluxbase.serve import migrator

    fresh = config.embedded_database and not EmbeddedPostgres(config.data_dir).initialized
    if if_new and not fresh:
        return 0
    config = ensure_jwt_secret(config)
    with owner_database(config) as url:
        migrator(config, url).up()
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "select tablename from pg_tables where schemaname = 'public' order by 1"
                )
            ]
            if tables == ["todos"]:
                print("the example is already loaded (public.todos)")
                return 0
            if tables:
                print(
                    f"public already has tables ({', '.join(tables)}): not loading the example into a "
                    "database in use",
                    file=sys.stderr,
                )
                return 1
            example = examples_dir() / EXAMPLE
            with conn.transaction():
                conn.execute(script_body(example / "deploy" / "todos.sql"))
                conn.execute((example / "seed.sql").read_text(encoding="utf-8"))
    print(f"loaded the example: public.todos with RLS, realtime and a seed row ({example})")
    return 0
