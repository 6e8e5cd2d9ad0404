"""Migrations: the sqitch plan in migrations/, applied with yoyo, then sql/ re-applied.

migrations/ holds versioned, stateful DDL in sqitch layout, so a DBA can run
`sqitch deploy` instead; `fluxbase migrate` reads the same plan and scripts
and drives them with yoyo.  sql/ holds idempotent logic (functions, grants,
policies) that every run re-applies.  A PostgreSQL advisory lock makes
replicas that start at once take turns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from yoyo import get_backend
from yoyo.migrations import Migration, MigrationList, StepCollector

from fluxbase.observability.logging import audit
from fluxbase.paths import migrations_dir, sql_dir

log = logging.getLogger("fluxbase.migrate")

REGISTRY_SCHEMA = "fluxbase_migrations"
# pg_advisory_lock key: "Flux" in ASCII, so it is recognisable in pg_locks.
LOCK_KEY = 0x466C7578
AUTHENTICATOR = "authenticator"

_PLAN_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:\s+\[(?P<requires>[^\]]*)\])?\s+\S+")
_TRANSACTION_LINE = re.compile(r"^\s*(BEGIN|COMMIT)\s*;\s*$", re.I | re.M)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Change:
    """One change of the sqitch plan and its three scripts."""

    name: str
    requires: tuple[str, ...]
    deploy: Path
    revert: Path
    verify: Path


@dataclass(frozen=True)
class ChangeStatus:
    name: str
    applied: bool


def read_plan(folder: Path | None = None) -> list[Change]:
    """The changes of sqitch.plan in order (tags and pragmas skipped)."""
    folder = folder or migrations_dir()
    changes = []
    for number, line in enumerate((folder / "sqitch.plan").read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("%", "#", "@")):
            continue
        match = _PLAN_LINE.match(stripped)
        if not match:
            raise MigrationError(f"sqitch.plan:{number}: cannot read {stripped!r}")
        name = match.group("name")
        requires = tuple((match.group("requires") or "").split())
        changes.append(
            Change(
                name=name,
                requires=requires,
                deploy=folder / "deploy" / f"{name}.sql",
                revert=folder / "revert" / f"{name}.sql",
                verify=folder / "verify" / f"{name}.sql",
            )
        )
    return changes


def script_body(path: Path) -> str:
    """A sqitch script without its BEGIN/COMMIT lines: yoyo runs each change in a transaction of its own."""
    return _TRANSACTION_LINE.sub("", path.read_text(encoding="utf-8"))


class _SqitchChange(Migration):  # type: ignore[misc]
    """A yoyo migration whose steps come from a sqitch deploy/revert pair."""

    def __init__(self, change: Change, previous: _SqitchChange | None) -> None:
        super().__init__(change.name, str(change.deploy), str(change.deploy.parent))
        self.change = change
        self.previous = previous

    def load(self) -> None:
        if self.loaded:
            return
        collector = StepCollector(migration=self)
        collector.add_step(script_body(self.change.deploy), script_body(self.change.revert))
        self._depends = {self.previous} if self.previous else set()
        self.use_transactions = True
        self.steps = collector.create_steps(True)


def _yoyo_migrations(changes: list[Change]) -> MigrationList:
    items: list[_SqitchChange] = []
    for change in changes:
        items.append(_SqitchChange(change, items[-1] if items else None))
    return MigrationList(items)


def _yoyo_uri(database_url: str) -> str:
    parts = urlsplit(database_url)
    query = [*parse_qsl(parts.query), ("schema", REGISTRY_SCHEMA)]
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), ""))


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, so the password itself never reaches the server."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class Migrator:
    """Applies, lists and reverts the plan against one database (as its owner)."""

    def __init__(self, database_url: str, *, authenticator_password: str | None = None) -> None:
        self.database_url = database_url
        self.authenticator_password = authenticator_password
        self.changes = read_plan()

    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            # Lock first: even `create schema if not exists` collides when run concurrently.
            conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            conn.execute(f"create schema if not exists {REGISTRY_SCHEMA}")
            try:
                yield conn
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))

    @contextmanager
    def _backend(self) -> Iterator[Any]:
        backend = get_backend(_yoyo_uri(self.database_url))
        try:
            yield backend
        finally:
            backend.connection.close()

    def status(self) -> list[ChangeStatus]:
        with self._locked(), self._backend() as backend:
            migrations = _yoyo_migrations(self.changes)
            pending = {m.id for m in backend.to_apply(migrations)}
            return [ChangeStatus(c.name, c.name not in pending) for c in self.changes]

    def up(self) -> list[str]:
        """Applies pending changes, then re-applies sql/; returns the names applied."""
        with self._locked() as conn, self._backend() as backend:
            migrations = _yoyo_migrations(self.changes)
            pending = backend.to_apply(migrations)
            for migration in pending:
                backend.apply_one(migration)
                log.info("migration applied", extra={"change": migration.id})
                audit("migration.applied", change=migration.id)
            self._apply_logic(conn)
            return [m.id for m in pending]

    def down(self, count: int | None = 1) -> list[str]:
        """Reverts the last `count` applied changes (all of them when None)."""
        with self._locked(), self._backend() as backend:
            migrations = _yoyo_migrations(self.changes)
            applied = list(backend.to_rollback(migrations))
            chosen = applied if count is None else applied[:count]
            for migration in chosen:
                backend.rollback_one(migration)
                log.info("migration reverted", extra={"change": migration.id})
                audit("migration.reverted", change=migration.id)
            return [m.id for m in chosen]

    def _apply_logic(self, conn: psycopg.Connection[Any]) -> None:
        """Re-applies every sql/ file in one transaction, then lets the server read the registry."""
        if not self.changes or not self._all_applied(conn):
            return
        with conn.transaction():
            for path in sorted(sql_dir().glob("*.sql")):
                conn.execute(path.read_text(encoding="utf-8"))
            # /ready compares the applied changes with the plan, as authenticator.
            conn.execute(f"grant usage on schema {REGISTRY_SCHEMA} to {AUTHENTICATOR}")
            conn.execute(f"grant select on {REGISTRY_SCHEMA}._yoyo_migration to {AUTHENTICATOR}")
            if self.authenticator_password:
                conn.execute(
                    psycopg.sql.SQL("alter role {} with login password {}").format(
                        psycopg.sql.Identifier(AUTHENTICATOR),
                        psycopg.sql.Literal(scram_verifier(self.authenticator_password)),
                    )
                )

    def _all_applied(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            f"select count(*) from {REGISTRY_SCHEMA}._yoyo_migration "  # noqa: S608 - a constant
            "where migration_id = any(%s)",
            ([c.name for c in self.changes],),
        ).fetchone()
        return row is not None and row[0] == len(self.changes)


def derive_authenticator_password(jwt_secret: str) -> str:
    """The authenticator's password when none is configured.

    Every replica holds the JWT secret, so each derives the same password
    without another setting; whoever holds the secret can already mint a
    service_role token, so this reveals nothing more.
    """
    return hmac.new(jwt_secret.encode(), b"fluxbase authenticator password", hashlib.sha256).hexdigest()
