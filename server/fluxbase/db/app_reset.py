"""`fluxbase db reset`: the application's objects dropped and re-created from its migrations, then its seed.

For development only (the CLI refuses unless the database is the embedded one
or --force is given).  Everything outside Fluxbase's own schemas goes, with
the rows that belong to the application although they live in Fluxbase's
schemas (users, the audit trail, the realtime log, the local mailbox);
Fluxbase's own changes stay deployed.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from fluxbase.config import is_internal_schema
from fluxbase.db.migrate import MigrationError, Migrator

# Application data kept in Fluxbase's schemas (each truncated with what references it).
APP_ROWS = ("auth.users", "audit.record_changes", "realtime.log", "dev_mailbox.messages")


def reset_application(migrator: Migrator, seed: Path | None) -> list[str]:
    """Drops the application's schemas and rows, migrates again, loads `seed`; returns what was applied."""
    with migrator.locked() as conn, conn.transaction():
        schemas = [
            row[0]
            for row in conn.execute("select nspname from pg_catalog.pg_namespace order by nspname")
            if not is_internal_schema(row[0])
        ]
        for schema in schemas:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        # As a new PostgreSQL 15 database has it; sql/10_grants.sql adds the API roles' usage.
        conn.execute("create schema public")
        conn.execute("grant usage on schema public to public")
        conn.execute("comment on schema public is 'standard public schema'")
        migrator.forget_app(conn)
        for table in APP_ROWS:
            exists = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
            if exists and exists[0]:
                conn.execute(sql.SQL("truncate {} cascade").format(sql.Identifier(*table.split("."))))
    applied = migrator.up()
    if seed is not None and seed.is_file():
        load_seed(migrator, seed)
    return applied


def load_seed(migrator: Migrator, seed: Path) -> None:
    """The seed file in one transaction, as the owner: all of it or nothing."""
    try:
        with migrator.connect() as conn, conn.transaction():
            conn.execute(seed.read_text(encoding="utf-8"))
    except psycopg.Error as error:
        raise MigrationError(f"{seed}: {str(error).strip()}") from error
