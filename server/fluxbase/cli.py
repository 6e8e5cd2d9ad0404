"""The `fluxbase` command: serve (default), migrate, keys, init, psql, sql, mail, lint, admin,
--version, --config-test."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence

import psycopg

from fluxbase import __version__
from fluxbase.config import Config, ConfigError, Problem, default_base_url, ensure_jwt_secret, load_config
from fluxbase.db.embedded import EmbeddedPostgresError
from fluxbase.db.migrate import MigrationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxbase",
        description="Fluxbase: a Backend-as-a-Service where PostgreSQL does the logic.",
    )
    parser.add_argument("--version", action="version", version=f"fluxbase {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $FLUXBASE_CONFIG, ./fluxbase.yaml, /etc/fluxbase/fluxbase.yaml)",
    )
    parser.add_argument(
        "--config-test",
        action="store_true",
        help="validate the configuration and connect to the database, then exit",
    )
    # Plain `fluxbase` serves (the runbook's systemd unit runs it so): serve's options need defaults.
    parser.set_defaults(workers=None, host=None, port=None, no_migrate=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (the default)")
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes sharing the port")
    serve.add_argument("--host", help="address to listen on (server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (server.port)")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate the database at start")

    migrate = commands.add_parser("migrate", help="apply, list or revert database migrations")
    migrate.add_argument("action", nargs="?", choices=("up", "status", "down"), default="up")
    migrate.add_argument("--all", action="store_true", help="with down: revert every applied change")

    keys = commands.add_parser("keys", help="print the API URL, the anon and service_role keys, the database")
    keys.add_argument(
        "--export", action="store_true", help='only the shell line: eval "$(fluxbase keys --export)"'
    )

    init = commands.add_parser("init", help="migrate and load the example todo app into an empty database")
    init.add_argument("--if-new", action="store_true", help="only when the embedded database is created now")

    psql = commands.add_parser(
        "psql",
        allow_abbrev=False,  # psql's own long options (--csv, --cl...) must not match ours
        help="open psql on the database as its owner (other arguments go to psql, e.g. -c 'select 1')",
    )
    psql.add_argument(
        "--role", choices=("anon", "authenticated", "service_role"), help="start as this API role"
    )
    psql.add_argument(
        "--claims", metavar="JSON", help='the JWT claims a policy sees, e.g. \'{"sub": "<id>"}\''
    )

    sql = commands.add_parser(
        "sql", help="apply a SQL file (or - for stdin) in one transaction, as the owner"
    )
    sql.add_argument("file", metavar="FILE|-")

    mail = commands.add_parser("mail", help="show the local development mailbox, newest first")
    mail.add_argument("--limit", type=int, default=5, metavar="N", help="how many messages (default 5)")
    mail.add_argument("--to", metavar="ADDRESS", help="only mail to this address")
    mail.add_argument("--link", action="store_true", help="print only the newest message's link")

    lint = commands.add_parser(
        "lint",
        help="security advisor: find what exposes data through the API, with the SQL that fixes it",
        description="Checks the database for tables without RLS, views and functions that bypass it, "
        "auth.users exposed, policies trusting user_metadata, risky grants and extensions in public. "
        "Exits 1 when a finding reaches --fail-on (default: error), so CI can run it.",
    )
    lint.add_argument("--json", action="store_true", help="print the findings as JSON")
    lint.add_argument(
        "--schema",
        action="append",
        metavar="NAME",
        help="exposed schema to check (repeatable; default: api.schemas)",
    )
    lint.add_argument(
        "--fail-on",
        choices=("error", "warn", "info", "never"),
        default="error",
        help="lowest level that makes the exit status 1 (default: error)",
    )

    admin = commands.add_parser("admin", help="manage dashboard administrators")
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    create = admin_commands.add_parser("create", help="create an administrator (asks for the password)")
    create.add_argument("--email", required=True)
    create.add_argument("--full-name", default="")
    create.add_argument("--role", choices=("dashboard_admin", "dashboard_viewer"), default="dashboard_admin")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (for scripts)"
    )
    unlock = admin_commands.add_parser("unlock", help="end an administrator's lockout")
    unlock.add_argument("--email", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, where a closed pipe could no longer be caught
        return code
    except BrokenPipeError:
        # The reader went away (`fluxbase keys | head -1`): nothing is wrong, and a
        # traceback would hide the output the reader did take.  Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "psql":  # only psql passes arguments on
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        config = load_config(args.config)
    except ConfigError as error:
        _print_problems(error.problems)
        return EXIT_CONFIG
    if args.config_test:
        return config_test(config)
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(config, args)
        if command == "migrate":
            return _migrate(config, args.action, args.all)
        if command == "keys":
            return _keys(config, args.export)
        if command == "lint":
            return _lint(config, args.schema or list(config.api.schemas), args.json, args.fail_on)
        if command == "admin":
            from fluxbase.admin_cli import admin_command

            return admin_command(config, args)
        return _console(config, command, args, extra)
    except ConfigError as error:
        _print_problems(error.problems)
        return EXIT_CONFIG
    except (EmbeddedPostgresError, MigrationError, psycopg.Error) as error:
        _print_problems([Problem("database", str(error).strip())])
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def _quiet_logging(config: Config) -> None:
    """Commands other than serve print their results; the log shows only problems, on stderr."""
    import logging

    from fluxbase.observability.logging import configure_logging

    configure_logging("warn", config.log.format)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sys.stderr)


def _serve(config: Config, args: argparse.Namespace) -> int:
    server = config.server
    overrides = {
        k: v
        for k, v in (("workers", args.workers), ("host", args.host), ("port", args.port))
        if v is not None
    }
    if "port" in overrides and server.base_url == default_base_url(server.port):
        overrides["base_url"] = default_base_url(overrides["port"])
    if overrides:
        server = dataclasses.replace(server, **overrides)
        config = dataclasses.replace(config, server=server)
    if server.workers < 1:
        raise ConfigError([Problem("--workers", "must be at least 1")])
    if server.workers > 1 and server.port == 0:
        raise ConfigError([Problem("--port", "several workers need a fixed port, not 0")])
    config = ensure_jwt_secret(config)

    os.environ.setdefault("FLUXBASE_STARTED_AT", str(time.time()))
    metrics_dir = None
    if server.workers > 1:
        # Must be set before the metrics module is first imported (below).
        metrics_dir = tempfile.TemporaryDirectory(prefix="fluxbase-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name

    from fluxbase.observability.logging import configure_logging
    from fluxbase.serve import serve

    configure_logging(config.log.level, config.log.format)
    try:
        return serve(config, migrate=server.migrate_on_start and not args.no_migrate)
    finally:
        if metrics_dir is not None:
            metrics_dir.cleanup()


def _migrate(config: Config, action: str, revert_all: bool) -> int:
    _quiet_logging(config)
    from fluxbase.db.migrate import Migrator
    from fluxbase.serve import authenticator_password, open_database

    config = ensure_jwt_secret(config)
    database_url, embedded = open_database(config)
    try:
        migrator = Migrator(database_url, authenticator_password=authenticator_password(config))
        if action == "status":
            for change in migrator.status():
                print(f"{'applied' if change.applied else 'pending'}  {change.name}")
        elif action == "up":
            applied = migrator.up()
            print(
                f"applied: {', '.join(applied)}" if applied else "nothing to apply: the database is current"
            )
        else:
            reverted = migrator.down(None if revert_all else 1)
            print(f"reverted: {', '.join(reverted)}" if reverted else "nothing to revert")
        return EXIT_OK
    finally:
        if embedded is not None and embedded.started_here:
            embedded.stop()


def _lint(config: Config, schemas: Sequence[str], as_json: bool, fail_on: str) -> int:
    import json

    import asyncpg

    from fluxbase.advisor.report import Report, lint
    from fluxbase.serve import open_database

    _quiet_logging(config)
    database_url, embedded = open_database(config)

    async def run() -> Report:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            return await lint(connection, schemas)
        finally:
            await connection.close()

    try:
        report = asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as error:
        _print_problems([Problem("database", f"cannot check: {type(error).__name__}: {error}")])
        return EXIT_FAILED
    finally:
        if embedded is not None and embedded.started_here:
            embedded.stop()
    print(json.dumps(report.as_json(), indent=2) if as_json else report.as_text())
    threshold = None if fail_on == "never" else fail_on
    return EXIT_FAILED if report.fails(threshold) else EXIT_OK  # type: ignore[arg-type]


def _keys(config: Config, export_only: bool) -> int:
    from fluxbase.auth import mailbox
    from fluxbase.console import database_url_for_display
    from fluxbase.security.api_keys import api_key

    config = ensure_jwt_secret(config)
    secret = config.auth.jwt_secret
    assert secret is not None
    base = config.server.base_url.rstrip("/")
    anon, service = api_key(secret, "anon"), api_key(secret, "service_role")
    export = f"export API_URL={shlex.quote(base)} ANON_KEY={anon} SERVICE_ROLE_KEY={service}"
    if export_only:
        print(export)
        return EXIT_OK
    print(f"API URL:          {base}")
    print(f"anon key:         {anon}")
    print(f"service_role key: {service}")
    print("The service_role key bypasses Row-Level Security: keep it on servers, never in a browser.")
    print(f"Database:         {database_url_for_display(config)}  (`fluxbase psql` opens it)")
    if mailbox.active(config):
        print(f"Local mailbox:    {base}{mailbox.PATH}  (or `fluxbase mail`): no SMTP server is configured")
    print("In another shell, set API_URL, ANON_KEY and SERVICE_ROLE_KEY with:")
    print(f"  {export}")
    return EXIT_OK


def _console(config: Config, command: str, args: argparse.Namespace, extra: list[str]) -> int:
    _quiet_logging(config)
    from fluxbase import console

    if command == "init":
        return console.init(config, args.if_new)
    if command == "psql":
        return console.psql(config, extra, args.role, args.claims)
    if command == "sql":
        return console.run_sql(config, args.file)
    return console.show_mail(config, args.limit, args.to, args.link)


def config_test(config: Config) -> int:
    """Validates what load_config cannot see alone (secret, database) and prints each problem."""
    _quiet_logging(config)
    problems: list[Problem] = []
    try:
        if config.embedded_database:
            problems += _check_embedded(config)
        else:
            config = ensure_jwt_secret(config)
            problems += asyncio.run(_check_connections(config, config.database.url or ""))
    except ConfigError as error:
        problems += error.problems
    if problems:
        _print_problems(problems)
        return EXIT_FAILED
    source = config.source or "defaults and environment"
    print(f"configuration OK ({source})")
    return EXIT_OK


def _check_embedded(config: Config) -> list[Problem]:
    from fluxbase.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

    embedded = EmbeddedPostgres(config.data_dir)
    try:
        _ = embedded.bin
    except EmbeddedPostgresError as error:
        return [Problem("database", str(error))]
    if not embedded.initialized:
        print(f"embedded PostgreSQL: not created yet; `fluxbase serve` creates it in {embedded.pgdata}")
        return []
    config = ensure_jwt_secret(config)
    was_running = embedded.running()
    try:
        dsn = embedded.start()
        return asyncio.run(_check_connections(config, dsn))
    except EmbeddedPostgresError as error:
        return [Problem("database", str(error))]
    finally:
        if not was_running:
            embedded.stop()


async def _check_connections(config: Config, owner_dsn: str) -> list[Problem]:
    import asyncpg

    from fluxbase.db.pool import authenticator_dsn
    from fluxbase.serve import authenticator_password

    checks = [
        ("database.url", owner_dsn),
        (
            "database (as authenticator)",
            authenticator_dsn(owner_dsn, authenticator_password(config)),
        ),
    ]
    problems = []
    for where, dsn in checks:
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except Exception as exc:
            problems.append(Problem(where, f"cannot connect: {type(exc).__name__}: {exc}"))
            continue
        await connection.close()
    if len(problems) == 1 and problems[0].where.startswith("database (as"):
        problems[0] = Problem(
            problems[0].where,
            f"{problems[0].what} (run `fluxbase migrate` first: it creates the role and sets its password)",
        )
    return problems
