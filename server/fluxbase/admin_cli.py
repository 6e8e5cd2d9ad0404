"""`fluxbase admin create|unlock`: administrators from the command line, as the database owner.

The password is asked for twice on the terminal (or read from standard
input with --password-stdin), never taken as an argument: arguments end up
in shell history and in every user's `ps`.
"""

from __future__ import annotations

import argparse
import getpass
import sys

import psycopg

from fluxbase.config import Config, ensure_jwt_secret

EXIT_OK = 0
EXIT_FAILED = 1


def _read_password(from_stdin: bool, min_length: int) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            print("the passwords differ", file=sys.stderr)
            return None
    if len(password) < min_length or len(password.encode()) > 72:
        print(f"the password must be {min_length} to 72 bytes long", file=sys.stderr)
        return None
    return password


def admin_command(config: Config, args: argparse.Namespace) -> int:
    from fluxbase.cli import _quiet_logging
    from fluxbase.serve import open_database

    _quiet_logging(config)
    config = ensure_jwt_secret(config)
    password = None
    if args.admin_command == "create":
        password = _read_password(args.password_stdin, config.dashboard.password_min_length)
        if password is None:
            return EXIT_FAILED
    database_url, embedded = open_database(config)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            if args.admin_command == "create":
                row = conn.execute(
                    "select user_id::text, error"
                    " from dashboard.create_user(%s, %s, %s, %s, %s, false, null, null)",
                    (args.email, password, args.full_name, args.role, config.dashboard.bcrypt_cost),
                ).fetchone()
                assert row is not None
                if row[1] is not None:
                    print(f"not created: {row[1].replace('_', ' ')}", file=sys.stderr)
                    return EXIT_FAILED
                print(f"created administrator {args.email} ({row[0]})")
                return EXIT_OK
            user = conn.execute("select dashboard.find_user_by_email(%s)", (args.email,)).fetchone()
            if user is None or user[0] is None:
                print(f"no administrator {args.email}", file=sys.stderr)
                return EXIT_FAILED
            conn.execute("select dashboard.unlock_user(%s, null, null)", (user[0],))
            print(f"unlocked {args.email}")
            return EXIT_OK
    except psycopg.errors.UndefinedFunction:
        print("the database is not migrated: run `fluxbase migrate` first", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if embedded is not None and embedded.started_here:
            embedded.stop()
