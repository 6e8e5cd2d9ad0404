"""Migrations: Fluxbase's sqitch plan, then sql/ re-applied, then the application's own plan.

migrations/ holds Fluxbase's versioned, stateful DDL in sqitch layout; an
application's tables, policies and functions live in a sqitch project of its
own (config `app.migrations`, default ./db/ beside fluxbase.yaml).  `fluxbase
migrate` applies both plans itself and records every change in sqitch's
registry (schema `sqitch`, the tables and change ids sqitch computes), each
under its own project name, so a DBA may use `sqitch deploy`/`revert`/`status`
in either folder and `fluxbase migrate` on one database in any order: each
sees what the other did.  sql/ holds idempotent logic (functions, grants)
that every run re-applies, before the application's changes, which may use
it.  Both tools take the same PostgreSQL advisory lock, so replicas and a DBA
starting at once take turns.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fluxbase.db import sqitch_plan
from fluxbase.db.sqitch_plan import Change, MigrationError, Plan, script_body
from fluxbase.db.sqitch_registry import REGISTRY_DDL, REGISTRY_RELEASE, REGISTRY_SCHEMA
from fluxbase.observability.logging import audit
from fluxbase.paths import migrations_dir, sql_dir

log = logging.getLogger("fluxbase.migrate")

__all__ = ["REGISTRY_SCHEMA", "MigrationError", "Migrator", "read_plan", "script_body"]

# sqitch's own pg_advisory_lock key (App::Sqitch::Engine::pg), so that `sqitch deploy`
# and `fluxbase migrate` exclude each other as well as replicas.
LOCK_KEY = 75474063
AUTHENTICATOR = "authenticator"
FLUXBASE_PROJECT = "fluxbase"
# The yoyo registry of earlier versions: adopted into sqitch's once, then dropped.
LEGACY_REGISTRY = "fluxbase_migrations"


@dataclass(frozen=True)
class ChangeStatus:
    name: str
    applied: bool
    project: str = FLUXBASE_PROJECT

    @property
    def label(self) -> str:
        """The change as the CLI names it: an application's changes carry their project."""
        return self.name if self.project == FLUXBASE_PROJECT else f"{self.project}:{self.name}"


def read_plan(folder: Path | None = None) -> Plan:
    """Fluxbase's own plan (migrations/), or the project in `folder`."""
    return sqitch_plan.read_plan(folder or migrations_dir())


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
    """Applies, lists and reverts Fluxbase's plan and the application's on one database, as its owner."""

    def __init__(
        self,
        database_url: str,
        *,
        authenticator_password: str | None = None,
        app_migrations: Path | None = None,
    ) -> None:
        self.database_url = database_url
        self.authenticator_password = authenticator_password
        self.plan = read_plan()
        self.changes = self.plan.changes
        # No plan in the folder (a new project, or none at all): only Fluxbase's own changes.
        self.app: Plan | None = None
        if app_migrations is not None and (app_migrations / "sqitch.plan").is_file():
            self.app = read_plan(app_migrations)
            if self.app.project == self.plan.project:
                raise MigrationError(
                    f"{app_migrations / 'sqitch.plan'}: the project may not be named {self.plan.project!r}"
                )

    @property
    def plans(self) -> list[Plan]:
        return [self.plan] if self.app is None else [self.plan, self.app]

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    @contextmanager
    def locked(self) -> Iterator[psycopg.Connection[Any]]:
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
        """sqitch's registry (created as `sqitch deploy` would), the projects in it, legacy adopted."""
        exists = conn.execute("select to_regclass(%s) is not null", ("sqitch.releases",)).fetchone()
        name, email = _committer()
        if not (exists and exists[0]):
            conn.execute(REGISTRY_DDL)
            conn.execute(
                "insert into sqitch.releases (version, installer_name, installer_email) values (%s, %s, %s)",
                (REGISTRY_RELEASE, name, email),
            )
        for plan in self.plans:
            conn.execute(
                "insert into sqitch.projects (project, uri, creator_name, creator_email) "
                "values (%s, %s, %s, %s) on conflict (project) do nothing",
                (plan.project, plan.uri, name, email),
            )
        self._adopt_legacy_registry(conn)

    def _adopt_legacy_registry(self, conn: psycopg.Connection[Any]) -> None:
        legacy = conn.execute("select to_regclass(%s)", (f"{LEGACY_REGISTRY}._yoyo_migration",)).fetchone()
        if not legacy or legacy[0] is None:
            return
        applied = {
            row[0] for row in conn.execute("select migration_id from fluxbase_migrations._yoyo_migration")
        }
        deployed = self._deployed_ids(conn, self.plan)
        for change in self.changes:
            if change.name in applied and change.change_id not in deployed:
                self._record_deploy(conn, self.plan, change)
        conn.execute(f"drop schema {LEGACY_REGISTRY} cascade")
        log.info("migration registry moved to sqitch's", extra={"adopted": sorted(applied)})

    def _deployed_ids(self, conn: psycopg.Connection[Any], plan: Plan) -> set[str]:
        query = "select change_id from sqitch.changes where project = %s"
        return {row[0] for row in conn.execute(query, (plan.project,))}

    def _check_registry(self, plan: Plan, deployed: set[str]) -> None:
        """Deployed changes must be in the plan, or sqitch and we would disagree."""
        unknown = deployed - {c.change_id for c in plan.changes}
        if unknown:
            raise MigrationError(
                f"the database has {len(unknown)} deployed change(s) of project {plan.project!r} that "
                f"{plan.folder / 'sqitch.plan'} does not contain (an edited plan line, or deployed from "
                "another plan?); see `sqitch status`"
            )

    def status(self) -> list[ChangeStatus]:
        with self.locked() as conn:
            result = []
            for plan in self.plans:
                deployed = self._deployed_ids(conn, plan)
                result += [ChangeStatus(c.name, c.change_id in deployed, plan.project) for c in plan.changes]
            return result

    def up(self) -> list[str]:
        """Applies Fluxbase's pending changes, re-applies sql/, then the application's pending changes.

        Returns what was applied (the application's changes as project:name).  Every run ends
        with `NOTIFY pgrst, 'reload schema'`, so servers reload their schema cache even when
        no event trigger could be installed.
        """
        with self.locked() as conn:
            applied = [c.name for c in self._deploy(conn, self.plan)]
            if not self._apply_logic(conn):
                return applied
            if self.app is not None:
                applied += [f"{self.app.project}:{c.name}" for c in self._deploy(conn, self.app)]
            conn.execute("notify pgrst, 'reload schema'")
            return applied

    def _deploy(self, conn: psycopg.Connection[Any], plan: Plan) -> list[Change]:
        deployed = self._deployed_ids(conn, plan)
        self._check_registry(plan, deployed)
        applied = []
        for change in plan.changes:
            if change.change_id in deployed:
                continue
            try:
                with conn.transaction():
                    conn.execute(script_body(change.deploy))
                    self._record_deploy(conn, plan, change)
            except psycopg.Error as error:
                raise MigrationError(
                    f"{plan.project}:{change.name} failed, nothing of it was applied: {str(error).strip()}"
                ) from error
            applied.append(change)
            log.info("migration applied", extra={"project": plan.project, "change": change.name})
            audit("migration.applied", project=plan.project, change=change.name)
        return applied

    def down(self, count: int | None = 1) -> list[str]:
        """Reverts the last `count` applied changes (all when None), the application's first."""
        with self.locked() as conn:
            applied: list[tuple[Plan, Change]] = []
            for plan in reversed(self.plans):
                deployed = self._deployed_ids(conn, plan)
                self._check_registry(plan, deployed)
                applied += [(plan, c) for c in reversed(plan.changes) if c.change_id in deployed]
            chosen = applied if count is None else applied[:count]
            for plan, change in chosen:
                with conn.transaction():
                    conn.execute(script_body(change.revert))
                    self._record_revert(conn, plan, change)
                log.info("migration reverted", extra={"project": plan.project, "change": change.name})
                audit("migration.reverted", project=plan.project, change=change.name)
            if chosen:
                conn.execute("notify pgrst, 'reload schema'")
            return [ChangeStatus(c.name, False, p.project).label for p, c in chosen]

    def forget_app(self, conn: psycopg.Connection[Any]) -> None:
        """Records the application's changes as reverted without running their scripts (db reset)."""
        if self.app is None:
            return
        deployed = self._deployed_ids(conn, self.app)
        for change in reversed(self.app.changes):
            if change.change_id in deployed:
                self._record_revert(conn, self.app, change)

    def _record_deploy(self, conn: psycopg.Connection[Any], plan: Plan, change: Change) -> None:
        """What sqitch's log_deploy_change writes: the change, its dependencies, a deploy event."""
        name, email = _committer()
        conn.execute(
            "insert into sqitch.changes (change_id, script_hash, change, project, note, "
            "committer_name, committer_email, planned_at, planner_name, planner_email) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (change.change_id, change.script_hash, change.name, plan.project, change.note,
             name, email, change.planned_at, change.planner_name, change.planner_email),
        )  # fmt: skip
        by_name = {c.name: c.change_id for c in plan.changes}
        for required in change.requires:
            conn.execute(
                "insert into sqitch.dependencies (change_id, type, dependency, dependency_id) "
                "values (%s, 'require', %s, %s)",
                (change.change_id, required, by_name[required]),
            )
        self._log_event(conn, plan, "deploy", change)

    def _record_revert(self, conn: psycopg.Connection[Any], plan: Plan, change: Change) -> None:
        conn.execute("delete from sqitch.dependencies where change_id = %s", (change.change_id,))
        conn.execute("delete from sqitch.changes where change_id = %s", (change.change_id,))
        self._log_event(conn, plan, "revert", change)

    def _log_event(self, conn: psycopg.Connection[Any], plan: Plan, event: str, change: Change) -> None:
        name, email = _committer()
        conn.execute(
            "insert into sqitch.events (event, change_id, change, project, note, requires, "
            "committer_name, committer_email, planned_at, planner_name, planner_email) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (event, change.change_id, change.name, plan.project, change.note, list(change.requires),
             name, email, change.planned_at, change.planner_name, change.planner_email),
        )  # fmt: skip

    def _apply_logic(self, conn: psycopg.Connection[Any]) -> bool:
        """Re-applies every sql/ file in one transaction, then lets the server read the registry.

        False (and nothing done) while Fluxbase's own plan is not fully deployed.
        """
        if not self.changes or len(self._deployed_ids(conn, self.plan)) != len(self.changes):
            return False
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
        return True


def derive_authenticator_password(jwt_secret: str) -> str:
    """The authenticator's password when none is configured.

    Every replica holds the JWT secret, so each derives the same password
    without another setting; whoever holds the secret can already mint a
    service_role token, so this reveals nothing more.
    """
    return hmac.new(jwt_secret.encode(), b"fluxbase authenticator password", hashlib.sha256).hexdigest()
