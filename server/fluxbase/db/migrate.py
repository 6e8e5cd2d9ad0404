"""Migrations: the sqitch plan in migrations/, recorded in sqitch's own registry, then sql/ re-applied.

migrations/ holds versioned, stateful DDL in sqitch layout.  `fluxbase
migrate` applies the same plan and scripts itself and records every change
in sqitch's registry (schema `sqitch`, the tables and change ids sqitch
computes), so a DBA may use `sqitch deploy`/`revert`/`status` and
`fluxbase migrate` on one database in any order: each sees what the other
did.  sql/ holds idempotent logic (functions, grants, policies) that every
run re-applies.  Both tools take the same PostgreSQL advisory lock, so
replicas and a DBA starting at once take turns.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fluxbase.db.sqitch_registry import REGISTRY_DDL, REGISTRY_RELEASE, REGISTRY_SCHEMA
from fluxbase.observability.logging import audit
from fluxbase.paths import migrations_dir, sql_dir

log = logging.getLogger("fluxbase.migrate")

__all__ = ["REGISTRY_SCHEMA", "MigrationError", "Migrator", "read_plan"]

# sqitch's own pg_advisory_lock key (App::Sqitch::Engine::pg), so that `sqitch deploy`
# and `fluxbase migrate` exclude each other as well as replicas.
LOCK_KEY = 75474063
AUTHENTICATOR = "authenticator"
# The yoyo registry of earlier versions: adopted into sqitch's once, then dropped.
LEGACY_REGISTRY = "fluxbase_migrations"

_PLAN_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:\s+\[(?P<requires>[^\]]*)\])?"
    r"\s+(?P<planned>\S+)\s+(?P<planner>[^<]*?)\s*<(?P<email>[^>]*)>(?:\s*#\s*(?P<note>.*))?$"
)
_TRANSACTION_LINE = re.compile(r"^\s*(BEGIN|COMMIT)\s*;\s*$", re.I | re.M)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Change:
    """One change of the sqitch plan, its three scripts and the id sqitch gives it."""

    name: str
    requires: tuple[str, ...]
    planned_at: str
    planner_name: str
    planner_email: str
    note: str
    change_id: str
    deploy: Path
    revert: Path
    verify: Path

    @property
    def script_hash(self) -> str:
        """SHA-1 of the deploy script's bytes, as sqitch records it."""
        return hashlib.sha1(self.deploy.read_bytes()).hexdigest()  # noqa: S324 - sqitch's format


@dataclass(frozen=True)
class Plan:
    project: str
    uri: str | None
    changes: list[Change]


@dataclass(frozen=True)
class ChangeStatus:
    name: str
    applied: bool


def sqitch_change_id(
    project: str, uri: str | None, change: str, parent: str | None,
    planner: str, planned_at: str, requires: tuple[str, ...], note: str,
) -> str:  # fmt: skip
    """The change id sqitch computes (App::Sqitch::Plan::Change->id): SHA-1 of its info text."""
    lines = [f"project {project}"]
    if uri:
        lines.append(f"uri {uri}")
    lines.append(f"change {change}")
    if parent:
        lines.append(f"parent {parent}")
    lines += [f"planner {planner}", f"date {planned_at}"]
    if requires:
        lines.append("requires\n  + " + "\n  + ".join(requires))
    if note:
        lines += ["", note]
    info = "\n".join(lines).encode()
    return hashlib.sha1(b"change %d\0" % len(info) + info).hexdigest()  # noqa: S324 - sqitch's format


def read_plan(folder: Path | None = None) -> Plan:
    """The project and its changes of sqitch.plan in order."""
    folder = folder or migrations_dir()
    project, uri = "", None
    changes: list[Change] = []
    for number, line in enumerate((folder / "sqitch.plan").read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("%project="):
            project = stripped.split("=", 1)[1]
        elif stripped.startswith("%uri="):
            uri = stripped.split("=", 1)[1]
        if not stripped or stripped.startswith(("%", "#")):
            continue
        if stripped.startswith("@"):
            # Tags would need sqitch's tags table kept too; refuse rather than disagree with sqitch.
            raise MigrationError(f"sqitch.plan:{number}: tags are not supported by fluxbase migrate")
        match = _PLAN_LINE.match(stripped)
        if not match:
            raise MigrationError(f"sqitch.plan:{number}: cannot read {stripped!r}")
        name = match.group("name")
        if any(c.name == name for c in changes):
            raise MigrationError(f"sqitch.plan:{number}: reworked change {name!r} is not supported")
        requires = tuple((match.group("requires") or "").split())
        if any(":" in r or r.startswith("!") for r in requires):
            raise MigrationError(
                f"sqitch.plan:{number}: conflicts and cross-project dependencies are not supported"
            )
        planner_name, planner_email = match.group("planner"), match.group("email")
        note = (match.group("note") or "").strip()
        change_id = sqitch_change_id(
            project, uri, name, changes[-1].change_id if changes else None,
            f"{planner_name} <{planner_email}>", match.group("planned"), requires, note,
        )  # fmt: skip
        changes.append(
            Change(
                name=name, requires=requires, planned_at=match.group("planned"),
                planner_name=planner_name, planner_email=planner_email, note=note, change_id=change_id,
                deploy=folder / "deploy" / f"{name}.sql",
                revert=folder / "revert" / f"{name}.sql",
                verify=folder / "verify" / f"{name}.sql",
            )
        )  # fmt: skip
    if not project:
        raise MigrationError("sqitch.plan: no %project pragma")
    return Plan(project, uri, changes)


def script_body(path: Path) -> str:
    """A sqitch script without its BEGIN/COMMIT lines: each change runs in a transaction of ours."""
    return _TRANSACTION_LINE.sub("", path.read_text(encoding="utf-8"))


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


def _committer() -> tuple[str, str]:
    """Who the registry says deployed a change: this tool, run by this system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return "fluxbase migrate", f"{user}@{socket.gethostname()}"


class Migrator:
    """Applies, lists and reverts the plan against one database (as its owner)."""

    def __init__(self, database_url: str, *, authenticator_password: str | None = None) -> None:
        self.database_url = database_url
        self.authenticator_password = authenticator_password
        self.plan = read_plan()
        self.changes = self.plan.changes

    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            # Lock first: even `create schema if not exists` collides when run concurrently.
            conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                with conn.transaction():
                    self._ensure_registry(conn)
                yield conn
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))

    def _ensure_registry(self, conn: psycopg.Connection[Any]) -> None:
        """sqitch's registry (created as `sqitch deploy` would), this project in it, legacy adopted."""
        exists = conn.execute("select to_regclass(%s) is not null", ("sqitch.releases",)).fetchone()
        name, email = _committer()
        if not (exists and exists[0]):
            conn.execute(REGISTRY_DDL)
            conn.execute(
                "insert into sqitch.releases (version, installer_name, installer_email) values (%s, %s, %s)",
                (REGISTRY_RELEASE, name, email),
            )
        conn.execute(
            "insert into sqitch.projects (project, uri, creator_name, creator_email) "
            "values (%s, %s, %s, %s) on conflict (project) do nothing",
            (self.plan.project, self.plan.uri, name, email),
        )
        self._adopt_legacy_registry(conn)

    def _adopt_legacy_registry(self, conn: psycopg.Connection[Any]) -> None:
        legacy = conn.execute("select to_regclass(%s)", (f"{LEGACY_REGISTRY}._yoyo_migration",)).fetchone()
        if not legacy or legacy[0] is None:
            return
        applied = {
            row[0] for row in conn.execute("select migration_id from fluxbase_migrations._yoyo_migration")
        }
        for change in self.changes:
            if change.name in applied and not self._is_deployed(conn, change):
                self._record_deploy(conn, change)
        conn.execute(f"drop schema {LEGACY_REGISTRY} cascade")
        log.info("migration registry moved to sqitch's", extra={"adopted": sorted(applied)})

    def _deployed_ids(self, conn: psycopg.Connection[Any]) -> set[str]:
        return {
            row[0]
            for row in conn.execute(
                "select change_id from sqitch.changes where project = %s",
                (self.plan.project,),
            )
        }

    def _is_deployed(self, conn: psycopg.Connection[Any], change: Change) -> bool:
        return change.change_id in self._deployed_ids(conn)

    def _check_registry(self, deployed: set[str]) -> None:
        """Deployed changes must be a prefix of the plan, or sqitch and we would disagree."""
        known = {c.change_id for c in self.changes}
        unknown = deployed - known
        if unknown:
            raise MigrationError(
                f"the database has {len(unknown)} deployed change(s) this plan does not contain "
                "(deployed from another plan?); see `sqitch status`"
            )

    def status(self) -> list[ChangeStatus]:
        with self._locked() as conn:
            deployed = self._deployed_ids(conn)
            return [ChangeStatus(c.name, c.change_id in deployed) for c in self.changes]

    def up(self) -> list[str]:
        """Applies pending changes, then re-applies sql/; returns the names applied."""
        with self._locked() as conn:
            deployed = self._deployed_ids(conn)
            self._check_registry(deployed)
            applied = []
            for change in self.changes:
                if change.change_id in deployed:
                    continue
                with conn.transaction():
                    conn.execute(script_body(change.deploy))
                    self._record_deploy(conn, change)
                applied.append(change.name)
                log.info("migration applied", extra={"change": change.name})
                audit("migration.applied", change=change.name)
            self._apply_logic(conn)
            return applied

    def down(self, count: int | None = 1) -> list[str]:
        """Reverts the last `count` applied changes (all of them when None)."""
        with self._locked() as conn:
            deployed = self._deployed_ids(conn)
            self._check_registry(deployed)
            applied = [c for c in reversed(self.changes) if c.change_id in deployed]
            chosen = applied if count is None else applied[:count]
            for change in chosen:
                with conn.transaction():
                    conn.execute(script_body(change.revert))
                    self._record_revert(conn, change)
                log.info("migration reverted", extra={"change": change.name})
                audit("migration.reverted", change=change.name)
            return [c.name for c in chosen]

    def _record_deploy(self, conn: psycopg.Connection[Any], change: Change) -> None:
        """What sqitch's log_deploy_change writes: the change, its dependencies, a deploy event."""
        name, email = _committer()
        conn.execute(
            "insert into sqitch.changes (change_id, script_hash, change, project, note, "
            "committer_name, committer_email, planned_at, planner_name, planner_email) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (change.change_id, change.script_hash, change.name, self.plan.project, change.note,
             name, email, change.planned_at, change.planner_name, change.planner_email),
        )  # fmt: skip
        by_name = {c.name: c.change_id for c in self.changes}
        for required in change.requires:
            conn.execute(
                "insert into sqitch.dependencies (change_id, type, dependency, dependency_id) "
                "values (%s, 'require', %s, %s)",
                (change.change_id, required, by_name[required]),
            )
        self._log_event(conn, "deploy", change)

    def _record_revert(self, conn: psycopg.Connection[Any], change: Change) -> None:
        conn.execute(
            "delete from sqitch.dependencies where change_id = %s",
            (change.change_id,),
        )
        conn.execute(
            "delete from sqitch.changes where change_id = %s",
            (change.change_id,),
        )
        self._log_event(conn, "revert", change)

    def _log_event(self, conn: psycopg.Connection[Any], event: str, change: Change) -> None:
        name, email = _committer()
        conn.execute(
            "insert into sqitch.events (event, change_id, change, project, note, requires, "
            "committer_name, committer_email, planned_at, planner_name, planner_email) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (event, change.change_id, change.name, self.plan.project, change.note, list(change.requires),
             name, email, change.planned_at, change.planner_name, change.planner_email),
        )  # fmt: skip

    def _apply_logic(self, conn: psycopg.Connection[Any]) -> None:
        """Re-applies every sql/ file in one transaction, then lets the server read the registry."""
        if not self.changes or len(self._deployed_ids(conn)) != len(self.changes):
            return
        with conn.transaction():
            for path in sorted(sql_dir().glob("*.sql")):
                conn.execute(path.read_text(encoding="utf-8"))
            # /ready compares the deployed changes with the plan, as authenticator.
            conn.execute(f"grant usage on schema {REGISTRY_SCHEMA} to {AUTHENTICATOR}")
            conn.execute(f"grant select on sqitch.changes to {AUTHENTICATOR}")
            if self.authenticator_password:
                conn.execute(
                    sql.SQL("alter role {} with login password {}").format(
                        sql.Identifier(AUTHENTICATOR),
                        sql.Literal(scram_verifier(self.authenticator_password)),
                    )
                )


def derive_authenticator_password(jwt_secret: str) -> str:
    """The authenticator's password when none is configured.

    Every replica holds the JWT secret, so each derives the same password
    without another setting; whoever holds the secret can already mint a
    service_role token, so this reveals nothing more.
    """
    return hmac.new(jwt_secret.encode(), b"fluxbase authenticator password", hashlib.sha256).hexdigest()
